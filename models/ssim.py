"""SSIM on frames (N, C, H, W) in [0, 1]: Wang et al. 2004 with an 11x11 Gaussian window, σ 1.5.

One implementation for the score eval.vae reports (components/evaluation/video_metrics.py, in float64) and the
structural term a VAE can train with (SSIMDistance, in the model's dtype, differentiable).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2  # (K1·L)², L = 1
SSIM_C2 = 0.03**2


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of `size` taps, as cv2.getGaussianKernel and scipy's truncated filter."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' region only (the border pixels SSIM discards)."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def ssim_per_channel(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW,
                     sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(N, C, H, W) twice, in [0, 1] -> (N, C): the SSIM map's mean over the pixels at least window//2 from the
    border, with population (co)variances (skimage's gaussian_weights=True, use_sample_covariance=False)."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim: expected two frame batches (N, C, H, W) of one shape, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"ssim: frames of {x.shape[-2]}x{x.shape[-1]} are smaller than the {window}x{window} window")
    g = gaussian_window(window, sigma, x.dtype).to(x.device)
    mx, my = _blur(x, g), _blur(y, g)
    vx = _blur(x * x, g) - mx * mx
    vy = _blur(y * y, g) - my * my
    cov = _blur(x * y, g) - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return (num / den).mean(dim=(2, 3))


class SSIMDistance(nn.Module):
    """1 - SSIM per frame of frames in [-1, 1], shape (N,): a structural reconstruction term for VAE training.

    It plugs into the VAE losses' perceptual slot (models/vae/losses.py) where LPIPS would: the tiny profile has
    no LPIPS weights offline, and an L1/MSE-trained VAE from scratch trades texture contrast for blur, which this
    term charges for. No parameters.
    """

    def forward(self, target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        # in fp32 even under bf16 autocast: the variances are differences of close blurred squares
        with torch.autocast(target.device.type, enabled=False):
            x = (target.float() + 1) / 2
            y = (recon.float() + 1) / 2
            return 1 - ssim_per_channel(x, y).mean(dim=1)
