"""temporal_flickering: the weights-free VBench dimension, on decoded uint8 frames.

Per video: (255 - mean over consecutive frame pairs of the mean absolute difference) / 255, the MAE taken over
every pixel and channel of the uint8 frames; the dimension is the mean over videos (VBench
temporal_flickering.py). The standard protocol scores static videos only (static_filter in dimensions_motion).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from components.evaluation.vbench.frames import Video, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult


def flicker_score(frames: np.ndarray, source: str = "video") -> float:
    """(255 - mean consecutive-frame MAE) / 255 of (T, H, W, 3) uint8 frames; 1 for a frozen video."""
    if len(frames) < 2:
        raise ValueError(f"{source}: temporal_flickering needs >= 2 frames, got {len(frames)}")
    x = frames.astype(np.float32)
    maes = np.abs(x[1:] - x[:-1]).reshape(len(frames) - 1, -1).mean(axis=1, dtype=np.float64)
    return float((255.0 - maes.mean()) / 255.0)


def temporal_flickering(videos: list[VideoItem], reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean flicker score over the videos (all frames of each)."""
    if not videos:
        raise ValueError("temporal_flickering: no videos to score")
    per_video = [{"video": v.path, "prompt": v.prompt, "score": flicker_score(reader(v.path).frames, v.path)}
                 for v in videos]
    value = float(np.mean([r["score"] for r in per_video]))
    return DimensionResult("temporal_flickering", value, per_video,
                           {"frames": "all frames", "formula": "(255 - mean MAE of consecutive uint8 frames) / 255",
                            "aggregate": "mean over videos"})
