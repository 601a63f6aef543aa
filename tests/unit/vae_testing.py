"""Shared helpers of the video-VAE tests: a one-thread fixture, a CPU peak-memory probe, a grouped tiny layout."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from components.memory import peak_cpu_tensor_bytes as peak_tensor_bytes  # noqa: F401  (re-exported for the tests)
from models.vae import VAE_configs, VideoVAEConfig


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
