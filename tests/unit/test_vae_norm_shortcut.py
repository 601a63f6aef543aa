"""The tiny VAE's two departures from Open-Sora's layout: no normalisation layers, and the temporal shortcut."""
import pytest
import torch
import torch.nn as nn

from models.vae import VAE_models
from models.vae.causal import FrameGroupNorm
from models.vae.spatial import SpatialVAEConfig, build_autoencoder_kl
from models.vae.temporal import TemporalVAE, TemporalVAEConfig


def count_norms(module: nn.Module) -> int:
    return sum(isinstance(m, (nn.GroupNorm, FrameGroupNorm)) for m in module.modules())


def test_norm_none_builds_without_group_norms():
    small = dict(block_out_channels=(8, 16), layers_per_block=1, mid_block_add_attention=False)
    assert count_norms(build_autoencoder_kl(SpatialVAEConfig(**small, norm_num_groups=4))) == 22
    assert count_norms(build_autoencoder_kl(SpatialVAEConfig(**small, norm="none"))) == 0
    temporal = dict(filters=(8, 8, 8, 16), num_res_blocks=1)
    assert count_norms(TemporalVAE(TemporalVAEConfig(**temporal, num_groups=4))) > 0
    assert count_norms(TemporalVAE(TemporalVAEConfig(**temporal, norm="none"))) == 0
    assert count_norms(VAE_models["tiny"]()) == 0


def test_norm_and_shortcut_errors_name_the_field():
    with pytest.raises(ValueError, match="SpatialVAEConfig.norm must be one of"):
        SpatialVAEConfig(norm="batch")
    with pytest.raises(ValueError, match="TemporalVAEConfig.norm must be one of"):
        TemporalVAEConfig(norm="layer")
    with pytest.raises(ValueError, match="time_shortcut needs channels == latent_channels, got 4 and 8"):
        TemporalVAEConfig(latent_channels=8, time_shortcut=True)


def _zero_networks(tv: TemporalVAE) -> TemporalVAE:
    """The temporal VAE with its networks' output layers zeroed (in float64): only the shortcut paths are left."""
    with torch.no_grad():
        for conv in (tv.encoder.conv_out, tv.encoder.quant_conv, tv.decoder.conv_out):
            conv.conv.weight.zero_()
            if conv.conv.bias is not None:
                conv.conv.bias.zero_()
    return tv.double()


@pytest.fixture
def shortcut_only():
    """A temporal VAE whose networks output zeros, so only the parameter-free shortcut is left."""
    return _zero_networks(TemporalVAE(TemporalVAEConfig(filters=(8, 8, 8, 16), num_res_blocks=1, norm="none",
                                                        time_shortcut=True)))


def test_shortcut_mean_is_the_mean_of_each_window_real_frames(shortcut_only):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 17, 3, 3, dtype=torch.double)
    with torch.no_grad():
        mean = shortcut_only.encode(x).mean  # 3 zero frames in front: latent k covers frames 4k-3 .. 4k
    assert mean.shape == (2, 4, 5, 3, 3)
    torch.testing.assert_close(mean[:, :, 0], x[:, :, 0])  # the zero frames are not counted
    for k in range(1, 5):
        torch.testing.assert_close(mean[:, :, k], x[:, :, 4 * k - 3 : 4 * k + 1].mean(dim=2))


def test_shortcut_passes_still_clips_and_images_through(shortcut_only):
    torch.manual_seed(1)
    frame = torch.randn(2, 4, 1, 3, 3, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(shortcut_only.encode(frame).mean, frame)  # an image's latent is its 2D latent
        for t in (16, 17, 33):
            still = frame.expand(-1, -1, t, -1, -1)
            torch.testing.assert_close(shortcut_only.decode(shortcut_only.encode(still).mean, t), still)
        moving = torch.randn(2, 4, 16, 3, 3, dtype=torch.double)
        rec = shortcut_only.decode(shortcut_only.encode(moving).mean, 16)
    # a moving clip comes back as its window means: what the networks have to learn is the rest
    torch.testing.assert_close(rec, moving.view(2, 4, 4, 4, 3, 3).mean(3, keepdim=True).expand(-1, -1, -1, 4, -1, -1)
                               .reshape(2, 4, 16, 3, 3))


def test_time_slope_extrapolates_each_window_from_the_previous_latent():
    cfg = TemporalVAEConfig(filters=(8, 8, 8, 16), num_res_blocks=1, norm="none", time_shortcut=True, time_slope=True)
    tv = _zero_networks(TemporalVAE(cfg))
    assert tv.slope.shape == (4, 4) and tv.slope.abs().sum() == 0  # zeros: the plain shortcut at init
    torch.manual_seed(2)
    z = torch.randn(2, 4, 5, 3, 3, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(tv.decode(z, 20), z.repeat_interleave(4, dim=2))
        tv.slope.copy_(torch.arange(16, dtype=torch.double).view(4, 4) / 10)
        out = tv.decode(z, 20).view(2, 4, 5, 4, 3, 3)  # (B, C, window k, frame j, h, w)
    for k in range(5):
        change = z[:, :, k] - z[:, :, k - 1] if k else torch.zeros_like(z[:, :, 0])  # none for the first latent
        for j in range(4):
            expected = z[:, :, k] + tv.slope[:, j].view(1, 4, 1, 1) * change
            torch.testing.assert_close(out[:, :, k, j], expected)
    # causal: the frames of window k do not move when a later latent does
    later = z.clone()
    later[:, :, 3:] += 1.0
    with torch.no_grad():
        moved = tv.decode(later, 20).view(2, 4, 5, 4, 3, 3)
    torch.testing.assert_close(moved[:, :, :3], out[:, :, :3])
    assert not torch.allclose(moved[:, :, 3:], out[:, :, 3:])


def test_time_slope_learns_and_needs_the_shortcut():
    with pytest.raises(ValueError, match="time_slope extends the window-mean shortcut"):
        TemporalVAEConfig(time_slope=True)
    cfg = TemporalVAEConfig(filters=(8, 8, 8, 16), num_res_blocks=1, norm="none", time_shortcut=True, time_slope=True)
    tv = TemporalVAE(cfg)
    z = torch.randn(1, 4, 3, 2, 2)
    tv.decode(z, 12).square().sum().backward()
    assert tv.slope.grad is not None and tv.slope.grad.abs().sum() > 0
    assert VAE_models["tiny"]().temporal.cfg.time_slope  # the tiny profile's VAE has it
