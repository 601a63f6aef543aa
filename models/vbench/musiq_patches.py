"""MUSIQ's multi-scale patch input (pyiqa data/multiscale_trans_util.py, after google-research musiq preprocessing).

An image (B, 3, H, W) becomes one token sequence: for each longer-side length in sorted order (224, 384) the image
resized bicubic (no antialias) to that long side (short side Python-round()ed), padded or cut to ceil(L/32)^2
patches; then every patch of the original resolution. Each patch is cut TF-'SAME' style (the image zero-padded
to whole patches, the odd pixel at the bottom/right) and flattened channel-major (c, y, x) like F.unfold. Three
numbers ride along per token: the hashed spatial position (row and column of the patch grid mapped onto a G x G
grid by nearest interpolation), the scale index, and the input mask (0 for padding tokens).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Patches:
    """Tokens of a batch: pixels (B, N, 3 p p), hashed positions (B, N), scale ids (B, N), mask (B, N) bool."""

    pixels: torch.Tensor
    positions: torch.Tensor
    scales: torch.Tensor
    mask: torch.Tensor


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding of one axis: (before, after), the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) so a kernel/stride window covers it TF-'SAME' style."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom))


def hashed_positions(grid: int, rows: int, cols: int) -> torch.Tensor:
    """(rows * cols,) indices into the G x G embedding table: nearest-interpolated row * G + column."""
    table = torch.arange(grid, dtype=torch.float32).reshape(1, 1, grid)
    col = F.interpolate(table, size=cols, mode="nearest").reshape(1, cols)
    row = F.interpolate(table, size=rows, mode="nearest").reshape(rows, 1)
    return (row * grid + col).reshape(-1)


def resize_longer(image: torch.Tensor, longer: int) -> torch.Tensor:
    """Aspect-preserving bicubic resize (align_corners False, no antialias) so max(H, W) = longer."""
    h, w = image.shape[-2:]
    ratio = longer / max(h, w)
    return F.interpolate(image, size=(round(h * ratio), round(w * ratio)), mode="bicubic", align_corners=False)


def image_patches(image: torch.Tensor, patch: int, grid: int, scale_id: int, max_len: int) -> Patches:
    """Patches of one scale: (B, 3, H, W) → tokens, padded with masked zeros or cut to max_len (< 0: keep all)."""
    b, _, h, w = image.shape
    pixels = F.unfold(pad_same(image, patch, patch), patch, stride=patch).transpose(1, 2)  # (B, N, c p p)
    positions = hashed_positions(grid, math.ceil(h / patch), math.ceil(w / patch)).to(image)
    positions = positions.expand(b, -1)
    scales = torch.full_like(positions, float(scale_id))
    mask = torch.ones_like(positions)
    if max_len >= 0:
        extra = max(max_len - pixels.shape[1], 0)
        pixels = F.pad(pixels, (0, 0, 0, extra))[:, :max_len]
        positions, scales, mask = (F.pad(t, (0, extra))[:, :max_len] for t in (positions, scales, mask))
    return Patches(pixels, positions, scales, mask)


def multiscale_patches(image: torch.Tensor, patch: int, grid: int, longer_sides: tuple[int, ...],
                       original_max_len: int | None) -> Patches:
    """The whole token sequence of (B, 3, H, W) images: resized scales (sorted), then the original (if not None)."""
    parts = []
    for scale_id, longer in enumerate(sorted(longer_sides)):
        parts.append(image_patches(resize_longer(image, longer), patch, grid, scale_id,
                                   math.ceil(longer / patch) ** 2))
    if original_max_len is not None:
        parts.append(image_patches(image, patch, grid, len(longer_sides), original_max_len))
    return Patches(torch.cat([p.pixels for p in parts], 1), torch.cat([p.positions for p in parts], 1).long(),
                   torch.cat([p.scales for p in parts], 1).long(), torch.cat([p.mask for p in parts], 1).bool())
