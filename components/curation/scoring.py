"""Score the clips of one video: read frames once per (num_frames, short_side) request, run scorers in batches."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from components.curation.frames import read_frames, resize_short, sample_indices
from components.curation.scorer import ClipFrames
from components.curation.shards import ShardStore, shard_key


class ScoringError(RuntimeError):
    """A scorer or the frame reader failed on a video; the message names the video, the scorer and the clip."""


@dataclass
class VideoResult:
    """What scoring one video gave: its table (clip_id + columns) or the error that quarantines it."""

    video_id: str
    table: pd.DataFrame | None
    error: str | None = None
    cached: bool = False  # the shard was already there: no frame was read, no scorer ran
    seconds: float = 0.0


def clip_frame_indices(start: int, end: int, num_frames: int) -> list[int]:
    """Absolute frame numbers a scorer asking for num_frames sees (0 = every frame of the clip)."""
    return list(range(start, end)) if num_frames == 0 else sample_indices(start, end, num_frames)


def frame_requests(scorers: Sequence[Any]) -> dict[tuple[int, int], list[Any]]:
    """Scorers grouped by the frames they ask for, so each distinct request is decoded once."""
    groups: dict[tuple[int, int], list[Any]] = {}
    for scorer in scorers:
        groups.setdefault((int(scorer.num_frames), int(scorer.short_side)), []).append(scorer)
    return groups


def read_clip_frames(path: str, clips: pd.DataFrame, num_frames: int, short_side: int,
                     max_frames_per_read: int) -> dict[str, tuple[np.ndarray, list[int]]]:
    """clip_id -> (frames (T, H, W, 3) uint8, absolute indices) for one request over every clip of a video.

    One decoding pass serves all clips while the union of wanted frames fits max_frames_per_read;
    longer videos are read clip by clip so memory stays bounded.
    """
    wanted = {row.clip_id: clip_frame_indices(int(row.start_frame), int(row.end_frame), num_frames)
              for row in clips.itertuples(index=False)}
    union = sorted({i for indices in wanted.values() for i in indices})
    short = short_side or None
    if len(union) <= max_frames_per_read:
        frames = read_frames(path, indices=union, short_side=short)
        if len(frames) != len(union):
            raise ScoringError(f"asked for {len(union)} frames up to frame {union[-1]}, decoded {len(frames)}")
        at = {index: frame for index, frame in zip(union, frames)}
        return {cid: (np.stack([at[i] for i in indices]), indices) for cid, indices in wanted.items()}
    out = {}
    for cid, indices in wanted.items():
        frames = read_frames(path, indices=indices, short_side=short)
        if len(frames) != len(indices):
            raise ScoringError(f"clip {cid} asked for {len(indices)} frames, decoded {len(frames)}")
        out[cid] = (frames, indices)
    return out


def read_requests_once(path: str, clips: pd.DataFrame, requests: list[tuple[int, int]], max_bytes: int
                       ) -> dict[tuple[int, int], dict[str, tuple[np.ndarray, list[int]]]] | None:
    """Every request's frames from ONE decoding pass at native size (resized per request afterwards).

    Decoding dominates scoring on small clips, so one pass beats one per request. Returns None when the
    native frames of the union would exceed max_bytes (estimated from the clip table's size); the caller then
    decodes request by request. Resizing here is read_frames' own resize_short, so values do not change.
    """
    wanted = {req: {row.clip_id: clip_frame_indices(int(row.start_frame), int(row.end_frame), req[0])
                    for row in clips.itertuples(index=False)} for req in requests}
    union = sorted({i for per_clip in wanted.values() for indices in per_clip.values() for i in indices})
    frame_bytes = int(clips["height"].max()) * int(clips["width"].max()) * 3
    if len(union) * frame_bytes > max_bytes:
        return None
    frames = read_frames(path, indices=union)
    if len(frames) != len(union):
        raise ScoringError(f"asked for {len(union)} frames up to frame {union[-1]}, decoded {len(frames)}")
    native = dict(zip(union, frames))
    out = {}
    for (num_frames, short_side), per_clip in wanted.items():
        resized = {i: resize_short(native[i], short_side) if short_side else native[i]
                   for i in {i for indices in per_clip.values() for i in indices}}
        out[(num_frames, short_side)] = {cid: (np.stack([resized[i] for i in indices]), indices)
                                         for cid, indices in per_clip.items()}
    return out


def _check_values(scorer: Any, batch: list[ClipFrames], values: list[dict]) -> None:
    if len(values) != len(batch):
        raise ScoringError(f"scorer {scorer.name} returned {len(values)} rows for a batch of {len(batch)} clips")
    for clip, row in zip(batch, values):
        missing = set(scorer.columns) - set(row)
        if missing:
            raise ScoringError(f"scorer {scorer.name} left column(s) {sorted(missing)} empty for clip {clip.clip_id}")


def run_scorers(scorers: Sequence[Any], frames: dict[str, tuple[np.ndarray, list[int]]], fps: dict[str, float],
                batch_size: int) -> dict[str, dict[str, Any]]:
    """clip_id -> {column: value} from scorers that share one frame request, batch_size clips per call."""
    ids = list(frames)
    out: dict[str, dict[str, Any]] = {cid: {} for cid in ids}
    for scorer in scorers:
        for lo in range(0, len(ids), batch_size):
            batch = [ClipFrames(cid, frames[cid][0], frames[cid][1], fps[cid]) for cid in ids[lo:lo + batch_size]]
            try:
                values = scorer.score(batch)
            except Exception as err:
                raise ScoringError(f"scorer {scorer.name} failed on clips {batch[0].clip_id}..{batch[-1].clip_id}: "
                                   f"{type(err).__name__}: {err}") from err
            _check_values(scorer, batch, values)
            for clip, row in zip(batch, values):
                out[clip.clip_id].update({c: row[c] for c in scorer.columns})
    return out


def score_clips(path: str, clips: pd.DataFrame, scorers: Sequence[Any], batch_size: int,
                max_frames_per_read: int, max_decode_bytes: int = 0) -> pd.DataFrame:
    """clip_id + every scorer column for the clips of one video (rows in the order of `clips`)."""
    fps = dict(zip(clips["clip_id"], clips["fps"].astype(float)))
    rows: dict[str, dict[str, Any]] = {cid: {"clip_id": cid} for cid in clips["clip_id"]}
    requests = frame_requests(scorers)
    once = read_requests_once(path, clips, list(requests), max_decode_bytes) if max_decode_bytes else None
    for (num_frames, short_side), group in requests.items():
        if once is not None:
            frames = once.pop((num_frames, short_side))
        else:
            frames = read_clip_frames(path, clips, num_frames, short_side, max_frames_per_read)
        for cid, values in run_scorers(group, frames, fps, batch_size).items():
            rows[cid].update(values)
        del frames  # the next request decodes afresh; holding two sets of frames only costs memory
    columns = ["clip_id"] + [c for s in scorers for c in s.columns]
    return pd.DataFrame([rows[cid] for cid in clips["clip_id"]], columns=columns)


def video_key(specs: list[dict], provenance: list[dict], clips: pd.DataFrame) -> str:
    """Shard key: scorer specs + their provenance + the clip ranges (a re-split video misses its old shard)."""
    ranges = [[r.clip_id, int(r.start_frame), int(r.end_frame)] for r in clips.itertuples(index=False)]
    return shard_key({"scorers": specs, "provenance": provenance, "clips": ranges})


def score_video(video_id: str, clips: pd.DataFrame, scorers: Sequence[Any], store: ShardStore, key: str,
                batch_size: int, max_frames_per_read: int, max_decode_bytes: int = 0) -> VideoResult:
    """One video's scores from its shard if finished, else computed and saved; a failure becomes the error."""
    started = time.perf_counter()
    found = store.load(video_id, key)
    if found is not None:
        return VideoResult(video_id, found, cached=True, seconds=time.perf_counter() - started)
    path = str(clips["path"].iloc[0])
    try:
        table = score_clips(path, clips, scorers, batch_size, max_frames_per_read, max_decode_bytes)
    except Exception as err:  # quarantine this video; the others go on
        message = str(err) if isinstance(err, ScoringError) else f"{type(err).__name__}: {err}"
        return VideoResult(video_id, None, error=f"{path}: {message}", seconds=time.perf_counter() - started)
    store.save(video_id, key, table)
    return VideoResult(video_id, table, seconds=time.perf_counter() - started)
