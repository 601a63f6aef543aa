"""Stage curate.score: every clip through the enabled scorers (resumable per video), then dedup over all clips.

Per-video results live in a shard store outside the stage output (workspace/curate/shards/score), so a re-run,
a retry or a streaming run that already scored a video only assembles it. A video whose frames or scorers fail
is quarantined with the error; the others go on.
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from components.curation.dedup_features import FEATURE_COLUMN, DedupFeatureScorer, duplicates
from components.curation.score_config import ScoreConfig, build_scorer
from components.curation.scoring import VideoResult, score_video, video_key
from components.curation.shards import ShardStore
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.workspace import is_remote

OUTPUT = "curate/score"
QUARANTINE_COLUMNS = ["video_id", "step", "error"]
NEEDED = ("clip_id", "video_id", "path", "start_frame", "end_frame", "fps")


def clips_input(cfg: ScoreConfig, ws: Path) -> dict[str, str]:
    return {"clips": cfg.clips if is_remote(cfg.clips) else str(ws / cfg.clips)}


def read_clips(uri: str) -> pd.DataFrame:
    """The clip table, checked for the columns scoring needs."""
    clips = pd.read_parquet(uri)
    missing = [c for c in NEEDED if c not in clips]
    if missing:
        raise ValueError(f"{uri}: clip table lacks column(s) {missing}")
    return clips


def by_video(clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """video_id -> its clips in frame order; videos in sorted order so outputs do not depend on timing."""
    return {vid: group.sort_values("start_frame").reset_index(drop=True)
            for vid, group in sorted(clips.groupby("video_id", sort=False), key=lambda kv: kv[0])}


class Scoring:
    """The built scorers of one config, their provenance and the shard keys they give each video."""

    def __init__(self, cfg: ScoreConfig, workspace: Path, scorers: Sequence[Any] | None = None):
        self.cfg = cfg
        self.custom = scorers is not None  # instances handed in (tests, notebooks) cannot be rebuilt in workers
        self.scorers = list(scorers) if scorers is not None else [build_scorer(s) for s in cfg.scorers]
        if cfg.dedup.enabled:  # its features go into the shards like any score; the comparison waits for all
            self.scorers.append(DedupFeatureScorer(cfg.dedup))
        self.store = ShardStore(Path(workspace) / cfg.shard_dir)
        self.specs = [s.model_dump(mode="json") for s in cfg.scorers]
        if cfg.dedup.enabled:
            self.specs.append({"dedup": cfg.dedup.feature_recipe()})
        self.provenance = [dict(s.provenance()) for s in self.scorers]

    def key(self, clips: pd.DataFrame) -> str:
        return video_key(self.specs, self.provenance, clips)

    def run(self, video_id: str, clips: pd.DataFrame) -> VideoResult:
        return score_video(video_id, clips, self.scorers, self.store, self.key(clips), self.cfg.batch_size,
                           self.cfg.max_frames_per_read, self.cfg.max_decode_mib << 20)


_WORKER: dict[str, Scoring] = {}


def _init_worker(cfg_json: str, workspace: str) -> None:
    """Each worker process builds its own scorers once (models are not shipped between processes)."""
    cfg = ScoreConfig.model_validate_json(cfg_json)
    _limit_threads(cfg.torch_threads)
    _WORKER["scoring"] = Scoring(cfg, Path(workspace))


def _limit_threads(n: int) -> None:
    """Processes use the cores; threads inside each would only oversubscribe them."""
    import cv2

    cv2.setNumThreads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # read when a scorer first imports torch or onnxruntime
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _score_in_worker(video_id: str, clips: pd.DataFrame) -> VideoResult:
    return _WORKER["scoring"].run(video_id, clips)


def score_one(video_id: str, clips: pd.DataFrame, cfg: ScoreConfig, workspace: Path) -> VideoResult:
    """Score one video into the shard store (streaming runs); scorers are built once per process and config."""
    key = f"{cfg.model_dump_json()}|{workspace}"
    if key not in _WORKER:
        _WORKER[key] = Scoring(cfg, Path(workspace))
    return _WORKER[key].run(video_id, clips.sort_values("start_frame").reset_index(drop=True))


def score_videos(videos: dict[str, pd.DataFrame], scoring: Scoring, workspace: Path,
                 on_done: Callable[[VideoResult], None] | None = None) -> list[VideoResult]:
    """Score every video (finished shards answer at once); results in video order."""
    cfg = scoring.cfg
    results: dict[str, VideoResult] = {}
    todo = {}
    for vid, clips in videos.items():  # shards are checked here so workers only see real work
        found = scoring.store.load(vid, scoring.key(clips))
        if found is not None:
            results[vid] = VideoResult(vid, found, cached=True)
            on_done and on_done(results[vid])
        else:
            todo[vid] = clips
    if cfg.workers == 1 or len(todo) <= 1 or scoring.custom:
        for vid, clips in todo.items():
            results[vid] = scoring.run(vid, clips)
            on_done and on_done(results[vid])
    else:
        context = get_context(cfg.start_method)
        if cfg.start_method == "forkserver":  # the server imports these once; workers fork from it ready to go
            context.set_forkserver_preload(sorted({type(s).__module__ for s in scoring.scorers} | {__name__}))
        with ProcessPoolExecutor(max_workers=min(cfg.workers, len(todo)), mp_context=context,
                                 initializer=_init_worker, initargs=(cfg.model_dump_json(), str(workspace))) as pool:
            futures = {pool.submit(_score_in_worker, vid, clips): vid for vid, clips in todo.items()}
            for future in as_completed(futures):
                vid = futures[future]
                try:
                    results[vid] = future.result()
                except Exception as err:  # a worker that died (out of memory, a crashing decoder)
                    path = todo[vid]["path"].iloc[0]
                    results[vid] = VideoResult(vid, None, error=f"{path}: worker failed: {type(err).__name__}: {err}")
                on_done and on_done(results[vid])
    return [results[vid] for vid in videos]


def run_dedup(table: pd.DataFrame, clips: pd.DataFrame, cfg: ScoreConfig) -> pd.DataFrame:
    """clip_id, dup_of, dup_similarity for every scored clip (dup_of "" for clips that are nobody's copy).

    The barrier of the stage: every clip's features must be in before any pair can be judged. Images and
    video clips are compared among their own kind: a still that looks like a video frame is a different sample.
    """
    if not cfg.dedup.enabled or table.empty:
        return pd.DataFrame({"clip_id": table["clip_id"], "dup_of": "", "dup_similarity": float("nan")})
    joined = table[["clip_id", FEATURE_COLUMN]].merge(clips, on="clip_id")  # every clip column dedup may read
    found = [duplicates(group.reset_index(drop=True), cfg.dedup) for _, group in joined.groupby("media", sort=True)]
    return pd.concat(found, ignore_index=True)


def provenance_table(scoring: Scoring, cfg: ScoreConfig) -> dict[str, dict[str, Any]]:
    """column -> the scorer, method, weights and version that produced it."""
    out = {}
    for scorer, prov in zip(scoring.scorers, scoring.provenance):
        for column in scorer.columns:
            out[column] = {**prov, "scorer": prov.get("scorer", scorer.name)}
    dedup = out.pop(FEATURE_COLUMN, {})  # features stay in the shards; the dup columns name them
    for column in ("dup_of", "dup_similarity"):
        out[column] = ({"scorer": "dedup", "method": f"find_duplicates over {dedup.get('method')}",
                        "weights": dedup.get("weights", "none"), "options": json.dumps(cfg.dedup.options),
                        "version": "1"} if cfg.dedup.enabled
                       else {"scorer": "dedup", "method": "disabled: every clip is nobody's copy"})
    return out


def _progress(cfg: ScoreConfig) -> bool:
    return cfg.progress and "PYTEST_CURRENT_TEST" not in os.environ


def assemble(clips: pd.DataFrame, results: list[VideoResult], scoring: Scoring) -> pd.DataFrame:
    """Every scored clip in clip-table order: clip_id + scorer columns (features included)."""
    columns = ["clip_id"] + [c for s in scoring.scorers for c in s.columns]
    tables = [r.table for r in results if r.table is not None]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    order = clips[["clip_id"]].merge(table, on="clip_id", how="inner")
    return order[[c for c in columns if c in order]]


@stage("curate.score", ScoreConfig, output=OUTPUT, inputs=clips_input)
def score(ctx: StageContext, scorers: Sequence[Any] | None = None) -> dict[str, float]:
    """Score every clip (resumable per video), quarantine failing videos, dedup, write scores and provenance."""
    cfg: ScoreConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    started = time.perf_counter()
    clips = read_clips(ctx.inputs["clips"])
    videos = by_video(clips)
    scoring = Scoring(cfg, Path(ctx.workspace), scorers)
    columns = (TextColumn("curate.score"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not _progress(cfg)) as bar:
        task = bar.add_task("score", total=len(videos))
        results = score_videos(videos, scoring, Path(ctx.workspace), on_done=lambda r: bar.advance(task))

    table = assemble(clips, results, scoring)
    table = table.merge(run_dedup(table, clips, cfg), on="clip_id", how="left")
    table = table.drop(columns=[FEATURE_COLUMN], errors="ignore")
    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "scores.parquet", index=False)
    quarantine = pd.DataFrame([{"video_id": r.video_id, "step": "score", "error": r.error}
                               for r in results if r.error], columns=QUARANTINE_COLUMNS)
    quarantine.to_parquet(out / "quarantine.parquet", index=False)
    provenance = provenance_table(scoring, cfg)
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")

    seconds = time.perf_counter() - started
    computed = [r for r in results if not r.cached and r.error is None]
    metrics = {
        "score/videos": float(len(videos)),
        "score/videos_cached": float(sum(r.cached for r in results)),
        "score/videos_scored": float(len(computed)),
        "score/videos_quarantined": float(len(quarantine)),
        "score/clips": float(len(clips)),
        "score/clips_scored": float(len(table)),
        "score/duplicates": float((table["dup_of"] != "").sum()) if len(table) else 0.0,
        "score/seconds": seconds,
        "score/clips_per_s": len(table) / seconds if seconds > 0 else 0.0,
    }
    tracker.log_metrics(metrics)
    tracker.set_tags({f"reelforge.curate.{s.name}": f"{p.get('method')} ({p.get('weights')})"
                      for s, p in zip(scoring.scorers, scoring.provenance)})
    tracker.log_artifact(out / "provenance.json")
    tracker.log_artifact(out / "quarantine.parquet")
    return metrics
