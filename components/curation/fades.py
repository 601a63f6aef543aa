"""Fade detection (cross-fades and fades through black) on tiny thumbnails of a video's frames.

A cut changes the picture between two frames; a fade spreads the change over several frames, so a
frame-to-frame detector (PySceneDetect's) misses it. Here every window of frames (a, b) no longer than a fade
is asked whether its in-between frames are blends of its two ends: each in-between frame F is fitted as
alpha * F(a) + beta * F(b) by least squares. A window is a fade when the fit explains the in-between frames
(small residual next to how far they are from both ends) and either
  - cross: the ends differ far more than frames the same distance apart on either side (a jump, as in
    AdaptiveDetector, but over the window's span), with an in-between frame mixing both ends; or
  - black: an in-between frame is much darker than both ends.
Thumbnails (short side 8) average shapes and textures away, so motion does not pass for a blend; a second
scale (16) sees fades between textures whose averages match. A pan over a texture can still pass for a
cross-fade; components.curation.pans tells them apart.
The fade's boundary is the middle of its blended frames; the blended frames belong to neither shot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

_CHUNK = 1024  # start frames per pass: bounds memory on long videos (results do not depend on it)


class FadeConfig(BaseModel):
    """Window size and thresholds of the fade detector (grey levels are mean absolute differences, 0-255)."""

    model_config = ConfigDict(extra="forbid")
    # thumbnail sizes, coarse first: small enough that motion and texture average out; a fade seen at several
    # sizes is reported once, from the first size that saw it
    short_sides: list[int] = Field([8, 16], min_length=1)
    max_seconds: float = Field(0.5, gt=0)  # longest fade looked for
    jump: float = Field(2.5, ge=1)  # cross: change across the window / change over the same span beside it
    max_residual: float = Field(0.55, gt=0)  # blend-fit residual / distance of the in-between frames to the ends
    min_change: float = Field(4.0, ge=0)  # an in-between frame differs from both ends by at least this
    min_mix: float = Field(0.15, ge=0)  # cross: that difference is at least this share of the ends' difference
    dip: float = Field(0.7, gt=0, le=1)  # black: an in-between frame's brightness / the darker end's
    within_floor: float = Field(0.5, gt=0)  # grey levels: a static neighbourhood still needs a real jump
    # an in-between frame counts as blended (part of the fade's extent) when it is this share of the way
    # from the nearer end at least, relative to the most blended frame
    blended_share: float = Field(0.15, gt=0, le=1)
    ridge: float = Field(1e-3, ge=0)  # regularises the 2x2 fit when both ends look alike


@dataclass(frozen=True)
class Fade:
    """Blended frames [first, end) of a fade; `frame` is its middle, the boundary between the two shots."""

    first: int
    end: int
    frame: int
    style: str  # cross | black
    score: float  # change explained by the blend, summed over the in-between frames (grey levels)


@dataclass
class _Window:
    a: int
    b: int
    score: float
    change: np.ndarray  # per in-between frame: distance to the nearer end
    energy: float  # smallest alpha + beta (a black fade dips towards 0)


def max_span(fps: float, cfg: FadeConfig) -> int:
    """Frames from a fade's last clean frame before to its first clean frame after, at the longest fade."""
    return max(2, int(round(cfg.max_seconds * fps)) + 1)


def _span_windows(flat: np.ndarray, lum: np.ndarray, across: dict[int, np.ndarray], s: int,
                  cfg: FadeConfig) -> list[_Window]:
    """Accepted windows (a, a + s) for one span s."""
    n = len(flat) - s
    starts = np.arange(n)
    # cheap tests first, so the blend fit only runs where a fade is possible
    width = across[s]  # the change across each window
    before = np.where(starts >= s, width[np.clip(starts - s, 0, None)], np.nan)  # the same span just before
    after = np.where(starts + s < n, width[np.clip(starts + s, None, n - 1)], np.nan)  # and just after
    within = _nanmean(np.stack([before, after]), cfg.within_floor)
    jumped = width / np.maximum(within, cfg.within_floor) >= cfg.jump
    darker = np.min([lum[j:j + n] for j in range(1, s)], 0) / np.maximum(np.minimum(lum[:n], lum[s:]), 1.0)
    dark = darker <= cfg.dip
    cand = np.nonzero(jumped | dark)[0]
    if not len(cand):
        return []
    ends_a, ends_b = flat[cand], flat[cand + s]
    gaa, gbb = (ends_a * ends_a).sum(1), (ends_b * ends_b).sum(1)
    gab = (ends_a * ends_b).sum(1)
    reg = cfg.ridge * (gaa + gbb) / 2
    det = (gaa + reg) * (gbb + reg) - gab ** 2
    change, residual, energy = [], [], []
    for j in range(1, s):
        mid = flat[cand + j]
        gai, gbi = (ends_a * mid).sum(1), (ends_b * mid).sum(1)
        alpha = ((gbb + reg) * gai - gab * gbi) / det
        beta = ((gaa + reg) * gbi - gab * gai) / det
        fit = alpha[:, None] * ends_a + beta[:, None] * ends_b
        residual.append(np.abs(mid - fit).mean(1))
        change.append(np.minimum(np.abs(mid - ends_a).mean(1), np.abs(mid - ends_b).mean(1)))
        energy.append(alpha + beta)
    change, residual, energy = np.array(change), np.array(residual), np.array(energy)  # (s - 1, candidates)
    peak = change.max(0)
    explained = residual.sum(0) / np.maximum(change.sum(0), 1e-9) <= cfg.max_residual
    cross = jumped[cand] & (peak >= cfg.min_mix * width[cand])
    ok = explained & (peak >= cfg.min_change) & (cross | dark[cand])
    return [_Window(int(cand[i]), int(cand[i]) + s, float((change[:, i] - residual[:, i]).sum()), change[:, i],
                    float(energy[:, i].min())) for i in np.nonzero(ok)[0]]


def _nanmean(values: np.ndarray, fill: float) -> np.ndarray:
    """Column means ignoring NaN; `fill` where a column is all NaN (a window with no room on either side)."""
    count = (~np.isnan(values)).sum(0)
    total = np.nansum(values, 0)
    return np.where(count > 0, total / np.maximum(count, 1), fill)


def _pick(group: list[_Window], cfg: FadeConfig) -> Fade:
    """The window that explains the most change stands for its group; its blended frames give the extent."""
    best = max(group, key=lambda w: (w.score, -(w.b - w.a), -w.a))
    # frames barely mixed (the first and last few percent of a long fade) do not move the middle
    mixed = np.nonzero(best.change >= cfg.blended_share * best.change.max())[0]
    first, last = best.a + 1 + int(mixed[0]), best.a + 1 + int(mixed[-1])
    style = "black" if best.energy <= cfg.dip else "cross"
    return Fade(first=best.a + 1, end=best.b, frame=(first + last + 1) // 2, style=style, score=best.score)


def detect_fades(thumbs: np.ndarray, fps: float, cfg: FadeConfig) -> list[Fade]:
    """Fades in one video from its (T, h, w[, C]) thumbnails at one size, in frame order."""
    flat = np.asarray(thumbs, np.float32).reshape(len(thumbs), -1)
    span = min(max_span(fps, cfg), len(flat) - 1)
    if span < 2:
        return []
    windows = []
    # windows starting in [start, start + _CHUNK) need frames from start - span (the span before) up to
    # start + _CHUNK + 2 * span (the span after), so chunking changes nothing but peak memory
    for start in range(0, len(flat), _CHUNK):
        lo = max(0, start - span)
        part = flat[lo:start + _CHUNK + 2 * span]
        lum = part.mean(1)
        across = {s: np.abs(part[:-s] - part[s:]).mean(1) for s in range(2, min(span, len(part) - 1) + 1)}
        for s in across:
            windows += [_Window(w.a + lo, w.b + lo, w.score, w.change, w.energy)
                        for w in _span_windows(part, lum, across, s, cfg) if start <= w.a + lo < start + _CHUNK]
    windows.sort(key=lambda w: (w.a, w.b))
    groups: list[list[_Window]] = []
    reach = -1  # end frame of the current group
    for window in windows:
        if groups and window.a < reach:  # shares frames with the group: the same fade seen at another span
            groups[-1].append(window)
            reach = max(reach, window.b)
        else:
            groups.append([window])
            reach = window.b
    return [_pick(group, cfg) for group in groups]


def combine(per_size: list[list[Fade]]) -> list[Fade]:
    """Fades found at several thumbnail sizes, once each: a fade overlapping one already kept is dropped."""
    kept: list[Fade] = []
    for fades in per_size:
        kept += [f for f in fades if not any(f.first < k.end and k.first < f.end for k in kept)]
    return sorted(kept, key=lambda f: f.first)
