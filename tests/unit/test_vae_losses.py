"""VAE losses against closed forms, and a tiny temporal VAE whose stage-1 loss falls."""
import math

import pytest
import torch

from models.vae import VAE_configs, VAE_models
from models.vae.gaussian import DiagonalGaussian
from models.vae.losses import LogVariance, identity_loss, kl_loss, latent_nll, nll, stage_loss
from models.vae.temporal import TemporalVAE
from models.vae.video_vae import VAEOutput
from vae_testing import one_thread  # noqa: F401  (autouse fixture)

B, C, T, HH, WW = 2, 3, 4, 5, 6
ELEMENTS_PER_FRAME = C * HH * WW


def test_nll_closed_form():
    x, y = torch.zeros(B, C, T, HH, WW), torch.ones(B, C, T, HH, WW)
    assert nll(x, y, torch.tensor(0.0)).item() == pytest.approx(ELEMENTS_PER_FRAME)  # |1| / e^0 + 0, per frame
    s = math.log(2.0)
    assert nll(x, y, torch.tensor(s)).item() == pytest.approx((0.5 + s) * ELEMENTS_PER_FRAME)


def test_perceptual_distance_is_added_to_every_element_of_its_frame():
    x, y = torch.zeros(B, C, T, HH, WW), torch.zeros(B, C, T, HH, WW)
    seen = {}

    def per_frame(a, b):
        seen["shape"] = tuple(a.shape)
        return torch.full((a.shape[0], 1, 1, 1), 3.0)

    value = nll(x, y, torch.tensor(0.0), per_frame, perceptual_weight=0.1)
    assert seen["shape"] == (B * T, C, HH, WW)  # frames, as LPIPS wants them
    assert value.item() == pytest.approx(0.1 * 3.0 * ELEMENTS_PER_FRAME)
    with pytest.raises(ValueError, match=r"perceptual returned \(\); need one value per frame \(8\)"):
        nll(x, y, torch.tensor(0.0), lambda a, b: torch.tensor(1.0), perceptual_weight=0.1)


def test_learnable_logvar_settles_at_log_mean_error():
    # d/ds [r e^-s + s] = 0 at s = log(mean r): the log-variance tracks the reconstruction error
    x = torch.zeros(1, 1, 1, 4, 4)
    y = torch.full((1, 1, 1, 4, 4), 0.25)
    s = LogVariance(init=math.log(0.25))
    nll(x, y, s()).backward()
    assert abs(s.value.grad.item()) < 1e-6


def test_kl_closed_form():
    zero = DiagonalGaussian(torch.zeros(2, 4, 1, 2, 2), torch.zeros(2, 4, 1, 2, 2))
    assert kl_loss(zero).item() == 0.0
    shifted = DiagonalGaussian(torch.ones(2, 4, 1, 2, 2), torch.zeros(2, 4, 1, 2, 2))
    assert kl_loss(shifted).item() == pytest.approx(0.5 * 16)  # 0.5 * mean^2 per element, 16 elements
    wide = DiagonalGaussian(torch.zeros(1, 1, 1, 1, 1), torch.full((1, 1, 1, 1, 1), math.log(2.0)))
    assert kl_loss(wide).item() == pytest.approx(0.5 * (2.0 - 1.0 - math.log(2.0)))


def test_posterior_sampling_is_seeded_and_scaled():
    post = DiagonalGaussian(torch.full((1, 1, 1, 100, 100), 3.0), torch.full((1, 1, 1, 100, 100), math.log(4.0)))
    a = post.sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, post.sample(torch.Generator().manual_seed(0)))
    assert a.mean().item() == pytest.approx(3.0, abs=0.06) and a.std().item() == pytest.approx(2.0, abs=0.06)


def test_identity_loss_is_for_single_frames():
    with pytest.raises(ValueError, match="needs single-frame latents"):
        identity_loss(torch.zeros(1, 4, 5, 2, 2), torch.zeros(1, 4, 5, 2, 2), torch.tensor(0.0))


def _output(t: int, t_latent: int) -> VAEOutput:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, t_latent, 2, 2, generator=g)
    return VAEOutput(
        x_rec=torch.randn(1, 3, t, 16, 16, generator=g),
        z2d=torch.randn(1, 4, t, 2, 2, generator=g),
        z2d_rec=torch.randn(1, 4, t, 2, 2, generator=g),
        z=z,
        posterior=DiagonalGaussian(z, torch.zeros_like(z)),
    )


def test_stage_losses_combine_their_terms():
    s = torch.tensor(0.3)
    image, video = _output(1, 1), _output(17, 5)
    x_image, x_video = torch.zeros(1, 3, 1, 16, 16), torch.zeros(1, 3, 17, 16, 16)
    one = stage_loss(1, x_image, image, s)
    assert set(one) == {"latent_nll", "identity", "loss"}
    expected = latent_nll(image.z2d, image.z2d_rec, s) + identity_loss(image.z2d, image.z, s)
    torch.testing.assert_close(one["loss"], expected)
    assert set(stage_loss(1, x_video, video, s)) == {"latent_nll", "loss"}  # identity only on images
    assert set(stage_loss(2, x_image, image, s)) == {"latent_nll", "loss"}
    three = stage_loss(3, x_video, video, s, perceptual=None, kl_weight=1e-6)
    torch.testing.assert_close(three["loss"], three["pixel_nll"] + 1e-6 * three["kl"])
    torch.testing.assert_close(three["kl"], 0.5 * video.z.pow(2).sum())
    with pytest.raises(ValueError, match="stage must be 1, 2 or 3, got 4"):
        stage_loss(4, x_video, video, s)


def test_image_batch_backpropagates_into_the_temporal_vae_and_logvar():
    torch.manual_seed(0)
    vae = VAE_models["tiny"]()
    s = LogVariance()
    x = torch.rand(2, 3, 1, 16, 16) * 2 - 1
    stage_loss(1, x, vae(x, generator=torch.Generator().manual_seed(0)), s())["loss"].backward()
    assert s.value.grad is not None and s.value.grad.item() != 0.0
    assert vae.temporal.encoder.conv_in.conv.weight.grad.abs().sum() > 0
    assert vae.temporal.decoder.conv_out.conv.weight.grad.abs().sum() > 0


def test_tiny_temporal_vae_stage1_loss_falls():
    # stage 1 with a frozen 2D VAE trains the temporal VAE on fixed 2D latents: overfit one 17-frame clip
    torch.manual_seed(0)
    tvae = TemporalVAE(VAE_configs["tiny"].temporal)
    s = LogVariance()
    opt = torch.optim.Adam([*tvae.parameters(), *s.parameters()], lr=3e-3)
    z2d = torch.randn(1, 4, 17, 2, 2)
    l1 = []
    for _ in range(25):
        z = tvae.encode(z2d).sample(torch.Generator().manual_seed(0))
        rec = tvae.decode(z, 17)
        loss = latent_nll(z2d, rec, s())
        opt.zero_grad()
        loss.backward()
        opt.step()
        l1.append((rec - z2d).abs().mean().item())
    assert l1[-1] < 0.3 * l1[0]  # mean |z2d - rec|: about 0.83 -> 0.09
