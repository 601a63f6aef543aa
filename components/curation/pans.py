"""Camera-motion check of candidate transitions: a pan or tilt is not a shot change.

Over a texture, a pan's frame differences spike where the rounded camera offset jumps a pixel, and on
thumbnails a pan averages into something very like a cross-fade. If the frame after a candidate transition
is the frame before it shifted (the best integer shift explains most of their difference), the camera moved.
"""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class PanConfig(BaseModel):
    """How far to search for a shift and how much of the difference it must explain."""

    model_config = ConfigDict(extra="forbid")
    short_side: int = Field(32, ge=8)  # grayscale frames compared at this size
    max_shift: float = Field(0.25, ge=0, le=0.5)  # largest shift searched, as a share of the short side
    # best-shift difference / unshifted difference below this: moved (pans on the synthetic corpus <= 0.3,
    # cross-fades >= 0.44)
    moved_ratio: float = Field(0.4, ge=0, le=1)


def shifted_difference(before: np.ndarray, after: np.ndarray, max_shift: int) -> tuple[float, float]:
    """Mean absolute difference of two (H, W) frames unshifted, and at the integer shift aligning them best."""
    before, after = before.astype(np.float32), after.astype(np.float32)
    h, w = before.shape
    plain = float(np.abs(before - after).mean())
    best = plain
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            a = before[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            b = after[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            best = min(best, float(np.abs(a - b).mean()))
    return plain, best


def is_camera_motion(frames: np.ndarray, before: int, after: int, cfg: PanConfig) -> bool:
    """True when frames[after] is frames[before] shifted: the change between them is camera motion."""
    first, second = frames[before], frames[after]
    plain, best = shifted_difference(first, second, int(np.ceil(cfg.max_shift * min(first.shape))))
    return best < cfg.moved_ratio * plain
