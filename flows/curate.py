"""curate_flow: split → score → caption → tier, stage by stage or streaming videos through the first three.

stagewise: each stage runs over every video (through `dvc repro`, as data_flow does).
streaming: per-video Prefect tasks chain split → score → caption, so a video's scoring starts as soon as its
split is done (xGen's pipelining); the tasks write the stages' shard stores, then the stages run (through
`dvc repro`) and find every shard done, so they only assemble outputs. Configured by the `flow` section of
configs/<profile>/curate.yaml; the task runner is picked by name (thread, process, dask, ray).
"""
from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.curation import streaming
from flows.tasks import stage

CURATE_STAGES = ["curate.split", "curate.score", "curate.caption", "curate.tier"]


def task_runner(cfg: streaming.CurateFlowConfig):
    """The Prefect task runner named in the config; dask and ray need their Prefect integration installed."""
    if cfg.runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    if cfg.runner == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=cfg.workers)
    try:
        if cfg.runner == "dask":
            from prefect_dask import DaskTaskRunner

            return DaskTaskRunner(address=cfg.address) if cfg.address else DaskTaskRunner(
                cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1})
        from prefect_ray import RayTaskRunner

        return RayTaskRunner(address=cfg.address) if cfg.address else RayTaskRunner()
    except ImportError as err:
        raise RuntimeError(f"flow.runner {cfg.runner!r} needs the prefect-{cfg.runner} package "
                           f"(pip install prefect-{cfg.runner}): {err}") from err


@task(cache_policy=NO_CACHE, task_run_name="split {row[relpath]}")
def split_video(row: dict, profile: str) -> dict:
    return streaming.split_one(row, profile)


@task(cache_policy=NO_CACHE)
def score_video(split: dict, profile: str) -> dict:
    return streaming.score_video(split, profile)


@task(cache_policy=NO_CACHE)
def caption_video(scored: dict, profile: str) -> dict:
    return streaming.caption_video(scored, profile)


@flow(name="curate_streaming", log_prints=True)
def stream_videos(profile: str = "tiny") -> dict[str, Any]:
    """Submit split → score → caption per video; each task starts when its own upstream task is done."""
    ends = []
    for row in streaming.videos(profile):
        split = split_video.submit(row, profile)
        scored = score_video.submit(split, profile)
        ends.append(caption_video.submit(scored, profile))
    summary = streaming.summarise([end.result() for end in ends])
    print(f"streamed {summary['videos']} videos ({summary['clips']} clips): {summary['done']} done, "
          f"{len(summary['failed'])} failed (the stages quarantine them)")
    return summary


@flow(name="curate_flow", log_prints=True)
def curate_flow(profile: str = "tiny", use_dvc: bool = True, start: str | None = None) -> list[dict]:
    """Clip, score, caption, filter and tier the ingested videos; returns one row per stage."""
    cfg = streaming.flow_config(profile)
    names = CURATE_STAGES[CURATE_STAGES.index(start):] if start else CURATE_STAGES
    if cfg.mode == "streaming" and "curate.score" in names:
        stream_videos.with_options(task_runner=task_runner(cfg))(profile)
    return [stage(name, profile, use_dvc) for name in names]
