# Two commands for a fresh machine: `make run` (the whole pipeline, tiny profile) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
PYTEST_WORKERS ?= 2

.PHONY: run test test-fast install lock clean

install: $(VENV)/.installed

# torch first (the CPU wheel here, CUDA from PyPI on GPU machines), then deepspeed without build isolation
# (its setup imports torch and would otherwise pull a second, multi-GB torch), then the project pinned by the lock.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet torch==2.13.0 -c requirements.lock ninja numpy
	$(PY) -m pip install --quiet --no-build-isolation -c requirements.lock deepspeed
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	# LPIPS linear heads ship in the lpips wheel, whose torchvision dependency we must not pull: files only
	$(PY) -m pip install --quiet --no-deps lpips==0.1.4
	touch $@

run: install
	$(PY) -m components.cli run --profile tiny

test: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) --timeout 900 --durations 15 tests

test-fast: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

# Re-pin after changing dependencies: the exact set that passed `make test` from a clean venv.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -viE '^(torch|reelforge)==' > requirements.lock

clean:
	rm -rf workspace data .pytest_cache
