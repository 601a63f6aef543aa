"""The one Prefect task every flow uses: run a stage (through DVC or directly) with retries on transient errors."""
from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from components import orchestration

# Tasks of these stage groups hold a GPU; the tag-based concurrency limit of the same name (flows/deploy.py
# creates it with 1 slot) keeps two of them from running at once on the work pool.
GPU_HEAVY = "gpu-heavy"
GPU_HEAVY_GROUPS = ("train", "vae", "dit", "pretrain", "eval")


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
def run_stage(stage: str, profile: str, use_dvc: bool = True, sets: list[str] | None = None) -> dict[str, Any]:
    """Run one pipeline stage; DVC skips it when its inputs, params and code are unchanged (--set runs it directly)."""
    return orchestration.execute(stage, profile, use_dvc=use_dvc, sets=sets)


@task(cache_policy=NO_CACHE)
def synth_corpus(profile: str) -> dict[str, Any]:
    """Generate the synthetic raw corpus (tiny profile)."""
    return orchestration.synth(profile)


def stage_tags(name: str) -> list[str]:
    """Prefect tags of a stage's task: `gpu-heavy` for training and evaluation stages."""
    return [GPU_HEAVY] if name.split(".")[0] in GPU_HEAVY_GROUPS else []


def stage(name: str, profile: str, use_dvc: bool, sets: list[str] | None = None) -> dict[str, Any]:
    """Call run_stage under the stage's own name so the Prefect UI shows one task per stage."""
    return run_stage.with_options(name=name, task_run_name=name, tags=stage_tags(name))(name, profile, use_dvc, sets)
