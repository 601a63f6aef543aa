"""LAION aesthetic predictors over L2-normalised CLIP ViT-L/14 image embeddings (768-d), scores on a 0-10 scale.

Two heads, with the official checkpoints' parameter names:
  linear  LAION-AI/aesthetic-predictor `sa_0_4_vit_l_14_linear.pth`: nn.Linear(768, 1) (`weight`, `bias`);
          VBench's aesthetic_quality uses this one
  mlp     christophschuhmann/improved-aesthetic-predictor `sac+logos+ava1-l14-linearMSE.pth`: the 5-layer MLP
          (`layers.0.weight`, …, `layers.7.bias`; dropouts between, inactive in eval)
"""
from __future__ import annotations

import torch
import torch.nn as nn

EMBED_DIM = 768  # CLIP ViT-L/14 projection width


class LinearHead(nn.Linear):
    """sa_0_4_vit_l_14_linear: one linear layer, (B, 768) → (B, 1)."""

    def __init__(self, dim: int = EMBED_DIM):
        super().__init__(dim, 1)


class MLPHead(nn.Module):
    """improved-aesthetic-predictor: 768 → 1024 → 128 → 64 → 16 → 1, no activations (as released)."""

    def __init__(self, dim: int = EMBED_DIM):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def head_for(state: dict[str, torch.Tensor]) -> nn.Module:
    """The head whose parameter names match a checkpoint's (input width read off its first layer)."""
    if "weight" in state and "bias" in state and len(state) == 2:
        return LinearHead(int(state["weight"].shape[1]))
    if "layers.0.weight" in state:
        return MLPHead(int(state["layers.0.weight"].shape[1]))
    raise KeyError(f"not a LAION aesthetic head: keys {sorted(state)[:6]}")
