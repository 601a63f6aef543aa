"""Rectified flow: path and loss conventions, loss over noised frames only, Euler with an exact velocity, CFG."""
import pytest
import torch

from models.diffusion.rectified_flow import RectifiedFlow, RectifiedFlowConfig, add_noise, velocity_loss
from models.diffusion.sampler import EulerSamplerConfig, euler_sample, guided_denoiser, rf_time_grid
from models.diffusion.timesteps import TimestepSamplerConfig


def video(seed: int, shape=(2, 4, 5, 3, 3)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_path_endpoints_and_velocity_sign():
    x0, eps = video(0), video(1)
    torch.testing.assert_close(add_noise(x0, eps, torch.zeros(2)), x0)  # t = 0 is data
    torch.testing.assert_close(add_noise(x0, eps, torch.ones(2)), eps)  # t = 1 is noise
    # v = x0 − ε points from noise to data: x_t + v·t recovers x0 along the straight path.
    t = torch.tensor([0.3, 0.8])
    x_t = add_noise(x0, eps, t)
    torch.testing.assert_close(x_t + (x0 - eps) * t.view(-1, 1, 1, 1, 1), x0)
    assert float(velocity_loss(x0 - eps, x0, eps).abs().max()) == 0.0


def test_loss_ignores_given_frames():
    x0, eps = video(0), video(1)
    x_mask = torch.tensor([[False, True, True, False, True], [True, True, True, True, False]])
    pred = video(2)
    changed = pred.clone()
    changed[0, :, [0, 3]] += 5.0  # given frames of sample 0
    changed[1, :, 4] -= 3.0  # given frame of sample 1
    torch.testing.assert_close(velocity_loss(pred, x0, eps, x_mask), velocity_loss(changed, x0, eps, x_mask))
    assert (velocity_loss(pred, x0, eps) != velocity_loss(changed, x0, eps)).all()
    # Closed form: a zero prediction costs the mean of (x0 − ε)² over the noised frames.
    expected = ((x0 - eps) ** 2)[0][:, x_mask[0]].mean()
    torch.testing.assert_close(velocity_loss(torch.zeros_like(pred), x0, eps, x_mask)[0], expected)


def test_training_losses_feeds_clean_given_frames_and_model_timesteps():
    x0 = video(0)
    x_mask = torch.tensor([[False, True, True, True, True], [True] * 5])
    seen = {}

    def model(x_t, timestep, x_mask=None):
        seen.update(x_t=x_t, timestep=timestep, x_mask=x_mask)
        return torch.zeros(x_t.shape[0], 8, *x_t.shape[2:])  # learn_sigma layout: 2·C channels

    rf = RectifiedFlow(RectifiedFlowConfig(use_shift=False))
    out = rf.training_losses(model, x0, x_mask=x_mask, t=torch.tensor([0.5, 0.25]), noise=video(1))
    torch.testing.assert_close(seen["timestep"], torch.tensor([500.0, 250.0]))
    torch.testing.assert_close(seen["x_t"][0, :, 0], x0[0, :, 0])  # given frame stays clean
    torch.testing.assert_close(seen["x_t"][0, :, 1], 0.5 * x0[0, :, 1] + 0.5 * video(1)[0, :, 1])
    assert seen["x_mask"] is x_mask
    torch.testing.assert_close(out["loss"], velocity_loss(torch.zeros_like(x0), x0, video(1), x_mask))


def test_training_t_is_shifted_towards_noise():
    rf = RectifiedFlow(RectifiedFlowConfig(timesteps=TimestepSamplerConfig("uniform")))
    plain = rf.sample_t(4000, generator=torch.Generator().manual_seed(0))
    shifted = rf.sample_t(4000, ratio=3.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shifted, 3 * plain / (1 + 2 * plain))
    assert float(shifted.mean()) > float(plain.mean()) + 0.1


def test_time_grid_is_shifted_and_runs_from_noise_to_data():
    grid = rf_time_grid(4, ratio=3.0)
    t = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64)
    torch.testing.assert_close(grid, 3 * t / (1 + 2 * t))
    assert rf_time_grid(4, ratio=torch.tensor([1.0, 3.0])).shape == (2, 5)


@pytest.mark.parametrize("ratio", [1.0, 3.0])
def test_euler_with_the_exact_velocity_lands_on_the_data_point(ratio):
    # For a single data point x*, the true velocity at x_t is x* − ε with ε = (x_t − (1 − t)·x*) / t;
    # paths are straight, so Euler is exact for any grid.
    target = video(3)

    def exact(x_t, timestep, x_mask):
        t = (timestep / 1000).view(-1, 1, 1, 1, 1)
        return target - (x_t - (1 - t) * target) / t

    out = euler_sample(exact, video(4), EulerSamplerConfig(num_steps=7), ratio=ratio)
    torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


def test_euler_keeps_given_frames_and_tells_the_model():
    x_given, x_mask = video(5), torch.tensor([[False, True, True, True, True], [True, True, False, True, True]])
    masks_seen = []

    def drift(x_t, timestep, x_mask_in):
        masks_seen.append(x_mask_in)
        return torch.ones_like(x_t)

    out = euler_sample(drift, video(6), EulerSamplerConfig(num_steps=5), x_given=x_given, x_mask=x_mask)
    torch.testing.assert_close(out[0, :, 0], x_given[0, :, 0])
    torch.testing.assert_close(out[1, :, 2], x_given[1, :, 2])
    torch.testing.assert_close(out[0, :, 1], video(6)[0, :, 1] + 1.0)  # dt sums to 1 over the run
    assert len(masks_seen) == 5 and all(m is x_mask for m in masks_seen)


def test_classifier_free_guidance_combines_cond_and_uncond():
    calls = []

    def model(x, timestep, y, mask=None, x_mask=None, fps=None):
        calls.append((x.shape[0], fps.shape[0], mask.shape[0]))
        v = y.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1) * torch.ones_like(x)
        return torch.cat([v, torch.full_like(x, 7.0)], dim=1)  # velocity + a "variance" half

    x = torch.zeros(2, 4, 3, 2, 2)
    y, y_null = torch.full((2, 5, 8), 2.0), torch.full((2, 5, 8), 0.5)
    fn = guided_denoiser(model, y, y_null, cfg_scale=7.0, text_mask=torch.ones(2, 5, dtype=torch.bool),
                         fps=torch.tensor([24.0, 24.0]))
    out = fn(x, torch.tensor([500.0, 500.0]), None)
    assert calls == [(4, 4, 4)]  # one batched call on [cond; uncond]
    torch.testing.assert_close(out[:, :4], torch.full_like(x, 0.5 + 7.0 * (2.0 - 0.5)))
    torch.testing.assert_close(out[:, 4:], torch.full_like(x, 7.0))
    assert EulerSamplerConfig().num_steps == 30 and EulerSamplerConfig().cfg_scale == 7.0
