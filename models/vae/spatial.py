"""The per-frame 2D VAE (AutoencoderKL, diffusers' layout): its config, and frame-wise encode/decode in micro-batches.

Random VAEs are built from models/vae/autoencoder_kl.py, not diffusers (~3 s to import in every stage process);
SDXL's pretrained one comes through diffusers (components/training/vae_model.py). Both have the same interface.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.vae.autoencoder_kl import AutoencoderKL
from models.vae.causal import NORMS, remove_group_norms


@dataclass(frozen=True)
class SpatialVAEConfig:
    """AutoencoderKL hyperparameters; defaults are the SDXL VAE (83.7M parameters, 8x spatial compression)."""

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)  # len - 1 downsamples: 4 levels -> 8x
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    mid_block_add_attention: bool = True
    scaling_factor: float = 0.18215  # Open-Sora 1.2 keeps SD's factor for the SDXL VAE (PixArt-Sigma's choice)
    micro_batch_frames: int = 4  # frames per 2D VAE call: bounds activation memory on long clips
    # "none" replaces every GroupNorm with an identity (the tiny profile's small VAE trained from scratch: a norm
    # over a whole feature map removes its mean and scale, which is where a flat region's colour lives)
    norm: str = "group"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"SpatialVAEConfig.norm must be one of {NORMS}, got {self.norm!r}")
        for c in self.block_out_channels if self.norm == "group" else ():
            if c % self.norm_num_groups:
                raise ValueError(
                    f"SpatialVAEConfig.block_out_channels: {c} is not divisible by "
                    f"norm_num_groups={self.norm_num_groups}"
                )
        if self.micro_batch_frames < 1:
            raise ValueError(f"SpatialVAEConfig.micro_batch_frames must be >= 1, got {self.micro_batch_frames}")

    @property
    def downsample(self) -> int:
        """Spatial compression: 2 per level after the first."""
        return 2 ** (len(self.block_out_channels) - 1)


def build_autoencoder_kl(cfg: SpatialVAEConfig) -> AutoencoderKL:
    """A randomly initialised AutoencoderKL shaped by `cfg` (pretrained weights are loaded by components)."""
    vae = AutoencoderKL(
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups if cfg.norm == "group" else 1,  # removed below for "none"
        mid_block_add_attention=cfg.mid_block_add_attention,
    )
    if cfg.norm == "none":
        remove_group_norms(vae)
    return vae


def encode_frames(
    vae: AutoencoderKL,
    x: torch.Tensor,
    scaling_factor: float,
    micro_batch: int,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Video (B, 3, T, H, W) in [-1, 1] -> scaled 2D latents (B, C, T, H/8, W/8), `micro_batch` frames a call."""
    b, c, t, h, w = x.shape
    pieces = []
    for start in range(0, t, micro_batch):
        # slicing time first means only micro_batch frames are ever copied into (N, 3, H, W) layout
        frames = x[:, :, start : start + micro_batch]  # (B, 3, m, H, W)
        m = frames.shape[2]
        frames = frames.permute(0, 2, 1, 3, 4).reshape(b * m, c, h, w)  # (B*m, 3, H, W)
        dist = vae.encode(frames).latent_dist
        z = dist.sample(generator) if sample else dist.mode()  # (B*m, C, h, w)
        z = z.view(b, m, *z.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, C, m, h, w)
        pieces.append(z * scaling_factor)
    return torch.cat(pieces, dim=2)  # (B, C, T, h, w)


def decode_frames(vae: AutoencoderKL, z: torch.Tensor, scaling_factor: float, micro_batch: int) -> torch.Tensor:
    """Scaled 2D latents (B, C, T, h, w) -> video (B, 3, T, 8h, 8w), `micro_batch` frames a call."""
    b, c, t, h, w = z.shape
    pieces = []
    for start in range(0, t, micro_batch):
        lat = z[:, :, start : start + micro_batch]  # (B, C, m, h, w)
        m = lat.shape[2]
        lat = lat.permute(0, 2, 1, 3, 4).reshape(b * m, c, h, w)  # (B*m, C, h, w)
        frames = vae.decode(lat / scaling_factor).sample  # (B*m, 3, H, W)
        pieces.append(frames.view(b, m, *frames.shape[1:]).permute(0, 2, 1, 3, 4))  # (B, 3, m, H, W)
    return torch.cat(pieces, dim=2)  # (B, 3, T, H, W)
