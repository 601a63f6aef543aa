"""imaging_quality: MUSIQ-SPAQ's technical quality of every frame (VBench imaging_quality.py, 'longer' mode).

Per video: all frames as float tensors in [0, 255]; when the long side exceeds 512 the frame is resized to
(int(s H), int(s W)) with s = 512 / max(H, W), torchvision Resize's tensor path of VBench's pinned torchvision
(< 0.16: bilinear, antialias off, no rounding); /255; MUSIQ's multi-scale input (the frame itself plus long
sides 224 and 384) gives one MOS per frame on SPAQ's 0-100 scale. A video's score is the mean over its frames;
the dimension is the mean over videos, divided by 100.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from components.evaluation.vbench.frames import Video, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult

LONG_SIDE = 512  # VBench's 'longer' preprocessing mode: frames above this long side are shrunk
MOS_SCALE = 100.0  # SPAQ's MOS range: VBench divides the mean by it


def longer_size(height: int, width: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """VBench's output size: unchanged up to `long_side`, else both sides scaled by long_side / max, truncated."""
    if max(height, width) <= long_side:
        return height, width
    scale = long_side / max(height, width)
    return int(scale * height), int(scale * width)


def musiq_frames(frames: np.ndarray, long_side: int = LONG_SIDE) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (T, 3, H', W') float in [0, 1], the long side at most `long_side`."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W) in [0, 255]
    size = longer_size(*x.shape[-2:], long_side)
    if size != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    return x / 255.0


@torch.no_grad()
def frame_scores(musiq: torch.nn.Module, frames: np.ndarray, device: str, batch: int) -> list[float]:
    """MOS of each (H, W, 3) uint8 frame, `batch` frames per call (VBench: one at a time, same numbers).

    Frames are converted chunk by chunk: a whole long 1080p video in float32 would take gigabytes.
    """
    return [float(s) for i in range(0, len(frames), batch)
            for s in musiq(musiq_frames(frames[i : i + batch]).to(device)).float().cpu()]


def imaging_quality(musiq: torch.nn.Module, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
                    reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean over videos of each video's mean per-frame MUSIQ score, /100."""
    if not videos:
        raise ValueError("imaging_quality: no videos to score")
    musiq = musiq.to(device).eval()
    per_video = []
    for item in videos:
        frames = reader(item.path).frames
        scores = frame_scores(musiq, frames, device, batch)
        mean = sum(scores) / len(scores)
        per_video.append({"video": item.path, "prompt": item.prompt, "score": mean / MOS_SCALE, "musiq": mean,
                          "frames": len(scores), "size": list(longer_size(*frames.shape[1:3])),
                          "frame_scores": [round(s, 4) for s in scores]})
    value = sum(r["score"] for r in per_video) / len(per_video)
    return DimensionResult("imaging_quality", value, per_video,
                           {"model": "MUSIQ (pyiqa), SPAQ checkpoint",
                            "preprocess": f"long side > {LONG_SIDE} -> (int(sH), int(sW)), s = {LONG_SIDE}/max, "
                                          "bilinear (antialias off); /255",
                            "input": "multi-scale patches 32 px: long sides 224 and 384 (bicubic) plus the frame",
                            "frames": "all frames",
                            "aggregate": f"mean over frames, mean over videos, /{MOS_SCALE:g}"})
