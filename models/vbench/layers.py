"""Layers the VBench networks share, named like timm's so official checkpoints map one to one."""
from __future__ import annotations

import torch
import torch.nn as nn


class Mlp(nn.Module):
    """timm Mlp: fc1, exact GELU, fc2 (DINO, UMT, MUSIQ, Swin, GRiT's ViT)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
