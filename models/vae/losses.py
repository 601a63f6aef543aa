"""Losses of the three video-VAE training stages (Open-Sora 1.2), as pure functions of tensors.

Stage 1 (2D VAE frozen, 17 frames, 80% video / 20% images):
    latent_nll(z2d, z2d_rec, logvar) + identity_loss(z2d, z, logvar) on image batches (T = 1), where the
    temporal latent of a single frame is asked to equal its 2D latent so images stay decodable by the 2D VAE.
Stage 2 (2D VAE trainable, 17 frames): latent_nll(z2d, z2d_rec, logvar) only.
Stage 3 (2D VAE trainable, random 1..34 frames): pixel_nll(x, x_rec, logvar, perceptual, 0.1)
    + 1e-6 * kl_loss(posterior). `perceptual` is LPIPS in the full profile, any callable in the tiny one.
All reconstruction terms go through one learnable scalar log-variance s (LogVariance below):
    nll = |x - x_rec| / exp(s) + s  per element, summed over (C, H, W) and averaged over the B*T frames,
as in Open-Sora's VAELoss; the trainer owns s and optimises it with the VAE.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from models.vae.gaussian import DiagonalGaussian
from models.vae.video_vae import VAEOutput

Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LogVariance(nn.Module):
    """The learnable scalar log-variance that weighs reconstruction against its own scale.

    Stored as a 1-element parameter, not a 0-dim one: DeepSpeed ZeRO cannot flatten 0-dim parameters into its
    partitions, and DDP and plain training do not care.
    """

    def __init__(self, init: float = 0.0):
        super().__init__()
        self.value = nn.Parameter(torch.tensor([float(init)]))

    def forward(self) -> torch.Tensor:
        """The log-variance as a 0-dim tensor."""
        return self.value[0]


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W): one row per frame."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B*T, C, H, W)


def nll(
    target: torch.Tensor,
    recon: torch.Tensor,
    logvar: torch.Tensor,
    perceptual: Perceptual | None = None,
    perceptual_weight: float = 0.0,
) -> torch.Tensor:
    """(|target - recon| + w * perceptual) / exp(logvar) + logvar, summed per frame, mean over frames.

    target, recon: (B, C, T, H, W). perceptual(target_frames, recon_frames) gets (B*T, 3, H, W) each and returns
    one distance per frame, shape (B*T,) or (B*T, 1, 1, 1); that distance is added to every element of its frame.
    """
    if target.shape != recon.shape:
        raise ValueError(f"nll: target {tuple(target.shape)} and reconstruction {tuple(recon.shape)} differ")
    tf, rf = _frames(target), _frames(recon)  # (N, C, H, W), N = B*T
    rec = (tf - rf).abs()
    if perceptual is not None and perceptual_weight > 0:
        p = perceptual(tf, rf)
        if p.numel() != tf.shape[0]:
            raise ValueError(f"nll: perceptual returned {tuple(p.shape)}; need one value per frame ({tf.shape[0]})")
        rec = rec + perceptual_weight * p.reshape(-1, 1, 1, 1)
    per_element = rec / torch.exp(logvar) + logvar
    return per_element.sum() / tf.shape[0]


def latent_nll(z2d: torch.Tensor, z2d_rec: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Stages 1-2: L1 NLL between the 2D latents and their temporal-VAE reconstruction."""
    return nll(z2d, z2d_rec, logvar)


def identity_loss(z2d: torch.Tensor, z: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Stage 1 on images: the temporal latent of one frame should be that frame's 2D latent, (B, C, 1, h, w)."""
    if z2d.shape[2] != 1 or z.shape != z2d.shape:
        raise ValueError(
            "identity_loss: needs single-frame latents of equal shape, "
            f"got 2D {tuple(z2d.shape)} and 3D {tuple(z.shape)}"
        )
    return nll(z2d, z, logvar)


def kl_loss(posterior: DiagonalGaussian) -> torch.Tensor:
    """KL to N(0, I) summed over (C, T, h, w), mean over the batch."""
    return posterior.kl().mean()


def pixel_nll(
    x: torch.Tensor,
    x_rec: torch.Tensor,
    logvar: torch.Tensor,
    perceptual: Perceptual | None,
    perceptual_weight: float = 0.1,
) -> torch.Tensor:
    """Stage 3: pixel L1 + perceptual_weight * perceptual through the learnable log-variance."""
    return nll(x, x_rec, logvar, perceptual, perceptual_weight)


def stage_loss(
    stage: int,
    x: torch.Tensor,
    out: VAEOutput,
    logvar: torch.Tensor,
    perceptual: Perceptual | None = None,
    perceptual_weight: float = 0.1,
    kl_weight: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """Stage 1, 2 or 3: the total under "loss", plus each (unweighted) term for logging."""
    if stage in (1, 2):
        terms = {"latent_nll": latent_nll(out.z2d, out.z2d_rec, logvar)}
        total = terms["latent_nll"]
        if stage == 1 and x.shape[2] == 1:  # image batch
            terms["identity"] = identity_loss(out.z2d, out.z, logvar)
            total = total + terms["identity"]
    elif stage == 3:
        terms = {
            "pixel_nll": pixel_nll(x, out.x_rec, logvar, perceptual, perceptual_weight),
            "kl": kl_loss(out.posterior),
        }
        total = terms["pixel_nll"] + kl_weight * terms["kl"]
    else:
        raise ValueError(f"stage_loss: stage must be 1, 2 or 3, got {stage}")
    terms["loss"] = total
    return terms
