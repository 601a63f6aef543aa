"""Swin Transformer (Liu et al., ICCV 2021), Tag2Text's image encoder (VBench third_party/tag2Text/swin_transformer.py).

Parameter names match tag2text_swin_14m.pth under `visual_encoder.` (`patch_embed.proj`, `layers.2.blocks.17.attn.
relative_position_bias_table`, `layers.0.downsample.reduction`, `norm`). The relative position index and the
shifted-window masks are non-persistent buffers: VBench deletes them from the checkpoint and rebuilds them.
forward returns Tag2Text's image embeddings: the mean token after the final norm, then every token, (B, 1+L, C).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from models.vbench.layers import Mlp

SHIFT_MASK = -100.0  # Swin's additive mask between tokens that came from different regions of a shifted window


@dataclass(frozen=True)
class SwinConfig:
    """Widths of a Swin encoder; defaults are Swin-B at 384 px with 12x12 windows (config_swinB_384.json)."""

    image_size: int = 384
    patch_size: int = 4
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 12
    mlp_ratio: float = 4.0

    @property
    def width(self) -> int:
        """Channels of the last stage: the image embeddings' width."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) → (B * H/w * W/w, w*w, C) non-overlapping windows, row-major."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """Inverse of window_partition: (B * h/w * wd/w, w*w, C) → (B, h, wd, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def relative_index(w: int) -> torch.Tensor:
    """(w*w, w*w) index into the (2w-1)^2 table of relative offsets between two tokens of a window."""
    # built on the CPU even under a meta-device context, where these ops go through slow decompositions
    axis = torch.arange(w, device="cpu")
    coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij")).flatten(1)  # (2, w*w)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)  # (w*w, w*w, 2), from 0
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def shift_mask(resolution: int, w: int, shift: int) -> torch.Tensor:
    """(nW, w*w, w*w) additive mask of a cyclically shifted window grid: 0 within a region, -100 across."""
    regions = torch.zeros(1, resolution, resolution, 1, device="cpu")
    spans = (slice(0, -w), slice(-w, -shift), slice(-shift, None))
    for n, (hs, ws) in enumerate((hs, ws) for hs in spans for ws in spans):
        regions[:, hs, ws, :] = n
    ids = window_partition(regions, w).squeeze(-1)  # (nW, w*w)
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learned bias per relative offset and head."""

    def __init__(self, dim: int, w: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_index(w), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))



class SwinBlock(nn.Module):
    """(Shifted-)window attention and MLP, pre-norm; a stage no larger than a window is one unshifted window."""

    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", shift_mask(resolution, window, shift) if shift else None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, w, s = self.resolution, self.window, self.shift
        b, _, c = x.shape
        y = self.norm1(x).view(b, r, r, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, w), self.attn_mask), w, r, r)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y.reshape(b, r * r, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens concatenated (Swin's x0, x1, x2, x3 order), normed, projected to twice the width."""

    def __init__(self, resolution: int, dim: int):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.resolution, self.resolution, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and half-window-shifted windows, then an optional patch merging."""

    def __init__(self, cfg: SwinConfig, index: int, resolution: int):
        super().__init__()
        dim = cfg.embed_dim * 2**index
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, cfg.heads[index], cfg.window, 0 if i % 2 == 0 else cfg.window // 2,
                      cfg.mlp_ratio) for i in range(cfg.depths[index]))
        self.downsample = PatchMerging(resolution, dim) if index < len(cfg.depths) - 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    """(B, 3, H, W) → (B, H/p * W/p, C) normed patch tokens."""

    def __init__(self, cfg: SwinConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))  # (B, C, h, w) -> (B, h*w, C)


class SwinTransformer(nn.Module):
    """forward(images (B, 3, S, S), ImageNet-normalised) → (B, 1 + (S/p/2^(stages-1))^2, width)."""

    def __init__(self, cfg: SwinConfig = SwinConfig()):
        super().__init__()
        self.cfg = cfg
        grid = cfg.image_size // cfg.patch_size
        self.patch_embed = PatchEmbed(cfg)
        self.layers = nn.ModuleList(SwinStage(cfg, i, grid // 2**i) for i in range(len(cfg.depths)))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.cfg.image_size
        if tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"Swin expects (B, 3, {size}, {size}) images, got {tuple(images.shape)}")
        x = self.patch_embed(images)
        for stage in self.layers:
            x = stage(x)
        x = self.norm(x)
        return torch.cat([x.mean(1, keepdim=True), x], dim=1)
