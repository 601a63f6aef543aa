"""The one Prefect task every flow uses: run a stage (through DVC or directly) with retries on transient errors."""
from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from components import orchestration


def retry_transient(task_obj, task_run, state) -> bool:
    """Retry only I/O or network trouble (exit 75); a bad config, bad data or a bug fails at once."""
    try:
        state.result()
    except orchestration.StageFailed as err:
        return err.transient
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def run_stage(stage: str, profile: str, use_dvc: bool = True) -> dict[str, Any]:
    """Run one pipeline stage; DVC skips it when its inputs, params and code are unchanged."""
    return orchestration.execute(stage, profile, use_dvc=use_dvc)


@task(cache_policy=NO_CACHE)
def synth_corpus(profile: str) -> dict[str, Any]:
    """Generate the synthetic raw corpus (tiny profile)."""
    return orchestration.synth(profile)


def stage(name: str, profile: str, use_dvc: bool) -> dict[str, Any]:
    """Call run_stage under the stage's own name so the Prefect UI shows one task per stage."""
    return run_stage.with_options(name=name, task_run_name=name)(name, profile, use_dvc)
