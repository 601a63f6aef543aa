"""Embeddings of STDiT: video patches, timesteps, fps, captions, 2D sin-cos positions and temporal RoPE."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def approx_gelu() -> nn.Module:
    """GELU with the tanh approximation, as PixArt and Open-Sora use everywhere."""
    return nn.GELU(approximate="tanh")


class Mlp(nn.Module):
    """fc1 → GELU-tanh → fc2; named like timm's Mlp so PixArt/Open-Sora weights map one to one."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = approx_gelu()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed3D(nn.Module):
    """Cut a latent video into (pt, ph, pw) patches and project each to hidden_size tokens."""

    def __init__(self, patch_size: tuple[int, int, int], in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pt, ph, pw = self.patch_size
        _, _, t, h, w = x.shape
        # Pad at the end of each axis so odd latent sizes still patchify; unpatchify crops it back.
        x = F.pad(x, (0, (-w) % pw, 0, (-h) % ph, 0, (-t) % pt))
        x = self.proj(x)  # (B, D, T', H', W')
        x = x.flatten(3)  # (B, D, T', H'·W'), tokens row-major over (H', W')
        # contiguous: elementwise ops keep their first input's strides, so a permuted view here would leave the
        # whole residual stream channel-strided and make every LayerNorm and reshape copy it (CPU: ~7% of a step)
        return x.permute(0, 2, 3, 1).contiguous()  # (B, T', S, D)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """GLIDE/DiT sinusoidal embedding of (B,) scalars: [cos(t·f), sin(t·f)], f from 1 down to 1/max_period."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Diffusion timestep (B,) → (B, D): sinusoidal features then Linear → SiLU → Linear."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_freq = timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))


class SizeEmbedder(TimestepEmbedder):
    """A scalar condition such as fps (B,) → (B, D); same layout as the timestep embedder (Open-Sora)."""


class CaptionEmbedder(nn.Module):
    """Project text-encoder tokens C_text → D → D; holds the null caption used for caption dropout (CFG)."""

    def __init__(
        self, in_channels: int, hidden_size: int, uncond_prob: float, token_num: int, learn_null: bool
    ) -> None:
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden_size, hidden_size)
        self.uncond_prob = uncond_prob
        null = torch.randn(token_num, in_channels) / in_channels**0.5
        # PixArt and Open-Sora keep the null caption fixed (a buffer saved in the state dict); learning it is optional.
        if learn_null:
            self.y_embedding = nn.Parameter(null)
        else:
            self.register_buffer("y_embedding", null)

    def forward(self, caption: torch.Tensor, drop_ids: torch.Tensor | None) -> torch.Tensor:
        """caption (B, L, C_text); drop_ids (B,) bool marks samples whose caption becomes the null caption."""
        if drop_ids is not None:
            if caption.shape[1:] != self.y_embedding.shape:
                raise ValueError(
                    f"caption dropout needs captions of shape (B, {tuple(self.y_embedding.shape)}) to swap in the "
                    f"null caption, got {tuple(caption.shape)}; pad text to model_max_length"
                )
            null = self.y_embedding.to(caption.dtype)[None]  # (1, L, C_text)
            caption = torch.where(drop_ids.to(caption.device)[:, None, None], null, caption)
        return self.y_proj(caption)


def get_2d_sincos_pos_embed(
    dim: int, h: int, w: int, scale: float = 1.0, base_size: float | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """MAE/PixArt 2D sin-cos table (h·w, dim), tokens row-major over (h, w).

    Grid coordinates are i / scale, times base_size / h (rows) or base_size / w (columns) when base_size is
    given: PixArt's `lewei_scale` is `scale`; its fixed `base_size` is the token grid side of the training
    resolution. The first half of the channels encodes the column (w) coordinate, the second half the row,
    each as [sin, cos] over dim/4 frequencies 1/10000^(k/(dim/4)).
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos position embedding needs hidden_size divisible by 4, got {dim}")
    rows = torch.arange(h, dtype=torch.float64, device=device) / scale
    cols = torch.arange(w, dtype=torch.float64, device=device) / scale
    if base_size is not None:
        rows = rows * (base_size / h)
        cols = cols * (base_size / w)
    grid_rows, grid_cols = torch.meshgrid(rows, cols, indexing="ij")  # each (h, w)
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)

    def sincos(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1)[:, None] * omega[None]  # (h·w, dim/4)
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # (h·w, dim/2)

    return torch.cat([sincos(grid_cols), sincos(grid_rows)], dim=1).float()  # (h·w, dim)


def opensora_pos_embed(
    dim: int, h: int, w: int, pixel_height: float, pixel_width: float, input_sq_size: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Open-Sora 1.2's resolution-aware table: base_size = round(sqrt(h·w)), scale = sqrt(H_px·W_px)/input_sq_size.

    For a square grid this places tokens at 0 … (input_sq_size / pixels-per-token) whatever the resolution,
    i.e. every resolution is interpolated onto the 512px grid; PixArt-Σ-2K (base_size 128, lewei_scale 4)
    gives the same table at 2048².
    """
    scale = math.sqrt(pixel_height * pixel_width) / input_sq_size
    return get_2d_sincos_pos_embed(dim, h, w, scale=scale, base_size=round(math.sqrt(h * w)), device=device)


def apply_rope(x: torch.Tensor, theta: float = 10000.0, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Rotary embedding over the sequence axis -2 of x (..., N, head_dim), interleaved channel pairs.

    positions (N,): each token's position, default 0..N-1 (full attention passes each token's frame index).

    Matches `rotary_embedding_torch.RotaryEmbedding(dim=head_dim).rotate_queries_or_keys` that Open-Sora 1.2
    uses on temporal attention: pair (2k, 2k+1) rotates by angle n / theta^(2k/head_dim) at position n.
    """
    n, dim = x.shape[-2], x.shape[-1]
    if dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim)
    pos = torch.arange(n, dtype=torch.float32, device=x.device) if positions is None else positions.float()
    angles = pos[:, None] * inv_freq[None]  # (N, dim/2)
    angles = angles.repeat_interleave(2, dim=-1)  # (N, dim), pairs share an angle
    xf = x.float()
    pairs = xf.unflatten(-1, (dim // 2, 2))  # (..., N, dim/2, 2)
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (..., N, dim)
    return (xf * angles.cos() + rotated * angles.sin()).to(x.dtype)
