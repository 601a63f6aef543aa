"""curate_flow wiring: the task runner picked by name, the stage chain, the pipeline segment, the flow config."""
from __future__ import annotations

import importlib.util

import pytest
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from components.config import resolve
from components.curation.streaming import CurateFlowConfig
from flows.curate import CURATE_STAGES, task_runner


def test_runner_by_name():
    thread = task_runner(CurateFlowConfig(runner="thread", workers=3))
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    process = task_runner(CurateFlowConfig(runner="process", workers=2))
    assert isinstance(process, ProcessPoolTaskRunner) and process._max_workers == 2
    for name in ("dask", "ray"):
        if importlib.util.find_spec(f"prefect_{name}") is None:
            with pytest.raises(RuntimeError, match=f"pip install prefect-{name}"):
                task_runner(CurateFlowConfig(runner=name))


def test_stage_chain_and_pipeline_segment():
    from flows.pipeline import SEGMENTS

    assert CURATE_STAGES == ["curate.split", "curate.score", "curate.caption", "curate.tier"]
    assert [stages for _, stages in SEGMENTS][1] == CURATE_STAGES  # right after the data segment


def test_flow_config_per_profile(workspace):
    assert resolve("curate.flow", CurateFlowConfig, "tiny").mode == "stagewise"
    full = resolve("curate.flow", CurateFlowConfig, "full")
    assert (full.mode, full.runner) == ("streaming", "dask")
    with pytest.raises(ValueError, match="mode"):
        resolve("curate.flow", CurateFlowConfig, "tiny", ["mode=sideways"])
