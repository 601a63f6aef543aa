"""Prompt adherence in the synthetic world: which vocabulary colour the moving object has, and where it moves.

An analytic judge, no learned weights. Colour: every pixel within `colour_radius` (RGB distance) of a vocabulary
colour is an object candidate, labelled with that colour; pixels that keep the same label in nearly every frame
(burned-in text, a logo) are static and do not vote; the dominant label wins. The backgrounds of the corpus are
muted or grey on purpose (synth_shapes.BACKGROUNDS), so they never come within the radius of a vocabulary colour.
Direction: the centroid of the object's pixels in each frame; the mean frame-to-frame step names left / right /
up / down along its larger axis (y grows down). Steps longer than `max_step` of the frame are left out: those are
the jumps when the shape wraps around an edge, not motion. (A median step would read 0 for slow shapes at high
fps, whose pixel mask only moves every few frames.)
Validated on the corpus ground truth (tests/integration/test_adherence_checker.py) before it judges a model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.data.synth_shapes import COLOURS, DIRECTIONS

COLOUR_NAMES = tuple(COLOURS)
DIRECTION_NAMES = tuple(DIRECTIONS)
_PALETTE = np.array([COLOURS[name] for name in COLOUR_NAMES], dtype=np.float32)  # (K, 3)


class CheckerConfig(BaseModel):
    """Thresholds of the analytic judge (validated on the corpus at these values)."""

    model_config = ConfigDict(extra="forbid")
    colour_radius: float = Field(80.0, gt=0)  # RGB distance to a vocabulary colour for a pixel to be a candidate
    static_share: float = Field(0.9, gt=0, le=1)  # a pixel with one label in this share of frames is static
    min_pixels: int = Field(4, ge=1)  # object pixels a frame needs for a centroid
    max_step: float = Field(0.2, gt=0, le=1)  # a centroid step longer than this share of the frame is a wrap
    min_votes: int = Field(8, ge=1)  # moving votes needed before falling back to every candidate pixel
    fallback_share: float = Field(0.05, gt=0, le=1)  # with no candidates: the share of pixels farthest from
    # the frame's median colour stands for the object


@dataclass
class Verdict:
    """What the judge saw in one video: its colour and direction (None when undecidable) and the evidence."""

    colour: str | None
    direction: str | None
    votes: dict[str, int] = field(default_factory=dict)  # colour -> moving candidate pixels
    step: tuple[float, float] = (0.0, 0.0)  # mean centroid step (dx, dy), pixels per frame
    tracked_frames: int = 0  # frames with a centroid
    fallback: bool = False  # colour from the far-from-background pixels, no vocabulary candidate found

    def as_dict(self) -> dict:
        return {"colour": self.colour, "direction": self.direction, "votes": self.votes,
                "step": [round(float(v), 4) for v in self.step], "tracked_frames": self.tracked_frames,
                "fallback": self.fallback}


def _labels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest vocabulary colour (T, H, W) int and its RGB distance (T, H, W) float for (T, H, W, 3) frames."""
    rgb = frames.astype(np.float32)
    # |x - p|² = |x|² - 2 x·p + |p|²: one matrix product instead of a (T, H, W, K, 3) difference array
    squared = (rgb**2).sum(-1, keepdims=True) - 2 * rgb @ _PALETTE.T + (_PALETTE**2).sum(-1)  # (T, H, W, K)
    label = squared.argmin(axis=-1)
    nearest = np.take_along_axis(squared, label[..., None], axis=-1)[..., 0]
    return label, np.sqrt(np.maximum(nearest, 0.0))


def _moving(candidate: np.ndarray, label: np.ndarray, static_share: float) -> np.ndarray:
    """Candidate pixels whose label is not the one the same pixel holds in >= static_share of the frames."""
    t = len(label)
    moving = candidate.copy()
    for k in np.unique(label[candidate]):
        share = (candidate & (label == k)).sum(axis=0) / t  # (H, W)
        moving &= ~((label == k) & (share >= static_share)[None])
    return moving


def _fallback_colour(frames: np.ndarray, share: float) -> str:
    """Nearest vocabulary colour of the mean of the pixels farthest from each frame's median colour."""
    rgb = frames.astype(np.float32).reshape(len(frames), -1, 3)  # (T, H*W, 3)
    far = np.linalg.norm(rgb - np.median(rgb, axis=1, keepdims=True), axis=-1)  # (T, H*W)
    k = max(1, int(round(share * far.shape[1])))
    top = np.argsort(far, axis=1)[:, -k:]
    mean = np.take_along_axis(rgb, top[..., None], axis=1).reshape(-1, 3).mean(axis=0)
    return COLOUR_NAMES[int(np.linalg.norm(_PALETTE - mean, axis=1).argmin())]


def direction_of(step: tuple[float, float]) -> str | None:
    """left / right / up / down along the larger component of (dx, dy); None for no motion at all."""
    dx, dy = step
    if dx == 0 and dy == 0:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _track(mask: np.ndarray, min_pixels: int, max_step: float) -> tuple[tuple[float, float], int]:
    """Mean centroid step (dx, dy) per frame of a (T, H, W) mask without wrap jumps, and the frames tracked."""
    _, h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w]
    points = [(t, float(xs[m].mean()), float(ys[m].mean())) for t, m in enumerate(mask) if m.sum() >= min_pixels]
    if len(points) < 2:
        return (0.0, 0.0), len(points)
    p = np.array(points)
    steps = np.diff(p[:, 1:], axis=0) / np.diff(p[:, 0])[:, None]  # per-frame velocity across skipped frames
    smooth = (np.abs(steps[:, 0]) <= max_step * w) & (np.abs(steps[:, 1]) <= max_step * h)
    if not smooth.any():
        return (0.0, 0.0), len(points)
    return (float(steps[smooth, 0].mean()), float(steps[smooth, 1].mean())), len(points)


def check_video(frames: np.ndarray, cfg: CheckerConfig = CheckerConfig()) -> Verdict:
    """Colour and motion direction of the object in (T, H, W, 3) uint8 RGB frames."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
        raise ValueError(f"check_video: expected (T, H, W, 3) frames, got {frames.shape}")
    label, dist = _labels(frames)
    candidate = dist < cfg.colour_radius
    moving = _moving(candidate, label, cfg.static_share)
    voters = moving if moving.sum() >= cfg.min_votes else candidate
    counts = np.bincount(label[voters], minlength=len(COLOUR_NAMES))
    votes = {COLOUR_NAMES[k]: int(n) for k, n in enumerate(counts) if n}
    if counts.sum() == 0:
        colour = _fallback_colour(frames, cfg.fallback_share)
        return Verdict(colour, None, votes, fallback=True)
    best = int(counts.argmax())
    mask = voters & (label == best)
    step, tracked = _track(mask, cfg.min_pixels, cfg.max_step)
    return Verdict(COLOUR_NAMES[best], direction_of(step), votes, step, tracked)
