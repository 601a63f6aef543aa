"""xGen frame-difference motion: grayscale differences → threshold → blur + morphology → binary motion mask.

A pair's score is the fraction of pixels in its mask (0 = nothing moved, 1 = every pixel changed); a clip's
score is the mean over its consecutive pairs. Re-clipping (xGen): a single pair whose score towers over its
neighbours is an edit the scene detector missed, so the clip is split there and the longer part kept.
Frames are (T, H, W) uint8 grayscale, already at the size the caller scores at.
"""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator


class MotionConfig(BaseModel):
    """Thresholds and kernel sizes of the motion mask and of the peak re-clip rule."""

    model_config = ConfigDict(extra="forbid")
    # grey levels: a pixel moved when it changed by more than this (above H.264 noise at crf ~23, ~5-10 levels)
    diff_threshold: int = Field(20, ge=0, le=255)
    # median blur of the binary mask (odd): drops isolated pixels flipped by compression noise
    blur_kernel: int = Field(3, ge=1)
    # morphological closing (odd, elliptic): fills pinholes inside a moving region without growing its outline
    morph_kernel: int = Field(5, ge=1)
    # re-clip: the peak pair must move at least this fraction of the frame (a hard cut moves ~0.9) ...
    peak_threshold: float = Field(0.8, ge=0, le=1)
    # ... and beat the mean of its neighbours by this much: the mask is a step function of the shift, so a
    # slow pan whose 1-pixel steps vanish under the median blur scores ~0.05 and its odd 2-pixel step ~0.7
    peak_contrast: float = Field(0.6, ge=0, le=1)
    # pairs on each side of the peak that form its neighbourhood
    neighbours: int = Field(2, ge=1)

    @field_validator("blur_kernel", "morph_kernel")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError(f"kernel size must be odd, got {size}")
        return size


def motion_mask(previous: np.ndarray, current: np.ndarray, cfg: MotionConfig) -> np.ndarray:
    """Binary (H, W) uint8 mask, 1 where the scene moved between two grayscale frames."""
    if previous.shape != current.shape or previous.ndim != 2:
        raise ValueError(f"motion_mask needs two (H, W) grayscale frames of one size, got {previous.shape} "
                         f"and {current.shape}")
    moved = (cv2.absdiff(previous, current) > cfg.diff_threshold).astype(np.uint8) * 255
    if cfg.blur_kernel > 1:
        moved = cv2.medianBlur(moved, cfg.blur_kernel)
    if cfg.morph_kernel > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.morph_kernel, cfg.morph_kernel))
        moved = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, kernel)
    return (moved > 127).astype(np.uint8)


def pair_score(previous: np.ndarray, current: np.ndarray, cfg: MotionConfig) -> float:
    """Fraction of the frame that moved between two grayscale frames."""
    return float(motion_mask(previous, current, cfg).mean())


def motion_series(gray_frames: np.ndarray, cfg: MotionConfig) -> np.ndarray:
    """One score per consecutive pair of (T, H, W) uint8 frames: shape (T - 1,)."""
    frames = np.asarray(gray_frames)
    if frames.ndim != 3:
        raise ValueError(f"motion_series needs (T, H, W) grayscale frames, got shape {frames.shape}")
    return np.array([pair_score(frames[i], frames[i + 1], cfg) for i in range(len(frames) - 1)], np.float64)


def motion_score(gray_frames: np.ndarray, cfg: MotionConfig) -> float:
    """Mean motion-mask fraction over a clip's consecutive pairs; 0.0 for a single frame."""
    series = motion_series(gray_frames, cfg)
    return float(series.mean()) if len(series) else 0.0


def reclip_at_peak(series: np.ndarray, cfg: MotionConfig) -> int | None:
    """Where to split a clip: the frame (offset from the clip's first frame) after its peak pair, or None.

    series[k] scores the pair (k, k + 1), so a split at the peak k starts the second part at frame k + 1.
    The peak must reach cfg.peak_threshold and beat the mean of its cfg.neighbours pairs on each side by
    cfg.peak_contrast; a clip of a single pair has no neighbours and is never split.
    """
    series = np.asarray(series, np.float64)
    if len(series) < 2:
        return None
    k = int(np.argmax(series))
    around = np.concatenate([series[max(0, k - cfg.neighbours):k], series[k + 1:k + 1 + cfg.neighbours]])
    if series[k] >= cfg.peak_threshold and series[k] - around.mean() >= cfg.peak_contrast:
        return k + 1
    return None
