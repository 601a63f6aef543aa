"""Per-frame reconstruction metrics of videos (B, 3, T, H, W): PSNR and SSIM on [0, 1], LPIPS on [-1, 1].

Definitions as in common_metrics_on_video_quality and WF-VAE (EVAL.md): every function returns one value per
frame, shape (B, T); the reported score is the mean over frames and videos (`mean_score`).
"""
from __future__ import annotations

import math

import torch

from models.ssim import SSIM_SIGMA, SSIM_WINDOW, ssim_per_channel

PSNR_CAP = 100.0  # identical frames: 20·log10(1/√1e-10), the cap of the reference implementation


def _check(real: torch.Tensor, fake: torch.Tensor, name: str) -> None:
    if real.shape != fake.shape or real.ndim != 5 or real.shape[1] != 3:
        raise ValueError(f"{name}: expected two videos (B, 3, T, H, W) of one shape, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B*T, C, H, W)


def psnr(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """PSNR per frame (B, T) of videos in [0, 1]: 20·log10(1/√MSE), capped at 100 dB."""
    _check(real, fake, "psnr")
    mse = (real.double() - fake.double()).pow(2).mean(dim=(1, 3, 4))  # (B, T)
    value = 20 * torch.log10(1 / mse.clamp_min(1e-300).sqrt())
    return value.clamp(max=PSNR_CAP)


def ssim(real: torch.Tensor, fake: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """SSIM per frame (B, T) of videos in [0, 1]: Gaussian 11x11 σ 1.5, per RGB channel, then averaged.

    Matches skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...): population (co)variances, the map's
    mean over the pixels at least window//2 from the border.
    """
    _check(real, fake, "ssim")
    b, _, t, _, _ = real.shape
    per_channel = ssim_per_channel(_frames(real.double()), _frames(fake.double()), window, sigma)  # (B*T, 3)
    return per_channel.mean(dim=1).view(b, t)


def lpips(real: torch.Tensor, fake: torch.Tensor, model: torch.nn.Module, batch_frames: int = 32) -> torch.Tensor:
    """LPIPS per frame (B, T) of videos in [-1, 1], `batch_frames` frames per call of `model`."""
    _check(real, fake, "lpips")
    b, _, t, _, _ = real.shape
    x, y = _frames(real), _frames(fake)  # (B*T, 3, H, W)
    out = [model(x[i : i + batch_frames], y[i : i + batch_frames]) for i in range(0, x.shape[0], batch_frames)]
    return torch.cat(out).double().view(b, t)


def mean_score(per_frame: list[torch.Tensor]) -> float:
    """Mean over every frame of every video (all clips have the same length, so also the mean of video means)."""
    values = torch.cat([v.reshape(-1).double() for v in per_frame])
    if values.numel() == 0:
        raise ValueError("mean_score: no frames")
    result = float(values.mean())
    if not math.isfinite(result):
        raise ValueError(f"mean_score: non-finite mean {result}")
    return result
