"""The SSIM reconstruction term (perceptual: ssim): eval.vae's SSIM in the model's dtype, differentiable."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from components.evaluation import video_metrics as vm
from components.training.perceptual import build_perceptual
from components.training.vae_config import VAEStageConfig
from models.ssim import SSIMDistance
from models.vae.losses import nll


def _frames(seed: int, n: int = 4, noise: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of frames (n, 3, 24, 20) in [-1, 1]: a target and a noisy reconstruction of it."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, 24, 20, generator=gen) * 2 - 1
    recon = (target + noise * torch.randn(target.shape, generator=gen)).clamp(-1, 1)
    return target, recon


def test_distance_is_one_minus_the_reported_ssim():
    target, recon = _frames(0)
    d = SSIMDistance()(target, recon)
    assert d.shape == (4,)
    video = lambda x: ((x.double() + 1) / 2).permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, N, H, W) in [0, 1]
    reported = vm.ssim(video(target), video(recon))[0]
    torch.testing.assert_close(d.double(), 1 - reported, atol=1e-5, rtol=0)
    ref = structural_similarity(((target[0] + 1) / 2).permute(1, 2, 0).double().numpy(),
                                ((recon[0] + 1) / 2).permute(1, 2, 0).double().numpy(), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
    assert float(d[0]) == pytest.approx(1 - ref, abs=1e-5)
    assert 0.01 < float(d.mean()) < 0.2  # noise of std 0.1 on [0, 1] frames: SSIM about 0.94


def test_identical_frames_cost_nothing_and_a_blur_costs_more_than_its_l1_suggests():
    target, _ = _frames(1)
    assert SSIMDistance()(target, target).abs().max() < 1e-5
    mean = target.mean(dim=(2, 3), keepdim=True).expand_as(target)  # texture gone, colour kept
    assert float(SSIMDistance()(target, mean).mean()) > 0.9


def test_gradient_reaches_the_reconstruction_through_the_nll():
    target, recon = _frames(2)
    recon = recon.clone().requires_grad_(True)
    video = lambda x: x.permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, N, H, W)
    loss = nll(video(target), video(recon), torch.tensor(0.0), SSIMDistance(), perceptual_weight=0.5)
    loss.backward()
    assert recon.grad is not None and torch.isfinite(recon.grad).all() and recon.grad.abs().sum() > 0
    # with the term on, the loss is the L1 plus 0.5 * (1 - SSIM) on every element of each frame
    l1 = (target - recon.detach()).abs().sum() / 4
    extra = 0.5 * SSIMDistance()(target, recon.detach()).sum() * 3 * 24 * 20 / 4
    assert float(loss.detach()) == pytest.approx(float(l1 + extra), rel=1e-5)


def test_the_config_takes_ssim_and_the_builder_needs_no_weights():
    assert VAEStageConfig(spatial="random", perceptual="ssim").perceptual == "ssim"
    built = build_perceptual("ssim", "tiny")
    assert built.on and isinstance(built.module, SSIMDistance) and built.status.startswith("ssim: 1 - SSIM")
    with pytest.raises(ValueError):
        VAEStageConfig(spatial="random", perceptual="ms-ssim")


def test_frames_smaller_than_the_window_are_refused():
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        SSIMDistance()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    assert np.isfinite(float(SSIMDistance()(torch.zeros(1, 3, 11, 11), torch.zeros(1, 3, 11, 11))))


def test_auto_and_off_say_why_the_term_is_off():
    auto = build_perceptual("auto", "tiny")  # the tiny profile lists no LPIPS weights
    assert not auto.on and auto.status.startswith("off: lpips-alexnet is not listed in configs/tiny/weights.yaml")
    off = build_perceptual("off", "tiny")
    assert not off.on and off.status.startswith("off: perceptual=off")


def test_distance_stays_fp32_under_bf16_autocast():
    # the blurred squares' differences (the variances) would lose most of their digits in bf16
    target, recon = _frames(2)
    plain = SSIMDistance()(target, recon)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = SSIMDistance()(target, recon.to(torch.bfloat16))
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, SSIMDistance()(target, recon.to(torch.bfloat16).float()), atol=1e-6, rtol=0)
    assert float((cast - plain).abs().max()) < 5e-3  # only the bf16 rounding of recon itself
