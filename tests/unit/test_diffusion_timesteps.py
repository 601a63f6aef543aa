"""Timestep samplers against their CDFs (Kolmogorov–Smirnov) and the shift formula against hand-computed values."""
import math

import pytest
import torch

from models.diffusion.timesteps import (
    ShiftConfig,
    TimestepSamplerConfig,
    logit_normal_cdf,
    sample_timesteps,
    shift_ratio,
    shift_timesteps,
)

N = 20000
KS_BOUND = 1.63 / math.sqrt(N)  # 1% critical value of the one-sample KS statistic


def ks_statistic(samples: torch.Tensor, cdf) -> float:
    x, _ = samples.double().sort()
    f = cdf(x)
    i = torch.arange(1, len(x) + 1, dtype=torch.float64)
    return float(torch.maximum(i / len(x) - f, f - (i - 1) / len(x)).max())


def test_logit_normal_sampler_matches_its_cdf():
    t = sample_timesteps(N, TimestepSamplerConfig("logit_normal"), generator=torch.Generator().manual_seed(0))
    assert ((t > 0) & (t < 1)).all()
    assert ks_statistic(t, logit_normal_cdf) < KS_BOUND
    # Mass concentrates in the middle: P(0.25 < t < 0.75) = erf(ln 3 / √2) = 0.7281 (uniform: 0.5).
    assert abs(float(((t > 0.25) & (t < 0.75)).double().mean()) - 0.7281) < 0.01
    assert ks_statistic(t, lambda x: x) > 0.05


def test_uniform_sampler_matches_its_cdf():
    t = sample_timesteps(N, TimestepSamplerConfig("uniform"), generator=torch.Generator().manual_seed(0))
    assert ks_statistic(t, lambda x: x) < KS_BOUND


@pytest.mark.parametrize(
    "height,width,frames,expected",
    [
        (512, 512, 1, 1.0),  # the base: images at 512²
        (1024, 1024, 1, 2.0),  # sqrt(4)
        (256, 256, 1, 0.5),
        (512, 512, 17, math.sqrt(5)),  # 17 frames → 5 latent frames
        (512, 512, 51, math.sqrt(15)),
        (720, 1280, 102, 1.875 * math.sqrt(30)),  # sqrt(921600 / 262144) = 1.875
        (240, 426, 51, math.sqrt(240 * 426 / 262144) * math.sqrt(15)),
        (512, 512, 16, 1.0),  # Open-Sora would give 0 here; clamped to one latent frame
    ],
)
def test_shift_ratio_values(height, width, frames, expected):
    assert float(shift_ratio(height, width, frames)) == pytest.approx(expected, rel=1e-12)


def test_shift_ratio_per_sample_and_config():
    r = shift_ratio(torch.tensor([512.0, 1024.0]), torch.tensor([512.0, 1024.0]), torch.tensor([1, 51]))
    torch.testing.assert_close(r, torch.tensor([1.0, 2.0 * math.sqrt(15)], dtype=torch.float64))
    assert float(shift_ratio(512, 512, 1, ShiftConfig(scale=3.0))) == pytest.approx(3.0)


def test_shift_timesteps_formula():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    # ratio 3: 3t / (1 + 2t) → 0, 0.75/1.5 = 0.5, 1.5/2 = 0.75, 1.
    torch.testing.assert_close(shift_timesteps(t, 3.0), torch.tensor([0.0, 0.5, 0.75, 1.0], dtype=torch.float64))
    torch.testing.assert_close(shift_timesteps(t, 1.0), t)
    assert (shift_timesteps(t[1:3], 0.5) < t[1:3]).all()  # small inputs shift towards data


def test_bad_sampler_config_is_named():
    with pytest.raises(ValueError, match="TimestepSamplerConfig.kind"):
        TimestepSamplerConfig("cosine")
