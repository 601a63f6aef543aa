"""Offline frame signatures for near-duplicate search, and the frame-to-frame similarity they define.

Why not pHash alone: on the synthetic corpus (mostly flat or textured background, one small shape) pHash
scored true near-duplicates 0.46-0.96 and unrelated clips up to 1.0 (seeds 0-2, 16 frames per clip): its bits
come from near-zero DCT coefficients, and it ignores colour. A near-duplicate differs from its source by a
small crop (zoom), shift and re-encoding, so the signature keeps exactly what survives those edits:
  - a blurred, small Lab thumbnail (textures blur away; re-encoding noise stays under the tolerance),
  - its grey-dilated / eroded copies, so a pixel matches anything within `radius` cells (shift tolerance),
  - the same for centre crops at a few zooms (crop tolerance),
  - a salient mask (pixels far from the frame's median colour: the foreground) and the median colour itself.
Two frames are compared on their salient pixels only: similarity = 1 - (salient pixels with no matching
colour within the radius) / (salient pixels, at least `min_salient` of the frame), times a background factor
1 - |median colour difference| / bg_tolerance. Comparing only salient pixels is what separates "the same
shape in the same place" from "a different shape on the same background" (the background would otherwise
make every pair look alike).
"""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Per-cell channels of a signature: Lab, dilated Lab, eroded Lab, salient flag, median Lab (repeated per cell
# would waste memory, so the median lives in its own array).
_LAB, _HI, _LO, _SAL = slice(0, 3), slice(3, 6), slice(6, 9), 9
CHANNELS = 10


class SignatureConfig(BaseModel):
    """Thumbnail geometry and tolerances of the offline frame signature (Lab in OpenCV's 8-bit scale)."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(12, ge=4)  # thumbnail is size x size cells
    blur: float = Field(1.0, ge=0)  # Gaussian sigma in cells before downsampling: removes fine texture
    radius: int = Field(1, ge=0)  # shift tolerance in cells (1 of 12 = 8% of the frame)
    zooms: tuple[float, ...] = (1.0, 1.2)  # centre crops compared against the other clip's full frame
    tolerance: float = Field(10.0, gt=0)  # colour difference (per Lab channel) still counted as a match
    salient_chroma: float = Field(15.0, gt=0)  # |a|, |b| away from the median colour: foreground
    salient_lightness: float = Field(60.0, gt=0)  # |L| away from the median: foreground (textures stay below)
    min_salient: float = Field(0.02, gt=0, le=1)  # floor of the salient area, so shapeless frames compare by bg
    bg_tolerance: float = Field(80.0, gt=0)  # median colour difference that zeroes the similarity


def _cells(rgb: np.ndarray, cfg: SignatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, CHANNELS) uint8 cells and the (3,) median Lab colour of one RGB image."""
    if cfg.blur:
        rgb = cv2.GaussianBlur(rgb, (0, 0), cfg.blur * min(rgb.shape[:2]) / cfg.size)
    small = cv2.resize(rgb, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    kernel = np.ones((2 * cfg.radius + 1, 2 * cfg.radius + 1), np.uint8)
    median = np.median(lab.reshape(-1, 3), axis=0)
    offset = np.abs(lab.astype(np.float32) - median)
    salient = (offset[..., 0] > cfg.salient_lightness) | (offset[..., 1:] > cfg.salient_chroma).any(axis=-1)
    cells = np.concatenate([lab, cv2.dilate(lab, kernel), cv2.erode(lab, kernel), salient[..., None]], axis=-1)
    return cells.astype(np.uint8), median.astype(np.float32)


def frame_signature(rgb: np.ndarray, cfg: SignatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Signature of one uint8 RGB frame: cells (Z, size, size, CHANNELS) uint8 and medians (Z, 3) float32."""
    h, w = rgb.shape[:2]
    cells, medians = [], []
    for zoom in cfg.zooms:
        dy, dx = int(round(h * (1 - 1 / zoom) / 2)), int(round(w * (1 - 1 / zoom) / 2))
        c, m = _cells(rgb[dy:h - dy, dx:w - dx], cfg)
        cells.append(c)
        medians.append(m)
    return np.stack(cells), np.stack(medians)


def clip_signature(frames: np.ndarray, cfg: SignatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Signatures of (T, H, W, 3) frames: cells (T, Z, size, size, CHANNELS) and medians (T, Z, 3)."""
    pairs = [frame_signature(f, cfg) for f in frames]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _unmatched(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Cells of `a` whose colour lies outside `b`'s neighbourhood range: (Ta, Tb, size, size) bool."""
    lab = a[:, None, ..., _LAB].astype(np.int16)
    hi, lo = b[None, ..., _HI].astype(np.int16), b[None, ..., _LO].astype(np.int16)
    return ((lab > hi + tolerance) | (lab < lo - tolerance)).any(axis=-1)


def signature_similarity(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                         cfg: SignatureConfig) -> np.ndarray:
    """(Ta, Tb) frame similarities in [0, 1], best over zoom pairings (one side always at zoom 1)."""
    (ca, ma), (cb, mb) = a, b
    best = np.zeros((len(ca), len(cb)), np.float32)
    pairings = [(0, z) for z in range(len(cfg.zooms))] + [(z, 0) for z in range(1, len(cfg.zooms))]
    for za, zb in pairings:
        x, y = ca[:, za], cb[:, zb]  # (Ta, size, size, C), (Tb, size, size, C)
        unmatched = _unmatched(x, y, cfg.tolerance) | np.swapaxes(_unmatched(y, x, cfg.tolerance), 0, 1)
        salient = (x[:, None, ..., _SAL] > 0) | (y[None, ..., _SAL] > 0)  # (Ta, Tb, size, size)
        area = np.maximum(salient.mean(axis=(-1, -2)), cfg.min_salient)
        shape = 1.0 - (unmatched & salient).mean(axis=(-1, -2)) / area
        bg_gap = np.abs(ma[:, za][:, None] - mb[:, zb][None]).max(axis=-1)  # (Ta, Tb)
        background = np.clip(1.0 - bg_gap / cfg.bg_tolerance, 0.0, 1.0)
        best = np.maximum(best, np.clip(shape, 0.0, 1.0) * background)
    return best
