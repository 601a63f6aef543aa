"""A tiny MLP trained with rectified flow on two 2-D Gaussians samples both modes with the right spread."""
import math
import time

import pytest
import torch
from torch import nn

from models.diffusion.rectified_flow import RectifiedFlow, RectifiedFlowConfig
from models.diffusion.sampler import EulerSamplerConfig, euler_sample
from models.diffusion.timesteps import TimestepSamplerConfig

MODES = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
MODE_STD = 0.3


def two_gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    which = torch.randint(0, 2, (n,), generator=gen)
    return MODES[which] + MODE_STD * torch.randn(n, 2, generator=gen)


class ToyVelocity(nn.Module):
    """v(x, t): an MLP on x and sin/cos features of the model timestep (0…1000)."""

    def __init__(self, width: int = 64, freqs: int = 4) -> None:
        super().__init__()
        self.register_buffer("freqs", 2.0 ** torch.arange(freqs) * math.pi)
        self.net = nn.Sequential(
            nn.Linear(2 + 2 * freqs, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = (timestep / 1000)[:, None] * self.freqs  # (B, freqs)
        return self.net(torch.cat([x, t.sin(), t.cos()], dim=1))


@pytest.fixture
def one_thread():
    """Tiny matmuls gain nothing from threads, and OpenMP spin-waits stall on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_rectified_flow_learns_two_gaussians(one_thread):
    start = time.perf_counter()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = ToyVelocity()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rf = RectifiedFlow(RectifiedFlowConfig(timesteps=TimestepSamplerConfig("logit_normal"), use_shift=False))
    losses = []
    for _ in range(600):
        loss = rf.training_losses(model, two_gaussians(256, gen), generator=gen)["loss"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-50:]) / 50 < 0.8 * sum(losses[:50]) / 50

    samples = euler_sample(lambda x, t, _: model(x, t), torch.randn(4000, 2, generator=gen),
                           EulerSamplerConfig(num_steps=30, use_shift=False))
    nearest = torch.cdist(samples, MODES).argmin(dim=1)
    share = float((nearest == 1).double().mean())
    assert 0.4 < share < 0.6  # both modes, in proportion
    for k in range(2):
        cluster = samples[nearest == k]
        assert (cluster.mean(dim=0) - MODES[k]).abs().max() < 0.15
        assert 0.6 * MODE_STD < float(cluster.std(dim=0).min()) <= float(cluster.std(dim=0).max()) < 1.5 * MODE_STD
    assert time.perf_counter() - start < 10.0
