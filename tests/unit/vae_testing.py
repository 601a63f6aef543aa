"""Shared helpers of the video-VAE tests: a one-thread fixture, a CPU peak-memory probe, a grouped tiny layout,
and diffusers' AutoencoderKL shaped like ours."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from components.memory import peak_cpu_tensor_bytes as peak_tensor_bytes  # noqa: F401  (re-exported for the tests)
from models.vae import VAE_configs, VideoVAEConfig
from models.vae.causal import remove_group_norms
from models.vae.spatial import SpatialVAEConfig


def grouped_tiny(**overrides) -> VideoVAEConfig:
    """The tiny layout with one-group GroupNorms and no time shortcut (`overrides`: other VideoVAEConfig fields).

    For tests that need a random VAE whose outputs vary: the tiny layout's random init (no norms) gives nearly
    flat latents and reconstructions; a trained tiny VAE's vary as this one's do.
    """
    tiny = VAE_configs["tiny"]
    return replace(tiny, spatial=replace(tiny.spatial, norm="group", norm_num_groups=1),
                   temporal=replace(tiny.temporal, norm="group", num_groups=1, time_shortcut=False,
                                    time_slope=False), **overrides)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convs run faster on one thread, and far faster than two when other jobs share the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def diffusers_twin(cfg: SpatialVAEConfig) -> torch.nn.Module:
    """What build_autoencoder_kl built with diffusers before it had its own AutoencoderKL."""
    from diffusers import AutoencoderKL

    levels = len(cfg.block_out_channels)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block, latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups if cfg.norm == "group" else 1, scaling_factor=cfg.scaling_factor,
        mid_block_add_attention=cfg.mid_block_add_attention)
    if cfg.norm == "none":
        remove_group_norms(vae)
    return vae
