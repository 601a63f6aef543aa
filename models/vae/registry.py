"""Video VAE sizes, DiT style: VAE_models["tiny"]() or VAE_models["full"](spatial=pretrained_sdxl_vae)."""
from __future__ import annotations

from dataclasses import replace

import torch.nn as nn

from models.vae.spatial import SpatialVAEConfig
from models.vae.temporal import TemporalVAEConfig
from models.vae.video_vae import VideoVAE, VideoVAEConfig

# Open-Sora 1.2: SDXL VAE (83.7M) + temporal VAE with filters 128/256/256/512, 4 ResBlocks (309.7M).
FULL = VideoVAEConfig()

# Trains on a 2-core CPU in minutes: 8x spatial via 3 downsamples, same 4x time and 4 channels as FULL.
# No normalisation layers: a GroupNorm over a whole feature map removes its mean and scale, which is where a flat
# region's colour lives; SDXL's VAE learns around that over millions of steps, a VAE trained from scratch for
# minutes does not (held-out PSNR of the 2D VAE after 500 steps: 32 groups ~18, 1 group 19.9, none 23.3-23.9 dB,
# and colours right). The temporal VAE adds the window-mean shortcut (TemporalVAEConfig.time_shortcut): after
# 600 steps on frozen 2D latents the video VAE reached 24.8 dB with it against 19.4 without. Its decoder then
# learned nothing beyond the window mean (held-out 25.5 dB either way); time_slope adds the learnable
# extrapolation from the previous latent that a least-squares fit showed was there (25.9 dB after stage 1).
# No mid-block attention: it cost time and gained nothing here.
TINY = VideoVAEConfig(
    spatial=SpatialVAEConfig(block_out_channels=(32, 64, 64, 64), layers_per_block=1, norm="none",
                             mid_block_add_attention=False),
    temporal=TemporalVAEConfig(filters=(16, 32, 32, 64), num_res_blocks=1, norm="none", time_shortcut=True,
                               time_slope=True),
    # the tiny profile measures its own statistics; identity until then
    shift=(0.0, 0.0, 0.0, 0.0),
    scale=(1.0, 1.0, 1.0, 1.0),
)

VAE_configs: dict[str, VideoVAEConfig] = {"tiny": TINY, "full": FULL}


def VAE_tiny(spatial: nn.Module | None = None, **overrides) -> VideoVAE:
    """Tiny video VAE; `overrides` replace VideoVAEConfig fields (chunk_frames, shift, scale, ...)."""
    return VideoVAE(replace(TINY, **overrides), spatial)


def VAE_full(spatial: nn.Module | None = None, **overrides) -> VideoVAE:
    """Open-Sora 1.2 video VAE; pass the pretrained SDXL AutoencoderKL as `spatial`."""
    return VideoVAE(replace(FULL, **overrides), spatial)


VAE_models = {"tiny": VAE_tiny, "full": VAE_full}
