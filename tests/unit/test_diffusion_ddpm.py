"""DDPM (PixArt/IDDPM): schedule values, learned-range variance, losses, and samplers with an exact eps."""
import math

import pytest
import torch

from models.diffusion.ddpm import DDPMConfig, GaussianDiffusion, normal_kl
from models.diffusion.sampler import DDIMSamplerConfig, ddim_sample, ddpm_sample


def video(seed: int, shape=(2, 4, 3, 2, 2)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_linear_schedule_values():
    d = GaussianDiffusion.from_config(DDPMConfig())
    assert d.num_timesteps == 1000
    assert float(d.betas[0]) == pytest.approx(1e-4) and float(d.betas[-1]) == pytest.approx(0.02)
    assert float(d.alphas_cumprod[0]) == pytest.approx(0.9999)
    assert float(d.alphas_cumprod[-1]) == pytest.approx(4.0358e-5, rel=1e-4)  # ∏(1 − β_t)
    # β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), zero at t = 0.
    t = 500
    expected = d.betas[t] * (1 - d.alphas_cumprod[t - 1]) / (1 - d.alphas_cumprod[t])
    assert float(d.posterior_variance[t]) == pytest.approx(float(expected))
    assert float(d.posterior_variance[0]) == 0.0


def test_q_sample_closed_form():
    d = GaussianDiffusion.from_config()
    x0, eps, t = video(0), video(1), torch.tensor([0, 999])
    x_t = d.q_sample(x0, t, eps)
    ac = d.alphas_cumprod
    torch.testing.assert_close(x_t[1], (ac[999].sqrt() * x0[1] + (1 - ac[999]).sqrt() * eps[1]).float())
    torch.testing.assert_close(d.predict_x0(x_t, t, eps), x0, atol=1e-4, rtol=0)


def test_learned_range_variance_interpolates_between_posterior_and_beta():
    d = GaussianDiffusion.from_config()
    x_t, t = video(0), torch.tensor([10, 700])
    eps = torch.zeros_like(x_t)
    lo = d.p_mean_variance(torch.cat([eps, -torch.ones_like(x_t)], 1), x_t, t)["log_variance"]
    hi = d.p_mean_variance(torch.cat([eps, torch.ones_like(x_t)], 1), x_t, t)["log_variance"]
    mid = d.p_mean_variance(torch.cat([eps, torch.zeros_like(x_t)], 1), x_t, t)["log_variance"]
    torch.testing.assert_close(lo[1, 0, 0, 0, 0], d.posterior_log_variance_clipped[700].float())
    torch.testing.assert_close(hi[1, 0, 0, 0, 0], d.betas[700].log().float())
    torch.testing.assert_close(mid, (lo + hi) / 2)


def test_mse_loss_over_noised_frames_and_vb_vanishes_at_the_true_posterior():
    d = GaussianDiffusion.from_config()
    x0, eps = video(0), video(1)
    x_mask = torch.tensor([[False, True, True], [True, True, True]])
    t = torch.tensor([300, 600])

    def perfect(x_t, timestep, x_mask=None):
        # eps exact and variance at the posterior end (v = −1): KL to the true posterior is 0.
        return torch.cat([eps, -torch.ones_like(eps)], dim=1)

    out = d.training_losses(perfect, x0, x_mask=x_mask, t=t, noise=eps)
    torch.testing.assert_close(out["mse"], torch.zeros(2))
    torch.testing.assert_close(out["vb"], torch.zeros(2), atol=1e-5, rtol=0)

    def off(x_t, timestep, x_mask=None):
        wrong = eps.clone()
        wrong[0, :, 0] += 100.0  # a given frame: must not count
        return torch.cat([wrong, torch.ones_like(eps)], dim=1)

    out = d.training_losses(off, x0, x_mask=x_mask, t=t, noise=eps)
    assert float(out["mse"][0]) == 0.0
    assert (out["vb"] > 0).all()  # variance at β_t ≠ β̃_t costs KL > 0
    torch.testing.assert_close(out["loss"], out["mse"] + out["vb"])


def test_normal_kl_closed_form():
    kl = normal_kl(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0), torch.tensor(math.log(4.0)))
    # KL(N(1, 1) ‖ N(0, 4)) = ½ (ln 4 + 1/4 + 1/4 − 1)
    assert float(kl) == pytest.approx(0.5 * (math.log(4) + 0.5 - 1))


def test_respacing_keeps_the_cumulative_alphas():
    d = GaussianDiffusion.from_config()
    spaced = d.respaced(10)
    assert spaced.timestep_map.tolist() == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    torch.testing.assert_close(spaced.alphas_cumprod, d.alphas_cumprod[spaced.timestep_map])


def oracle_eps(x0: torch.Tensor, d: GaussianDiffusion):
    """eps that a perfect model would predict if the data were the single point x0."""

    def fn(x_t, timestep, x_mask):
        ac = d.alphas_cumprod[timestep.long()].float().view(-1, 1, 1, 1, 1)
        return torch.cat([(x_t - ac.sqrt() * x0) / (1 - ac).sqrt(), -torch.ones_like(x_t)], dim=1)

    return fn


def test_ddim_with_the_exact_eps_recovers_the_data_point():
    d = GaussianDiffusion.from_config()
    x0 = video(2)
    out = ddim_sample(oracle_eps(x0, d), video(3), d, DDIMSamplerConfig(num_steps=20))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_ddpm_sampling_keeps_given_frames_and_converges():
    d = GaussianDiffusion.from_config()
    x0 = video(2)
    x_mask = torch.tensor([[False, True, True], [True, True, False]])
    given = video(4)
    out = ddpm_sample(oracle_eps(x0, d), video(3), d, num_steps=50, x_given=given, x_mask=x_mask,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[0, :, 0], given[0, :, 0])
    torch.testing.assert_close(out[1, :, 2], given[1, :, 2])
    torch.testing.assert_close(out[0, :, 1:], x0[0, :, 1:], atol=2e-2, rtol=0)
