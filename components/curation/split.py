"""Stage curate.split: cut every ingested video into shots (PySceneDetect + fades + xGen motion re-clip).

Per video (`split_video`, so a flow can fan out): one decoding pass feeds the cut detector, the fade detector
and the motion scorer; boundaries merge, fade frames are cut out, a lone motion peak splits a clip (the
longer part stays), and clip length limits apply. Every frame lands in clips.parquet or in dropped.parquet
with the rule that dropped it; split_report.json lists each video's boundaries by rule.
"""
from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable

import av
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.curation.clips import CLIP_COLUMNS, clip_id
from components.curation.encode import capped_size, write_clips
from components.curation.fades import combine, detect_fades
from components.curation.pans import is_camera_motion
from components.curation.scan import Scan, scan
from components.curation.segments import Boundary, Piece, enforce_length, length_rules, merge_boundaries, \
    reclip, shots
from components.curation.split_config import SplitConfig
from components.curation.split_report import progress, summarise
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.workspace import is_remote

OUTPUT = "curate/split"
DROPPED_COLUMNS = {"video_id": "string", "start": "int64", "end": "int64", "rule": "string"}
_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}

__all__ = ["SplitConfig", "split_video", "bare_scenedetect", "split"]


def metadata_input(cfg: SplitConfig, ws: Path) -> dict[str, str]:
    """The ingested metadata table: cfg.metadata, relative to the workspace unless it is a URI."""
    return {"metadata": cfg.metadata if is_remote(cfg.metadata) else str(ws / cfg.metadata)}


def _clip_row(row: dict, piece: Piece, fps: float, cfg: SplitConfig, whole: bool) -> dict:
    width, height = capped_size(int(row["width"]), int(row["height"]), cfg.max_short_side)
    return {
        "clip_id": clip_id(row["id"], piece.start, piece.end), "video_id": row["id"], "path": row["path"],
        "media": row["media"], "start_frame": piece.start, "end_frame": piece.end, "num_frames": piece.length,
        "fps": fps, "start_s": piece.start / fps, "end_s": piece.end / fps, "height": height, "width": width,
        "aspect_ratio": height / width, "resolution": height * width,
        # a multi-shot video's caption describes all its shots, so only a clip covering the whole video keeps it
        "text": (row.get("text") or "") if whole else "", "split_rule": piece.rule,
    }


def _dropped(row: dict, pieces: Iterable[Piece]) -> list[dict]:
    return [{"video_id": row["id"], "start": p.start, "end": p.end, "rule": p.rule} for p in pieces]


def _boundary_record(b: Boundary) -> dict:
    return {"frame": b.frame, "rule": b.rule, "first": b.first, "end": b.end, "style": b.style}


def find_boundaries(found: Scan, fps: float, cfg: SplitConfig) -> list[Boundary]:
    """The cascade: PySceneDetect cuts plus fades (not pans) at every thumbnail size, merged."""
    fades = []
    if cfg.fades:
        fades = combine([detect_fades(found.thumbs[side], fps, cfg.fade) for side in cfg.fade.short_sides])
    if cfg.pan_check:  # on thumbnails a pan over a texture averages into a cross-fade
        fades = [f for f in fades
                 if f.style == "black" or not is_camera_motion(found.pans, f.first - 1, f.end, cfg.pan)]
    return merge_boundaries(found.cuts, fades, cfg.merge_frames)


def split_video(row: dict, cfg: SplitConfig, clips_dir: Path | None = None) -> tuple[list[dict], list[dict]]:
    """Clips (CLIP_COLUMNS dicts) and dropped ranges (video_id, start, end, rule) of one metadata row.

    With cfg.reencode and a clips_dir, each clip is also written there as H.264 and `path` points at it
    (start/end frames then address that file). `split_video_report` also returns the boundaries found.
    """
    clips, dropped, _ = split_video_report(row, cfg, clips_dir)
    return clips, dropped


def split_video_report(row: dict, cfg: SplitConfig, clips_dir: Path | None = None
                       ) -> tuple[list[dict], list[dict], dict]:
    """split_video plus this video's report entry (boundaries by rule, frame accounting)."""
    fps = float(row["fps"])
    if row["media"] == "image":
        return [_clip_row(row, Piece(0, 1, "whole"), fps, cfg, whole=True)], [], \
            {"media": "image", "num_frames": 1, "boundaries": []}
    try:
        found = scan(row["path"], fps, cfg)
    except (av.FFmpegError, OSError, ValueError, EOFError) as err:  # ingest accepted it; decoding now failed
        lost = Piece(0, int(row["num_frames"]), "unreadable")
        return [], _dropped(row, [lost]), {"media": "video", "num_frames": int(row["num_frames"]),
                                           "boundaries": [], "error": f"{row['path']}: {err}"}
    boundaries = find_boundaries(found, fps, cfg)
    pieces, lost = shots(boundaries, found.num_frames)
    rules = length_rules(fps, cfg.min_seconds, cfg.max_seconds, cfg.max_frames, cfg.long_clips)
    kept = []
    for piece in pieces:
        if cfg.reclip:
            piece, shorter, at = reclip(piece, found.motion, cfg.motion)
            if shorter is not None:
                lost.append(shorter)
                boundaries.append(Boundary(at, "motion_peak", at, at))
        good, bad = enforce_length(piece, rules)
        kept += good
        lost += bad
    whole = len(kept) == 1 and kept[0].rule == "whole" and kept[0].length == found.num_frames
    clips = [_clip_row(row, piece, fps, cfg, whole) for piece in kept]
    if cfg.reencode and clips_dir is not None and clips:
        write_clips(row["path"], clips, Path(clips_dir), cfg)
    report = {"media": "video", "num_frames": found.num_frames,
              "boundaries": [_boundary_record(b) for b in sorted(boundaries, key=lambda b: b.frame)]}
    if found.num_frames != int(row["num_frames"]):
        report["note"] = f"decoded {found.num_frames} frames, metadata says {row['num_frames']}"
    return clips, _dropped(row, sorted(lost, key=lambda p: p.start)), report


def bare_scenedetect(path: str) -> list[int]:
    """Cut frames from plain PySceneDetect (default AdaptiveDetector, its own decoder): the overhead baseline."""
    from scenedetect import AdaptiveDetector, detect

    return [start.frame_num for start, _ in detect(path, AdaptiveDetector())[1:]]


def _one(job: tuple[dict, SplitConfig, Path | None]) -> tuple[list[dict], list[dict], dict]:
    return split_video_report(*job)


def _table(rows: list[dict], columns: dict[str, str]) -> pa.Table:
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns.items()])
    return pa.Table.from_pylist(rows, schema=schema)


def run_all(rows: list[dict], cfg: SplitConfig, clips_dir: Path | None) -> list[tuple[list[dict], list[dict], dict]]:
    """split_video_report over every row, in row order, on cfg.workers processes."""
    jobs = [(row, cfg, clips_dir) for row in rows]
    with progress(cfg, len(jobs)) as advance:
        if cfg.workers == 1:
            return [advance(_one(job)) for job in jobs]
        # spawn: the parent may hold threads (MLflow, Prefect) that a fork would copy mid-lock
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=context) as pool:
            return [advance(result) for result in pool.map(_one, jobs)]


@stage("curate.split", SplitConfig, output=OUTPUT, inputs=metadata_input)
def split(ctx: StageContext) -> dict[str, float]:
    """Split ingested videos into clips.parquet; account for every frame in dropped.parquet and the report."""
    cfg: SplitConfig = ctx.cfg
    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = pd.read_parquet(ctx.inputs["metadata"]).sort_values("id").to_dict("records")
    clips_dir = out / "clips" if cfg.reencode else None
    started = time.perf_counter()
    results = run_all(rows, cfg, clips_dir)
    seconds = time.perf_counter() - started

    clips = sorted((c for r in results for c in r[0]), key=lambda c: c["clip_id"])
    if clips_dir is not None:  # the output folder is renamed into place, so paths name the final location
        final = Path(ctx.workspace) / OUTPUT
        for c in clips:
            if c["path"].startswith(str(out)):
                c["path"] = str(final / Path(c["path"]).relative_to(out))
    dropped = sorted((d for r in results for d in r[1]), key=lambda d: (d["video_id"], d["start"]))
    pq.write_table(_table(clips, CLIP_COLUMNS), out / "clips.parquet")
    pq.write_table(_table(dropped, DROPPED_COLUMNS), out / "dropped.parquet")
    report = summarise(rows, results)
    (out / "split_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")

    metrics = {f"split/{k}": float(v) for k, v in report["totals"].items() if isinstance(v, (int, float))}
    metrics["split/seconds_per_input"] = seconds / max(len(rows), 1)  # wall time, so not in the report
    tracker = ctx.tracker or NoopTracker()
    tracker.log_metrics(metrics)
    tracker.log_artifact(out / "split_report.json")
    tracker.log_artifact(out / "dropped.parquet")
    return metrics
