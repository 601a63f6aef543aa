"""Error kinds the orchestrator acts on: transient ones are retried, the rest stop the flow at once."""
from __future__ import annotations

import json
from pathlib import Path

# Exit codes of `reelforge stage run`, read by the Prefect tasks to decide on retries.
EXIT_FAILED = 1  # a bug or bad data: retrying gives the same result
EXIT_CONFIG = 2  # the config or an input is wrong (named in the message)
EXIT_VALIDATION = 3  # the data failed its expectations
EXIT_TRANSIENT = 75  # EX_TEMPFAIL: I/O or network trouble; a retry may succeed


class StageError(RuntimeError):
    """A stage failed in a way the user must fix."""

    exit_code = EXIT_FAILED


class InputMissing(StageError):
    """A declared input does not exist (checked before any heavy work)."""

    exit_code = EXIT_CONFIG


def exit_code_for(err: BaseException) -> int:
    """Map an exception to the exit code the orchestrator understands."""
    from components.config import ConfigError

    if hasattr(err, "exit_code"):
        return int(err.exit_code)
    if isinstance(err, ConfigError):
        return EXIT_CONFIG
    if isinstance(err, (ConnectionError, TimeoutError)) or (isinstance(err, OSError) and err.errno in (5, 110, 111, 112, 113)):
        return EXIT_TRANSIENT
    return EXIT_FAILED


def write_failure(folder: Path, stage: str, err: BaseException, code: int) -> Path:
    """workspace/failed/<stage>/error.json: the last failure, kept for the user and the orchestrator."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "error.json"
    path.write_text(json.dumps({"stage": stage, "exit_code": code, "type": type(err).__name__, "message": str(err)}, indent=2))
    return path
