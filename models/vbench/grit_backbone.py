"""GRiT's backbone: a ViTDet ViT (window + global attention, decomposed relative positions) and GRiT's pyramid.

Mirrors grit/modeling/backbone/vit.py (`build_vit_fpn_backbone`, from detectron2's ViTDet): a 16 px patch
embedding, an absolute position table for the 224 px pre-training grid (bicubic-resized to the input grid),
blocks that attend in 14 x 14 windows (zero-padded) or globally, each with decomposed relative positions
(linearly resized when the grid differs), and ViT_FPN: stride 8 by a 2x2 transposed conv, 16 as is, 32 by
max-pooling, each through 1x1 and 3x3 convs with channel LayerNorms, then P6/P7 convs on P5. Parameter names
match the checkpoint (`backbone.bottom_up.blocks.0.attn.rel_pos_h`, `backbone.fpn_stride8_conv1.weight`, …).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.grit_config import GRiTConfig
from models.vbench.layers import Mlp


def window_partition(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) → (B * windows, size, size, C), zero-padding H and W up to multiples of size."""
    b, h, w, c = x.shape
    pad_h, pad_w = (size - h % size) % size, (size - w % size) % size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // size, size, wp // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, size: int, padded: tuple[int, int], hw: tuple[int, int]
                       ) -> torch.Tensor:
    """Inverse of window_partition: (B * windows, size, size, C) → (B, H, W, C) without the padding."""
    hp, wp = padded
    b = windows.shape[0] // (hp * wp // size // size)
    x = windows.view(b, hp // size, wp // size, size, size, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, -1)[:, : hw[0], : hw[1]]


def rel_pos_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """(q, k, C) relative-position embeddings, the table linearly resized to 2 max(q, k) - 1 rows if needed."""
    length = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != length:
        rel_pos = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=length,
                                mode="linear").reshape(-1, length).permute(1, 0)
    q = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    return rel_pos[((q - k) + (k_size - 1) * max(q_size / k_size, 1.0)).long()]


def add_rel_pos(attn: torch.Tensor, q: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor,
                size: tuple[int, int]) -> torch.Tensor:
    """MViTv2's decomposed relative positions added to (B, HW, HW) logits of queries q (B, HW, C)."""
    h, w = size
    b, _, dim = q.shape
    r_q = q.reshape(b, h, w, dim)
    along_h = torch.einsum("bhwc,hkc->bhwk", r_q, rel_pos_table(h, h, rel_h))
    along_w = torch.einsum("bhwc,wkc->bhwk", r_q, rel_pos_table(w, w, rel_w))
    attn = attn.view(b, h, w, h, w) + along_h[:, :, :, :, None] + along_w[:, :, :, None, :]
    return attn.view(b, h * w, h * w)


def abs_pos(table: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + g*g, C) table without its CLS slot, bicubic-resized to (1, H, W, C) when the grid differs."""
    table = table[:, 1:]
    size = math.isqrt(table.shape[1])
    grid = table.reshape(1, size, size, -1)
    if (size, size) == tuple(hw):
        return grid
    return F.interpolate(grid.permute(0, 3, 1, 2), size=hw, mode="bicubic", align_corners=False).permute(0, 2, 3, 1)


class Attention(nn.Module):
    """Multi-head attention over a (B, H, W, C) grid with decomposed relative positions."""

    def __init__(self, dim: int, heads: int, grid: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, dim // heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.heads, h * w, -1).unbind(0)  # each (B * heads, HW, head_dim)
        attn = add_rel_pos((q * self.scale) @ k.transpose(-2, -1), q, self.rel_pos_h, self.rel_pos_w, (h, w))
        x = (attn.softmax(dim=-1) @ v).view(b, self.heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(x)



class Block(nn.Module):
    """Pre-norm transformer block; window_size > 0 attends within zero-padded windows."""

    def __init__(self, cfg: GRiTConfig, window_size: int):
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.vit_norm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.heads, window_size or cfg.grid)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.vit_norm_eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut, x = x, self.norm1(x)
        if self.window_size > 0:
            hw = (x.shape[1], x.shape[2])
            x, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches: (B, 3, H, W) → (B, H/p, W/p, C)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ViT(nn.Module):
    """ViTDet's plain ViT: (B, 3, H, W) → the stride-16 map (B, C, H/16, W/16)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.patch_embed = PatchEmbed(cfg)
        grid = cfg.pretrain_img_size // cfg.patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.embed_dim))  # slot 0: pre-training CLS
        self.blocks = nn.ModuleList([Block(cfg, cfg.window_size if i in cfg.window_blocks else 0)
                                     for i in range(cfg.depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + abs_pos(self.pos_embed, (x.shape[1], x.shape[2]))
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (GRiT permutes to channels-last and back)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LastLevelP6P7(nn.Module):
    """CenterNet's LastLevelP6P7_P5: P6 = conv(P5, stride 2), P7 = conv(relu(P6), stride 2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class GRiTBackbone(nn.Module):
    """GRiT's ViT_FPN: (B, 3, H, W) → [P3, P4, P5, P6, P7] at strides 8 … 128, fpn_channels each."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        dim, out = cfg.embed_dim, cfg.fpn_channels
        self.bottom_up = ViT(cfg)
        self.maxpool = nn.MaxPool2d(2, stride=2)
        self.fpn_stride_16_8 = nn.ConvTranspose2d(dim, dim, 2, stride=2, bias=False)
        for stride in (8, 16, 32):
            setattr(self, f"fpn_stride{stride}_conv1", nn.Conv2d(dim, out, 1, bias=False))
            setattr(self, f"fpn_stride{stride}_norm1", ChannelNorm(out))
            setattr(self, f"fpn_stride{stride}_conv2", nn.Conv2d(out, out, 3, padding=1, bias=False))
            setattr(self, f"fpn_stride{stride}_norm2", ChannelNorm(out))
        self.top_block = LastLevelP6P7(out)

    def _level(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        x = getattr(self, f"fpn_stride{stride}_norm1")(getattr(self, f"fpn_stride{stride}_conv1")(x))
        return getattr(self, f"fpn_stride{stride}_norm2")(getattr(self, f"fpn_stride{stride}_conv2")(x))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feat = self.bottom_up(x)
        p3 = self._level(self.fpn_stride_16_8(feat), 8)
        p4 = self._level(feat, 16)
        p5 = self._level(self.maxpool(feat), 32)
        return [p3, p4, p5, *self.top_block(p5)]
