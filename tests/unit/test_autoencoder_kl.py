"""Our AutoencoderKL against diffusers': the same seed builds the same weights, and they train to the same bits."""
import pytest
import torch

from models.vae.autoencoder_kl import AutoencoderKL
from models.vae.registry import TINY
from models.vae.spatial import SpatialVAEConfig, build_autoencoder_kl
from tests.unit.vae_testing import diffusers_twin

SMALL_GROUP = SpatialVAEConfig(block_out_channels=(16, 32), layers_per_block=2, norm_num_groups=8)  # + attention


def train_steps(vae: torch.nn.Module, x: torch.Tensor, steps: int = 2) -> list[torch.Tensor]:
    """AdamW on reconstruction + KL through posterior samples, as vae.stage0 trains; the losses."""
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(5)
    losses = []
    for _ in range(steps):
        post = vae.encode(x).latent_dist
        loss = (vae.decode(post.sample(gen)).sample - x).abs().mean() + 1e-3 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach())
    return losses


@pytest.mark.parametrize("cfg", [TINY.spatial, SMALL_GROUP], ids=["tiny-no-norms", "group-norms-attention"])
def test_same_seed_same_weights_and_same_bits_as_diffusers(cfg):
    torch.manual_seed(0)
    theirs = diffusers_twin(cfg)
    torch.manual_seed(0)
    ours = build_autoencoder_kl(cfg)
    assert isinstance(ours, AutoencoderKL)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)  # same names in the same order: clipping and DDP buckets see the same sequence
    assert all(torch.equal(a[k], b[k]) for k in a)

    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        p, q = theirs.encode(x).latent_dist, ours.encode(x).latent_dist
        assert q.mean.shape == (4, 4, 32 // cfg.downsample, 32 // cfg.downsample)
        assert torch.equal(p.mean, q.mean) and torch.equal(p.logvar, q.logvar) and torch.equal(p.kl(), q.kl())
        assert torch.equal(theirs.decode(p.mean).sample, ours.decode(q.mean).sample)
    assert torch.equal(torch.stack(train_steps(theirs, x)), torch.stack(train_steps(ours, x)))
    a, b = theirs.state_dict(), ours.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # two AdamW steps later, still the same bits


def test_diffusers_weights_load_strictly_and_sizes():
    theirs = diffusers_twin(SMALL_GROUP)
    ours = build_autoencoder_kl(SMALL_GROUP)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # e.g. an SDXL-layout checkpoint
    tiny = build_autoencoder_kl(TINY.spatial)
    z = tiny.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 4, 8, 8) and tiny.decode(z).sample.shape == (1, 3, 64, 64)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in tiny.modules())  # the tiny VAE has no norms
    assert len(ours.encoder.mid_block.attentions) == 1 and len(tiny.encoder.mid_block.attentions) == 0
    for field in ("block_out_channels", "layers_per_block", "latent_channels", "mid_block_add_attention"):
        assert getattr(ours.config, field) == theirs.config[field]  # what ImageCodec reads of either
