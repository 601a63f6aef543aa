"""The loss of one VAE micro-batch whose samples have different real lengths (images, short clips, stage 3).

Samples are zero-padded to a common T by the dataset. The temporal VAE front-pads each clip to a multiple of 4,
so where the real frames sit in a padded clip changes its latents; each group of samples with the same real
length therefore runs on its own, cut to that length, which is exactly what encoding it alone gives. Terms
are means over samples (each sample's terms being means over its frames), so an image weighs as much as a
video sample, as in Open-Sora where a whole batch is cut to one frame.
"""
from __future__ import annotations

from typing import Callable

import torch

from models.vae.gaussian import DiagonalGaussian
from models.vae.losses import pixel_nll, stage_loss
from models.vae.video_vae import VAEOutput

# Terms each stage logs, in a fixed order so ranks can reduce them together. l1 is the plain mean absolute pixel
# error (logged only: the nll terms also move with the learnable log-variance).
STAGE_TERMS = {0: ("loss", "pixel_nll", "kl", "mse", "l1"), 1: ("loss", "latent_nll", "identity"), 2: ("loss", "latent_nll"),
               3: ("loss", "pixel_nll", "kl", "l1")}


def length_groups(num_frames: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """(sample indices, real length) for each distinct length in a micro-batch, longest first."""
    lengths = num_frames.tolist()
    return [(torch.tensor([i for i, n in enumerate(lengths) if n == length]), length)
            for length in sorted(set(lengths), reverse=True)]


def real_frames(video: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """Every real frame of a micro-batch as one clip: (B, 3, T, H, W) -> (1, 3, N, H, W), N = sum of lengths."""
    parts = [video[i, :, :n] for i, n in enumerate(num_frames.tolist())]  # each (3, n, H, W)
    return torch.cat(parts, dim=1).unsqueeze(0)  # (1, 3, N, H, W)


def to_vae_output(out: dict) -> VAEOutput:
    """The model's output dict as the VAEOutput that models.vae.losses reads."""
    return VAEOutput(out["x_rec"], out["z2d"], out["z2d_rec"], out["z"],
                     DiagonalGaussian(out["mean"], out["post_logvar"]))


def stage0_terms(x: torch.Tensor, out: dict, perceptual: Callable | None, perceptual_weight: float,
                 kl_weight: float, mse_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """2D VAE: pixel L1 (+ perceptual) through the log-variance, + kl_weight * KL of the per-frame posterior,
    + mse_weight * squared pixel error, reduced as the L1 NLL is (summed per frame, mean over frames) so the
    two weigh alike."""
    error = x - out["x_rec"]  # (B, C, T, H, W)
    terms = {"pixel_nll": pixel_nll(x, out["x_rec"], out["logvar"], perceptual, perceptual_weight),
             "kl": out["kl"].mean(), "mse": error.pow(2).sum() / (x.shape[0] * x.shape[2]),
             "l1": error.abs().mean().detach()}
    terms["loss"] = terms["pixel_nll"] + kl_weight * terms["kl"] + mse_weight * terms["mse"]
    return terms


def combine(parts: list[tuple[int, dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """Per term, the sample-weighted mean over the groups that have it (identity: image groups only)."""
    out: dict[str, torch.Tensor] = {}
    for key in {k for _, terms in parts for k in terms}:
        have = [(n, terms[key]) for n, terms in parts if key in terms]
        out[key] = sum(n * v for n, v in have) / sum(n for n, _ in have)
    return out


def micro_batch_loss(stage: int, model: Callable[[torch.Tensor], dict], batch: dict, perceptual: Callable | None,
                     perceptual_weight: float, kl_weight: float, mse_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Every term of one micro-batch (see STAGE_TERMS), the total under "loss"."""
    video, lengths = batch["video"], batch["num_frames"]
    if stage == 0:  # the 2D VAE sees every real frame once, as one batch of images
        x = real_frames(video, lengths)
        return stage0_terms(x, model(x), perceptual, perceptual_weight, kl_weight, mse_weight)
    parts = []
    for index, length in length_groups(lengths):
        x = video[index.to(video.device), :, :length]  # (B_g, 3, length, H, W)
        out = model(x)
        terms = stage_loss(stage, x, to_vae_output(out), out["logvar"], perceptual, perceptual_weight, kl_weight)
        if out["x_rec"] is not None:
            terms["l1"] = (x - out["x_rec"]).abs().mean().detach()
        parts.append((len(index), terms))
    return combine(parts)
