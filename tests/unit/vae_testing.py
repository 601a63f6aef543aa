"""Shared helpers of the video-VAE tests: a one-thread fixture and a CPU peak-memory probe."""
from __future__ import annotations

import pytest
import torch

from components.memory import peak_cpu_tensor_bytes as peak_tensor_bytes  # noqa: F401  (re-exported for the tests)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convs run faster on one thread, and far faster than two when other jobs share the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
