"""UMT video ViT classifier (Li et al., ICCV 2023: Unmasked Teacher), as VBench's human_action builds it.

Mirrors vbench/third_party/umt/models/modeling_finetune.py `vit_large_patch16_224(num_classes=400, all_frames=16,
tubelet_size=1, use_mean_pooling=True)`: a Conv3d patch embedding (tubelet 1 x 16 x 16), a sinusoidal position
table built for the 8-frame checkpoint grid and linearly interpolated to 16 frames (a parameter, so a checkpoint
may override it), pre-norm blocks whose qkv carries separate q and v biases (k has none), mean pooling, fc_norm,
and a 400-way head. Parameter names match l16_ptk710_ftk710_ftk400_f16_res224.pth.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.layers import Mlp


@dataclass(frozen=True)
class UMTConfig:
    """Widths of the UMT classifier; defaults are ViT-L/16, 16 frames, 224 px, Kinetics-400."""

    image_size: int = 224
    patch_size: int = 16
    frames: int = 16
    tubelet: int = 1
    dim: int = 1024
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    classes: int = 400
    checkpoint_frames: int = 8  # the sinusoid table is laid out for the 8-frame pre-training grid
    norm_eps: float = 1e-6

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


def position_table(cfg: UMTConfig) -> torch.Tensor:
    """(1, T*g*g, D) sin-cos table of the checkpoint grid, linearly interpolated from 8 to T frames (UMT's rule)."""
    n, d = cfg.checkpoint_frames * cfg.grid**2, cfg.dim
    j = np.arange(d)
    angles = np.arange(n, dtype=np.float64)[:, None] / np.power(10000, 2 * (j // 2) / d)[None, :]
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    # built on the CPU even under a meta-device context, where this copy would crawl
    table = torch.tensor(angles, dtype=torch.float, device="cpu").unsqueeze(0)  # (1, 8*g*g, D)
    t = cfg.frames // cfg.tubelet
    if t != cfg.checkpoint_frames:
        g = cfg.grid
        table = table.reshape(1, cfg.checkpoint_frames, g, g, d).permute(0, 2, 3, 4, 1).reshape(-1, d,
                                                                                              cfg.checkpoint_frames)
        table = F.interpolate(table, size=t, mode="linear")  # (g*g, D, T)
        table = table.reshape(1, g, g, d, t).permute(0, 4, 1, 2, 3).flatten(1, 3)  # (1, T*g*g, D)
    return table


class Attention(nn.Module):
    """Self-attention whose fused qkv projection has q and v biases only."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]  # each (B, heads, N, D/heads)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))



class Block(nn.Module):
    def __init__(self, cfg: UMTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg.dim, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """(B, 3, T, H, W) → (B, T/tubelet * H/p * W/p, D) tokens."""

    def __init__(self, cfg: UMTConfig):
        super().__init__()
        kernel = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, t, h, w) -> (B, t*h*w, D)


class UMTClassifier(nn.Module):
    """forward(video (B, 3, T, H, W), ImageNet-normalised) → class logits (B, classes)."""

    def __init__(self, cfg: UMTConfig = UMTConfig()):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = nn.Parameter(position_table(cfg))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.fc_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if tuple(video.shape[2:]) != (c.frames, c.image_size, c.image_size):
            raise ValueError(f"UMT expects (B, 3, {c.frames}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(video.shape)}")
        x = self.patch_embed(video) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.fc_norm(x.mean(1)))


def UMT_L16(**overrides) -> UMTClassifier:
    """vit_large_patch16_224, 16 frames, Kinetics-400 (l16_ptk710_ftk710_ftk400_f16_res224.pth)."""
    return UMTClassifier(replace(UMTConfig(), **overrides))


UMT_models = {"L/16": UMT_L16}
