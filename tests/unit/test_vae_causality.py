"""Causality: no latent depends on a frame after its window, measured by gradients and by perturbing frames."""
import pytest
import torch

from models.vae import VAE_configs, VAE_models
from models.vae.causal import CausalConv3d
from models.vae.temporal import TemporalVAE, TemporalVAEConfig
from vae_testing import one_thread  # noqa: F401  (autouse fixture)


def frames_with_gradient(grad: torch.Tensor) -> list[int]:
    """Time indices (dim 2) where a (B, C, T, H, W) gradient is non-zero."""
    return (grad.abs().sum(dim=(0, 1, 3, 4)) > 0).nonzero().flatten().tolist()


@pytest.fixture(scope="module")
def temporal():
    torch.manual_seed(0)
    return TemporalVAE(VAE_configs["tiny"].temporal).double()


def test_causal_conv_sees_only_its_past():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 3, 3).double()
    x = torch.randn(1, 2, 9, 4, 4, dtype=torch.double, requires_grad=True)
    y = conv(x)
    assert y.shape == (1, 3, 9, 4, 4)  # "same" in time and space
    y[:, :, 5].sum().backward()
    assert frames_with_gradient(x.grad) == [3, 4, 5]


def test_strided_causal_conv_ends_on_the_last_frame_of_its_window():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 2, 3, time_stride=2).double()
    x = torch.randn(1, 2, 8, 2, 2, dtype=torch.double, requires_grad=True)
    y = conv(x)
    assert y.shape[2] == 4
    y[:, :, 2].sum().backward()  # output 2 summarises frames 4, 5 and looks one frame back
    assert frames_with_gradient(x.grad) == [3, 4, 5]


def test_temporal_encoder_reach_matches_its_formula(temporal):
    # latent k covers padded frames 4k..4k+3 and reaches back encoder_context_frames() (53 for tiny) before it
    reach = temporal.encoder_context_frames()
    assert reach == 53
    x = torch.randn(1, 4, 96, 2, 2, dtype=torch.double, requires_grad=True)
    k = 20
    temporal.encode(x).mean[:, :, k].sum().backward()
    assert frames_with_gradient(x.grad) == list(range(4 * k - reach, 4 * k + 4))


def test_full_encoder_reach_is_197_frames():
    with torch.device("meta"):
        full = TemporalVAE(VAE_configs["full"].temporal)
    assert full.encoder_context_frames() == 197 and full.decoder_context_latents() == 54


def test_temporal_decoder_is_causal_and_reach_matches_its_formula(temporal):
    reach = temporal.decoder_context_latents()
    assert reach == 18
    z = torch.randn(1, 4, 30, 2, 2, dtype=torch.double, requires_grad=True)
    j = 25
    temporal.decode(z, 120)[:, :, 4 * j : 4 * j + 4].sum().backward()
    assert frames_with_gradient(z.grad) == list(range(j - reach, j + 1))


def test_temporal_latents_ignore_later_frames(temporal):
    x = torch.randn(1, 4, 17, 2, 2, dtype=torch.double)
    with torch.no_grad():
        z = temporal.encode(x).mean  # 17 -> 3 zero frames + 17 = 20 -> 5; latent k ends on frame 4k
        for k in range(4):
            changed = x.clone()
            changed[:, :, 4 * k + 1 :] += 1.0
            z2 = temporal.encode(changed).mean
            torch.testing.assert_close(z2[:, :, : k + 1], z[:, :, : k + 1], atol=1e-12, rtol=0)
            assert (z2[:, :, k + 1] - z[:, :, k + 1]).abs().max() > 1e-3


def test_clip_wide_group_norm_would_leak_the_future():
    # why FrameGroupNorm exists: Open-Sora's GroupNorm over (C/G, T, H, W) lets latent 0 see the last frame
    torch.manual_seed(0)
    cfg = VAE_configs["tiny"].temporal
    leaky = TemporalVAE(TemporalVAEConfig(**{**cfg.__dict__, "norm": "group", "num_groups": 8,
                                             "per_frame_norm": False})).double()
    x = torch.randn(1, 4, 17, 2, 2, dtype=torch.double)
    changed = x.clone()
    changed[:, :, -1] += 1.0
    with torch.no_grad():
        assert (leaky.encode(changed).mean[:, :, 0] - leaky.encode(x).mean[:, :, 0]).abs().max() > 1e-6


@pytest.mark.parametrize("chunk_frames", [17, None])
def test_video_latents_ignore_frames_after_their_window(chunk_frames):
    torch.manual_seed(0)
    vae = VAE_models["tiny"](chunk_frames=chunk_frames).double().eval()
    x = torch.rand(1, 3, 34, 16, 16, dtype=torch.double) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x)
        # last frame of latent m: chunk c = m // 5 starts at 17c, latent k = m % 5 ends on its frame 4k;
        # without chunks 34 frames get 2 zero frames in front, so latent m ends on frame 4m + 1
        for m in (0, 3, 5, 7):
            last = 17 * (m // 5) + 4 * (m % 5) if chunk_frames else 4 * m + 1
            changed = x.clone()
            changed[:, :, last + 1 :] = torch.rand_like(changed[:, :, last + 1 :])
            z2 = vae.encode(changed)
            torch.testing.assert_close(z2[:, :, : m + 1], z[:, :, : m + 1], atol=1e-12, rtol=0)
            assert (z2[:, :, m + 1] - z[:, :, m + 1]).abs().max() > 1e-4
