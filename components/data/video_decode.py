"""Decode a clip's frames with PyAV and bring them to the training tensor: resize, centre crop, [-1, 1], pad."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from components.curation.frames import read_frames


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize so the frame covers (H, W) with its aspect ratio kept, then crop the centre: (H, W, 3) uint8."""
    out_h, out_w = size
    h, w = frame.shape[:2]
    scale = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, math.ceil(h * scale - 1e-6)), max(out_w, math.ceil(w * scale - 1e-6))
    if (new_h, new_w) != (h, w):
        # area averaging when shrinking avoids aliasing; bilinear when growing
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return np.ascontiguousarray(frame[top:top + out_h, left:left + out_w])


def fit_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """fit_frame on each of (T, h, w, 3) frames -> (T, H, W, 3) uint8."""
    return np.stack([fit_frame(f, size) for f in frames])


def decode_frames(path: str, indices: list[int], size: tuple[int, int]) -> np.ndarray:
    """Source frames `indices` (absolute frame numbers) of a video or image, at training size: (n, H, W, 3)."""
    frames = read_frames(path, indices=indices)
    if len(frames) != len(indices):
        raise ValueError(f"{path}: asked for {len(indices)} frames up to {max(indices)}, decoded {len(frames)} "
                         "(file shorter than its table row says)")
    return fit_frames(frames, size)


def decode_clip(path: str, start: int, end: int, size: tuple[int, int]) -> np.ndarray:
    """Every frame of [start, end) at training size: (end - start, H, W, 3) uint8."""
    return decode_frames(path, list(range(start, end)), size)


def to_tensor(frames: np.ndarray, num_frames: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (3, num_frames, H, W) float in [-1, 1]; frames after n are zeros."""
    n, h, w, _ = frames.shape
    if n > num_frames:
        raise ValueError(f"to_tensor: {n} frames do not fit a clip of {num_frames}")
    video = torch.zeros(3, num_frames, h, w)
    # (n, H, W, 3) -> (3, n, H, W)
    video[:, :n] = torch.from_numpy(frames).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)
    return video


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8, the inverse of to_tensor (rounded, clipped)."""
    frames = video.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return frames.permute(1, 2, 3, 0).cpu().numpy()  # (3, T, H, W) -> (T, H, W, 3)
