#!/bin/bash
# Create one database per service listed in POSTGRES_MULTIPLE_DATABASES.
set -euo pipefail
for db in ${POSTGRES_MULTIPLE_DATABASES//,/ }; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db;"
done
