"""Video VAE shapes: (B, 3, T, H, W) -> (B, 4, latent_frames(T), H/8, W/8) and back; sizes and parameter counts."""
import pytest
import torch

from models.vae import VAE_configs, VAE_models, VideoVAEConfig
from models.vae.causal import FrameGroupNorm, depth_to_time
from models.vae.spatial import SpatialVAEConfig, build_autoencoder_kl, encode_frames
from models.vae.temporal import TemporalVAE, TemporalVAEConfig
from models.vae.video_vae import channel_stats
from vae_testing import one_thread  # noqa: F401  (autouse fixture)

OPEN_SORA_TEMPORAL_VAE_PARAMS = 309_687_144  # VAE_Temporal_SD: filters 128/256/256/512, 4 ResBlocks per level
SDXL_VAE_PARAMS = 83_653_863  # AutoencoderKL with SDXL's block_out_channels (128, 256, 512, 512)
H = W = 16  # tiny frames: 2x2 latents


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VAE_models["tiny"]().eval()


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_latent_frames_follow_17_frame_chunks(vae):
    # RECIPE §2: 17 -> 20 -> 5, and 51/102/204/408 -> 15/30/60/120; a partial chunk of n frames gives ceil(n/4)
    expected = {1: 1, 4: 1, 5: 2, 16: 4, 17: 5, 18: 6, 33: 9, 34: 10, 51: 15, 102: 30, 204: 60, 408: 120}
    assert {t: vae.latent_frames(t) for t in expected} == expected


def test_latent_frames_without_chunks_is_ceil_t_over_4():
    whole = VAE_models["tiny"](chunk_frames=None)
    assert [whole.latent_frames(t) for t in (1, 17, 33, 51, 102)] == [1, 5, 9, 13, 26]


@pytest.mark.parametrize("batch,frames", [(2, 1), (2, 17), (1, 33), (1, 51), (1, 102)])
def test_encode_decode_shapes(vae, batch, frames):
    x = torch.rand(batch, 3, frames, H, W) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x)
        y = vae.decode(z, frames)
    assert z.shape == (batch, 4, vae.latent_frames(frames), H // 8, W // 8)
    assert y.shape == x.shape


def test_forward_returns_both_reconstructions(vae):
    x = torch.rand(1, 3, 17, H, W) * 2 - 1
    with torch.no_grad():
        out = vae(x, sample=False)
    assert out.x_rec.shape == x.shape
    assert out.z2d.shape == out.z2d_rec.shape == (1, 4, 17, 2, 2)
    assert out.z.shape == out.posterior.mean.shape == (1, 4, 5, 2, 2)
    torch.testing.assert_close(out.z, out.posterior.mean)


def test_normalisation_uses_shift_and_scale_buffers(vae):
    x = torch.rand(1, 3, 5, H, W) * 2 - 1
    with torch.no_grad():
        raw = vae.encode(x)  # tiny starts with shift 0, scale 1
        shift, scale = (0.5, -1.0, 2.0, 0.0), (2.0, 4.0, 0.5, 1.0)
        vae.set_latent_stats(shift, scale)
        try:
            z = vae.encode(x)
            expected = (raw - torch.tensor(shift).view(1, 4, 1, 1, 1)) / torch.tensor(scale).view(1, 4, 1, 1, 1)
            torch.testing.assert_close(z, expected)
            torch.testing.assert_close(vae.decode(z, 5), vae.decode_frames(vae.decode_temporal(raw, 5)))
            assert "shift" in vae.state_dict() and "scale" in vae.state_dict()
        finally:
            vae.set_latent_stats((0.0,) * 4, (1.0,) * 4)


def test_default_normalisation_is_open_soras():
    cfg = VideoVAEConfig()
    assert cfg.shift == (-0.10, 0.34, 0.27, 0.98) and cfg.scale == (3.85, 2.32, 2.33, 3.06)
    assert cfg.spatial.scaling_factor == 0.18215 and cfg.chunk_frames == 17


def test_channel_stats_normalise_to_zero_mean_unit_std():
    z = torch.randn(2, 4, 5, 3, 3) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1, 1) + 7.0
    shift, scale = channel_stats(z)
    normed = (z - torch.tensor(shift).view(1, 4, 1, 1, 1)) / torch.tensor(scale).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(normed.transpose(0, 1).flatten(1).mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(normed.transpose(0, 1).flatten(1).std(1), torch.ones(4), atol=1e-5, rtol=0)


def test_micro_batching_does_not_change_2d_latents(vae):
    x = torch.rand(2, 3, 6, H, W) * 2 - 1
    with torch.no_grad():
        by_1 = encode_frames(vae.spatial, x, 0.18215, micro_batch=1)
        by_4 = encode_frames(vae.spatial, x, 0.18215, micro_batch=4)
        whole = vae.spatial.encode(x.permute(0, 2, 1, 3, 4).reshape(12, 3, H, W)).latent_dist.mode() * 0.18215
    torch.testing.assert_close(by_1, by_4, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(by_4, whole.view(2, 6, 4, 2, 2).permute(0, 2, 1, 3, 4), atol=1e-5, rtol=1e-5)


def test_temporal_vae_alone_compresses_time_by_4():
    tvae = TemporalVAE(VAE_configs["tiny"].temporal)
    x = torch.randn(2, 4, 17, 3, 3)
    with torch.no_grad():
        post = tvae.encode(x)
        y = tvae.decode(post.mode(), 17)
    assert post.mean.shape == post.logvar.shape == (2, 4, 5, 3, 3)
    assert y.shape == x.shape


def test_bad_inputs_are_named(vae):
    with pytest.raises(ValueError, match="12x16 is not a multiple of 8"):
        vae.encode(torch.zeros(1, 3, 4, 12, 16))
    with pytest.raises(ValueError, match=r"num_frames=16 maps to 4 latent frames, but z has 5"):
        vae.decode(torch.zeros(1, 4, 5, 2, 2), 16)
    with pytest.raises(ValueError, match=r"expected video \(B, 3, T, H, W\)"):
        vae.encode(torch.zeros(1, 4, 4, 16, 16))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="filters: 48 is not divisible by num_groups=32"):
        TemporalVAEConfig(filters=(32, 48, 64, 64))
    with pytest.raises(ValueError, match="temporal_downsample has 2 entries"):
        TemporalVAEConfig(temporal_downsample=(True, True))
    with pytest.raises(ValueError, match="spatial.latent_channels=8 != temporal.channels=4"):
        VideoVAEConfig(spatial=SpatialVAEConfig(latent_channels=8))


def test_depth_to_time_moves_channel_groups_into_time():
    # channel c*f + s at step t becomes channel c at step t*f + s
    x = torch.arange(2 * 2 * 3, dtype=torch.float32).view(1, 4, 3, 1, 1)  # (B, C*f, T, 1, 1), C=2, f=2
    y = depth_to_time(x, 2)
    assert y.shape == (1, 2, 6, 1, 1)
    for c in range(2):
        for t in range(3):
            for s in range(2):
                assert y[0, c, t * 2 + s, 0, 0] == x[0, c * 2 + s, t, 0, 0]


def test_frame_group_norm_is_group_norm_of_each_frame():
    torch.manual_seed(1)
    norm = FrameGroupNorm(4, 8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 5, 3, 3) * 3 + 1
    ref = torch.nn.functional.group_norm(x.permute(0, 2, 1, 3, 4).reshape(10, 8, 3, 3), 4, norm.weight, norm.bias, 1e-5)
    torch.testing.assert_close(norm(x), ref.view(2, 5, 8, 3, 3).permute(0, 2, 1, 3, 4), atol=1e-5, rtol=1e-5)


def test_full_parameter_counts_on_meta_device():
    with torch.device("meta"):
        temporal = TemporalVAE(VAE_configs["full"].temporal)
        spatial = build_autoencoder_kl(VAE_configs["full"].spatial)
    assert count(temporal) == OPEN_SORA_TEMPORAL_VAE_PARAMS
    assert 280e6 <= count(temporal) <= 330e6  # "~300M" in the Open-Sora 1.2 report
    assert count(spatial) == SDXL_VAE_PARAMS
    assert VAE_configs["full"].spatial.downsample == 8 and VAE_configs["tiny"].spatial.downsample == 8


def test_tiny_is_small():
    tiny = VAE_models["tiny"]()
    assert count(tiny.temporal) < 2e6 and count(tiny.spatial) < 2e6
