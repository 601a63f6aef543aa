"""Per-video curation steps for the streaming mode: split → score → caption of ONE video, into the shard stores.

xGen pipelines curation: a video's scoring starts as soon as its split is done, instead of waiting for the
whole corpus. flows/curate.py chains these functions per video as Prefect tasks; the stages that run after
them (curate.score, curate.caption) find every shard done and only assemble their outputs. Each function
catches its video's failure and returns it, so one bad video never stops the others (the stages quarantine it).
"""
from __future__ import annotations

import json
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.config import resolve
from components.curation.caption import CaptionConfig, caption_one
from components.curation.score import score_one
from components.curation.score_config import ScoreConfig
from components.curation.shards import ShardStore, shard_key
from components.workspace import workspace

SPLIT_SHARDS = "curate/shards/split"


class CurateFlowConfig(BaseModel):
    """How curate_flow runs: stage by stage over all videos, or streaming videos through split → score → caption."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["stagewise", "streaming"] = "stagewise"
    runner: Literal["thread", "process", "dask", "ray"] = "process"  # Prefect task runner of the streaming part
    workers: int = Field(2, ge=1)  # concurrent videos (threads or processes; dask/ray: ignored with an address)
    address: str | None = None  # dask scheduler / ray cluster address; None starts a local one


def _config(stage: str, profile: str) -> Any:
    """The stage's resolved config, exactly as `reelforge stage run` resolves it (so shard keys match)."""
    from components.curation.split import SplitConfig

    classes = {"curate.split": SplitConfig, "curate.score": ScoreConfig, "curate.caption": CaptionConfig,
               "curate.flow": CurateFlowConfig}
    return resolve(stage, classes[stage], profile)


def flow_config(profile: str) -> CurateFlowConfig:
    """The `flow` section of configs/<profile>/curate.yaml (with params.yaml overrides)."""
    return _config("curate.flow", profile)


def videos(profile: str) -> list[dict]:
    """The ingested metadata rows the split stage will read, as plain dicts (picklable task arguments)."""
    cfg = _config("curate.split", profile)
    table = pd.read_parquet(workspace() / cfg.metadata if "://" not in cfg.metadata else cfg.metadata)
    return table.sort_values("id").to_dict("records")


def split_one(row: dict, profile: str) -> dict:
    """Split one video; the clips and dropped ranges also go into the split shard store (keyed by config + row)."""
    from components.curation.split import split_video_report

    cfg = _config("curate.split", profile)
    try:
        clips, dropped, report = split_video_report(row, cfg)
    except Exception as err:
        return {"video_id": row["id"], "clips": [], "error": f"{row['path']}: {type(err).__name__}: {err}"}
    key = shard_key({"split": cfg.model_dump(mode="json"), "row": {k: str(v) for k, v in sorted(row.items())}})
    ShardStore(workspace() / SPLIT_SHARDS).save(row["id"], key, pd.DataFrame(
        {"clips": [json.dumps(clips)], "dropped": [json.dumps(dropped)], "report": [json.dumps(report)]}))
    return {"video_id": row["id"], "clips": clips, "text": row.get("text") or "", "error": report.get("error")}


def score_video(split: dict, profile: str) -> dict:
    """Score one split video into the score shards; passes the split result on for captioning."""
    out = {**split, "step": "score"}
    if split.get("error") or not split["clips"]:
        return out
    result = score_one(split["video_id"], pd.DataFrame(split["clips"]), _config("curate.score", profile),
                       workspace())
    return out | {"error": result.error, "cached": result.cached, "seconds": result.seconds}


def caption_video(scored: dict, profile: str) -> dict:
    """Caption one scored video into the caption shards; the summary row of this video's streaming run."""
    out = {k: scored.get(k) for k in ("video_id", "error", "cached", "seconds")}
    out["clips"] = len(scored["clips"])
    if scored.get("error") or not scored["clips"]:
        return out | {"step": scored.get("step", "split") if scored.get("error") else "done"}
    try:
        error = caption_one(scored["video_id"], pd.DataFrame(scored["clips"]), scored.get("text", ""),
                            _config("curate.caption", profile), workspace())
    except Exception as err:  # missing weights: the stage will say so for every video
        error = f"{type(err).__name__}: {err}"
    return out | {"error": error, "step": "caption" if error else "done"}


def summarise(rows: list[dict]) -> dict[str, Any]:
    """Counts of the streaming run: videos done, failed per step, clips."""
    failed = [r for r in rows if r.get("error")]
    return {"videos": len(rows), "done": len(rows) - len(failed), "clips": sum(r.get("clips", 0) for r in rows),
            "failed": {r["video_id"]: f"{r.get('step')}: {r['error']}" for r in failed}}

