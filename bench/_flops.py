"""Analytic model FLOPs of one STDiT training step (forward + backward), the numerator of MFU."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from models.stdit import STDiT

# Forward is 2 FLOPs per multiply-add; backward costs twice the forward (grads of inputs and of weights).
TRAIN_FACTOR = 3


@dataclass
class StepFlops:
    """Training-step FLOPs by part; attention counts only the QK^T and AV matmuls."""

    dense: float
    spatial_attn: float
    temporal_attn: float
    cross_attn: float

    @property
    def total(self) -> float:
        return self.dense + self.spatial_attn + self.temporal_attn + self.cross_attn


def _tokens_through(name: str, batch: int, video_tokens: int, text_tokens: int) -> int:
    """How many rows go through the Linear/Conv named `name` in one forward."""
    if name.startswith("y_embedder") or name.endswith("kv_linear"):
        return batch * text_tokens  # caption projection and cross-attention keys/values run on text tokens
    if name.startswith(("t_embedder", "fps_embedder", "t_block")):
        return batch  # one timestep / fps vector per sample
    return batch * video_tokens


def stdit_step_flops(model: STDiT, batch: int, frames: int, tokens_per_frame: int, text_tokens: int) -> StepFlops:
    """6·weights·tokens for every Linear/Conv (rows they see), plus 12·m·n_q·n_k·D per attention layer.

    frames and tokens_per_frame are the token grid after patching (T', H'·W'); m·n_q·n_k sums over the
    sequences of a layer: spatial (B·T' sequences of H'·W'), temporal (B·H'·W' of T'), cross (B of T'·H'·W'
    queries on the text tokens). Elementwise work (norms, modulation, RoPE, softmax) is not model FLOPs.
    """
    cfg = model.cfg
    video_tokens = frames * tokens_per_frame
    dense = 0.0
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            dense += 2 * TRAIN_FACTOR * module.weight.numel() * _tokens_through(name, batch, video_tokens, text_tokens)
    d = cfg.hidden_size
    attn = 2 * 2 * TRAIN_FACTOR * d  # QK^T and AV, each 2·n_q·n_k·D in the forward
    blocks = cfg.depth * (2 if cfg.temporal else 1)
    return StepFlops(
        dense=dense,
        spatial_attn=cfg.depth * attn * batch * frames * tokens_per_frame**2,
        temporal_attn=(cfg.depth if cfg.temporal else 0) * attn * batch * tokens_per_frame * frames**2,
        cross_attn=blocks * attn * batch * video_tokens * text_tokens,
    )
