"""Per-channel latent statistics of a trained video VAE on training clips: the shift and scale the DiT needs.

Open-Sora 1.2 measured its (shift, scale) on data once the VAE was trained (scripts/vae/stats.py) and found
per-channel normalisation "crucial for rectified flow training"; the tiny profile does the same after vae.stage3.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from components.training.vae_loss import length_groups
from models.vae import VideoVAE, channel_stats


@torch.no_grad()
def measure_latent_stats(vae: VideoVAE, batches: Iterator[dict[str, Any]], count: int,
                         to_device: Callable, autocast: Callable) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of raw posterior-mean latents of `count` batches (each clip at its real length)."""
    columns = []
    for _ in range(count):
        batch = to_device(next(batches))
        video = batch["video"]
        for index, length in length_groups(batch["num_frames"].cpu()):
            with autocast():
                z = vae.encode_temporal(vae.encode_frames(video[index.to(video.device), :, :length])).mode()
            columns.append(z.float().transpose(0, 1).flatten(1).cpu())  # (C, B_g*t*h*w)
    flat = torch.cat(columns, dim=1)  # (C, N)
    return channel_stats(flat.view(1, flat.shape[0], flat.shape[1], 1, 1))  # as (B=1, C, T=N, 1, 1)
