"""Rectified-flow time: samplers of t in (0, 1) and Open-Sora's resolution/length-aware shift.

Convention (RECIPE §4): t = 0 is data, t = 1 is pure noise. The shift moves t towards noise for large or long
inputs, whose signal survives more noise: t' = r·t / (1 + (r − 1)·t), r = ratio below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class TimestepSamplerConfig:
    """How training draws t: uniform on (0, 1) or logit-normal, sigmoid(N(mean, std²)) (SD3, Open-Sora 1.2)."""

    kind: Literal["uniform", "logit_normal"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "logit_normal"):
            raise ValueError(f"TimestepSamplerConfig.kind must be 'uniform' or 'logit_normal', got {self.kind!r}")
        if self.logit_std <= 0:
            raise ValueError(f"TimestepSamplerConfig.logit_std must be > 0, got {self.logit_std}")


def sample_timesteps(
    n: int,
    cfg: TimestepSamplerConfig = TimestepSamplerConfig(),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw n training times t in (0, 1) as a float32 tensor (n,)."""
    if cfg.kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    z = torch.randn(n, generator=generator, device=device)
    return torch.sigmoid(cfg.logit_mean + cfg.logit_std * z)


def logit_normal_cdf(x: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """CDF of sigmoid(N(mean, std²)) at x in (0, 1): Φ((logit(x) − mean) / std)."""
    z = (torch.logit(x.double()) - mean) / std
    return 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))


@dataclass(frozen=True)
class ShiftConfig:
    """Constants of Open-Sora 1.2's timestep_transform.

    ratio = sqrt(H·W / base_resolution) · sqrt(latent_frames / base_num_frames) · scale, with H, W in pixels and
    latent_frames = num_frames // frames_per_chunk · latents_per_chunk for a pixel frame count num_frames
    (the 3D VAE turns each 17-frame chunk into 5 latent frames, so 51 → 15, 102 → 30); images (num_frames = 1)
    count as 1. Open-Sora yields 0 for 1 < num_frames < 17, which collapses every t to 0; we count those as
    one chunk's worth of 1 latent frame instead (min_latent_frames).
    """

    base_resolution: int = 512 * 512
    frames_per_chunk: int = 17
    latents_per_chunk: int = 5
    base_num_frames: int = 1
    min_latent_frames: int = 1
    scale: float = 1.0


def shift_ratio(
    height: float | torch.Tensor,
    width: float | torch.Tensor,
    num_frames: int | torch.Tensor,
    cfg: ShiftConfig = ShiftConfig(),
) -> torch.Tensor:
    """Shift ratio for pixel height, width and pixel frame count (scalars or (B,) tensors) → float64 tensor."""
    h = torch.as_tensor(height, dtype=torch.float64)
    w = torch.as_tensor(width, dtype=torch.float64)
    frames = torch.as_tensor(num_frames, dtype=torch.int64)
    latent = torch.div(frames, cfg.frames_per_chunk, rounding_mode="floor") * cfg.latents_per_chunk
    latent = torch.where(frames == 1, torch.ones_like(latent), latent.clamp(min=cfg.min_latent_frames))
    ratio_space = torch.sqrt(h * w / cfg.base_resolution)
    ratio_time = torch.sqrt(latent.double() / cfg.base_num_frames)
    return ratio_space * ratio_time * cfg.scale


def shift_timesteps(t: torch.Tensor, ratio: float | torch.Tensor) -> torch.Tensor:
    """t' = ratio·t / (1 + (ratio − 1)·t); fixes 0 and 1, identity at ratio 1, towards noise for ratio > 1."""
    r = torch.as_tensor(ratio, dtype=t.dtype, device=t.device)
    return r * t / (1 + (r - 1) * t)
