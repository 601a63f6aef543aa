"""STDiT blocks: adaLN-single self-attention (spatial, temporal or full), text cross-attention, modulated MLP."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.stdit.embed import Mlp, apply_rope


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """PixArt's t2i_modulate: x·(1 + scale) + shift."""
    return x * (1 + scale) + shift


class RMSNorm(nn.Module):
    """RMSNorm with a learnable weight (Llama/T5 style), computed in float32; used for QK-norm."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention over (B, N, D) with optional QK-norm and RoPE (RoPE applied after QK-norm)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, qk_norm_eps: float, rope_theta: float | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.q_norm = RMSNorm(self.head_dim, qk_norm_eps) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim, qk_norm_eps) if qk_norm else nn.Identity()
        self.rope_theta = rope_theta
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D); positions (N,) the RoPE position of each token (default 0..N-1)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim)  # (B, N, 3, heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, hd)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope_theta is not None:
            q, k = apply_rope(q, self.rope_theta, positions), apply_rope(k, self.rope_theta, positions)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, hd)
        out = out.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj(out)


class CrossAttention(nn.Module):
    """Video tokens (B, N, D) attend to text tokens (B, L, D); padded text tokens are masked out."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q_linear(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, N, hd)
        kv = self.kv_linear(cond).view(b, cond.shape[1], 2, self.num_heads, self.head_dim)  # (B, L, 2, heads, hd)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, hd)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L) bool, True = real token
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, N, hd)
        out = out.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj(out)


class STDiTBlock(nn.Module):
    """One spatial (attention within each frame) or temporal (attention across frames) block of STDiT3.

    full_attention turns a temporal block into one over all T·S tokens of the clip, RoPE by frame index: a token
    sees every position of every frame in one hop, not only its own position across frames.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        mlp_ratio: float,
        qk_norm: bool,
        qk_norm_eps: float,
        norm_eps: float,
        temporal: bool,
        rope_theta: float,
        full_attention: bool = False,
    ) -> None:
        super().__init__()
        self.temporal = temporal
        self.full_attention = full_attention and temporal
        self.norm1 = nn.LayerNorm(hidden_size, eps=norm_eps, elementwise_affine=False)
        self.attn = Attention(hidden_size, num_heads, qk_norm, qk_norm_eps, rope_theta if temporal else None)
        self.cross_attn = CrossAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, eps=norm_eps, elementwise_affine=False)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio), hidden_size)
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size**0.5)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, t_mod: torch.Tensor, text_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x (B, T, S, D); y (B, L, D); t_mod (B, T or 1, 6·D), the adaLN-single vector of each frame."""
        b, t, s, d = x.shape
        mod = self.scale_shift_table + t_mod.unflatten(-1, (6, d))  # (B, Tm, 6, D)
        # One (B, Tm, 1, D) vector per role, broadcast over the S tokens of each frame.
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.unsqueeze(2).unbind(3)

        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, T, S, D)
        if self.full_attention:
            frames = torch.arange(t, device=x.device).repeat_interleave(s)  # (T·S,) each token's frame
            h = self.attn(h.reshape(b, t * s, d), frames).view(b, t, s, d)  # (B, T·S, D) → (B, T, S, D)
        elif self.temporal:
            h = h.transpose(1, 2).reshape(b * s, t, d)  # (B·S, T, D): each position attends over frames
            h = self.attn(h)
            h = h.view(b, s, t, d).transpose(1, 2)  # (B, T, S, D)
        else:
            h = h.reshape(b * t, s, d)  # (B·T, S, D): each frame attends over its own tokens
            h = self.attn(h)
            h = h.view(b, t, s, d)  # (B, T, S, D)
        x = x + gate_msa * h

        # Cross-attention has neither norm nor modulation (PixArt); all T·S tokens of a sample query its text.
        x = x + self.cross_attn(x.reshape(b, t * s, d), y, text_mask).view(b, t, s, d)  # (B, T·S, D) → (B, T, S, D)

        h = modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + gate_mlp * self.mlp(h)


class T2IFinalLayer(nn.Module):
    """PixArt's final layer: adaLN from the timestep embedding and a (2, D) table, then Linear to patch pixels.

    Given frames get timestep-0 shift/scale. Open-Sora's T2IFinalLayer computes that branch from the already
    modulated x (norm applied twice); here both branches modulate the same normalised x, as intended.
    """

    def __init__(self, hidden_size: int, patch_volume: int, out_channels: int, norm_eps: float) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, eps=norm_eps, elementwise_affine=False)
        self.linear = nn.Linear(hidden_size, patch_volume * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size**0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, T, S, D); t (B, T or 1, D) the timestep embedding (not the t_block output) of each frame."""
        mod = self.scale_shift_table + t.unsqueeze(2)  # (B, Tm, 2, D)
        shift, scale = mod.unsqueeze(2).unbind(3)  # each (B, Tm, 1, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, T, S, pt·ph·pw·C_out)
