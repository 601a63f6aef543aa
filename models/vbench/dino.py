"""DINO ViT (Caron et al., ICCV 2021) as in facebookresearch/dino's vision_transformer.py (VBench subject_consistency).

Parameter names match the official checkpoints (`cls_token`, `pos_embed`, `patch_embed.proj.weight`,
`blocks.0.attn.qkv.weight`, …, `norm.bias`), so `dino_vitbase16_pretrain.pth` loads with strict keys. forward
returns the CLS token after the final LayerNorm (the hub model's head is the identity). The position embedding
is interpolated exactly like DINO's `interpolate_pos_encoding` (bicubic by scale factor, +0.1 offset): VBench
feeds non-square frames (short side 224, no crop), and transformers' ViT interpolates to a size instead, which
samples the grid at different points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.layers import Mlp


DINO_HEAD_DIM = 64  # every released DINO ViT (S, B) uses 64-wide attention heads


@dataclass(frozen=True)
class DinoConfig:
    """Widths of a DINO ViT; defaults are ViT-B/16 (dino_vitb16)."""

    image_size: int = 224  # the grid the position embedding was trained on
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6


class PatchEmbed(nn.Module):
    """Non-overlapping patches → tokens: (B, 3, H, W) → (B, N, D)."""

    def __init__(self, cfg: DinoConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.proj = nn.Conv2d(3, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, N, D/heads)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))



class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: DinoConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg.dim, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DinoViT(nn.Module):
    """forward(images (B, 3, H, W), ImageNet-normalised) → CLS features (B, D); H, W any multiples of the patch."""

    def __init__(self, cfg: DinoConfig = DinoConfig()):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        grid = cfg.image_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def interpolate_pos_encoding(self, npatch: int, height: int, width: int) -> torch.Tensor:
        """DINO's rule: bicubic by scale factor (h0 + 0.1) / sqrt(N), so the output grid is exactly (h0, w0)."""
        n = self.pos_embed.shape[1] - 1
        if npatch == n and height == width:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim, side = patch_pos.shape[-1], int(math.sqrt(n))
        h0, w0 = height // self.cfg.patch_size + 0.1, width // self.cfg.patch_size + 0.1
        grid = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)  # (1, D, side, side)
        grid = F.interpolate(grid, scale_factor=(h0 / math.sqrt(n), w0 / math.sqrt(n)), mode="bicubic")
        if (grid.shape[-2], grid.shape[-1]) != (int(h0), int(w0)):
            raise ValueError(f"position grid {tuple(grid.shape[-2:])} != patch grid {(int(h0), int(w0))}")
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)  # (1, h0*w0, D)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens.shape[1] - 1, h, w)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def DINO_ViT_B16(**overrides) -> DinoViT:
    """dino_vitb16: ViT-B/16 (dino_vitbase16_pretrain.pth), 85.8M parameters."""
    return DinoViT(replace(DinoConfig(), **overrides))


def DINO_ViT_S16(**overrides) -> DinoViT:
    """dino_vits16: ViT-S/16 (dino_deitsmall16_pretrain.pth)."""
    return DinoViT(replace(DinoConfig(dim=384, heads=6), **overrides))


DINO_models = {"ViT-B/16": DINO_ViT_B16, "ViT-S/16": DINO_ViT_S16}
