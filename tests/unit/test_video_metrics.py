"""PSNR and SSIM per frame against scikit-image, and their closed-form edge cases."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from components.evaluation import video_metrics as vm
from models.ssim import gaussian_window


def _videos(seed: int, shape=(2, 3, 3, 24, 20), noise: float = 0.1):
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(shape, generator=gen, dtype=torch.float64)
    fake = (real + noise * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return real, fake


def _frame(x: torch.Tensor, b: int, t: int) -> np.ndarray:
    return x[b, :, t].permute(1, 2, 0).numpy()  # (H, W, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_skimage(seed):
    real, fake = _videos(seed)
    ours = vm.ssim(real, fake)
    assert ours.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            ref = structural_similarity(_frame(real, b, t), _frame(fake, b, t), gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=1, channel_axis=2)
            assert abs(float(ours[b, t]) - ref) < 1e-3
            assert abs(float(ours[b, t]) - ref) < 1e-9  # same arithmetic, so far closer than the bar


def test_psnr_matches_skimage_and_closed_form():
    real, fake = _videos(2)
    ours = vm.psnr(real, fake)
    for b in range(2):
        for t in range(3):
            ref = peak_signal_noise_ratio(_frame(real, b, t), _frame(fake, b, t), data_range=1)
            assert abs(float(ours[b, t]) - ref) < 1e-3
    # constant error 0.1 everywhere: MSE 0.01 -> 20 dB exactly
    base = torch.full((1, 3, 2, 8, 8), 0.5)
    assert torch.allclose(vm.psnr(base, base + 0.1), torch.full((1, 2), 20.0, dtype=torch.float64), atol=1e-5)


def test_identical_videos_hit_the_caps():
    real, _ = _videos(3)
    assert torch.all(vm.psnr(real, real) == vm.PSNR_CAP)
    assert torch.allclose(vm.ssim(real, real), torch.ones(2, 3, dtype=torch.float64))


def test_mean_score_pools_frames_and_videos():
    a = torch.tensor([[10.0, 20.0]])
    b = torch.tensor([[30.0, 40.0], [50.0, 60.0]])
    assert vm.mean_score([a, b]) == 35.0


def test_gaussian_window_is_normalised_and_symmetric():
    g = gaussian_window()
    assert g.shape == (11,)
    assert math.isclose(float(g.sum()), 1.0, rel_tol=1e-12)
    assert torch.allclose(g, g.flip(0))
    assert math.isclose(float(g[5] / g[4]), math.exp(1 / (2 * 1.5**2)), rel_tol=1e-12)


def test_shape_errors_name_the_metric():
    a = torch.zeros(1, 3, 2, 16, 16)
    with pytest.raises(ValueError, match="psnr: expected two videos"):
        vm.psnr(a, torch.zeros(1, 3, 2, 16, 8))
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        vm.ssim(torch.zeros(1, 3, 1, 8, 8), torch.zeros(1, 3, 1, 8, 8))
