"""The clip table: a clip is a frame range of an ingested video (a reference, re-encoded only on request)."""
from __future__ import annotations

import hashlib

# workspace/curate/split/clips.parquet; scorers add their columns in curate/score/scores.parquet, keyed by clip_id.
CLIP_COLUMNS: dict[str, str] = {
    "clip_id": "string",  # "<video id>-<start frame>-<end frame>": stable across re-runs
    "video_id": "string",  # metadata.id of the source video (or image)
    "path": "string",  # source file (local path or URI), as in metadata.path
    "media": "string",  # video | image
    "start_frame": "int64",  # inclusive, in source frames
    "end_frame": "int64",  # exclusive
    "num_frames": "int64",  # end_frame - start_frame
    "fps": "float64",
    "start_s": "float64",
    "end_s": "float64",
    "height": "int64",  # after the shorter-side cap (never upscaled)
    "width": "int64",
    "aspect_ratio": "float64",  # height / width
    "resolution": "int64",  # height * width
    "text": "string",  # source caption if any (sidecar / CSV); curate.caption fills the rest
    "split_rule": "string",  # what made the clip: scene, fade, motion_peak, whole (images, single-shot videos)
}


def clip_id(video_id: str, start: int, end: int) -> str:
    """Stable id of a frame range of a video."""
    return f"{video_id}-{start:06d}-{end:06d}"


def short_hash(text: str, n: int = 12) -> str:
    """A short stable digest (for ids of derived things such as re-encoded clip files)."""
    return hashlib.sha256(text.encode()).hexdigest()[:n]
