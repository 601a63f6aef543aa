"""VAE training loss over mixed-length micro-batches: equals the per-sample losses, padding never leaks in."""
from __future__ import annotations

import pytest
import torch

from components.training.vae_loss import (STAGE_TERMS, combine, length_groups, micro_batch_loss, real_frames,
                                         to_vae_output)
from components.training.vae_model import VAETrainModule
from models.vae import VAE_models
from models.vae.losses import stage_loss
from tests.unit.vae_testing import one_thread  # noqa: F401  (module fixture)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VAE_models["tiny"]().eval()


def padded_batch(lengths: list[int], t: int, size: int = 16, pad_value: float = 0.0) -> dict:
    gen = torch.Generator().manual_seed(1)
    video = torch.full((len(lengths), 3, t, size, size), pad_value)
    for i, n in enumerate(lengths):
        video[i, :, :n] = torch.rand(3, n, size, size, generator=gen) * 2 - 1
    return {"video": video, "num_frames": torch.tensor(lengths), "is_image": torch.tensor([n == 1 for n in lengths])}


def test_groups_and_real_frames():
    groups = length_groups(torch.tensor([9, 1, 9, 4]))
    assert [(g.tolist(), n) for g, n in groups] == [([0, 2], 9), ([3], 4), ([1], 1)]
    batch = padded_batch([3, 1], t=5, pad_value=7.0)
    frames = real_frames(batch["video"], batch["num_frames"])
    assert frames.shape == (1, 3, 4, 16, 16) and not (frames == 7.0).any()
    assert torch.equal(frames[0, :, 3], batch["video"][1, :, 0])


def test_combine_weights_groups_by_samples_and_identity_by_image_samples():
    parts = [(3, {"loss": torch.tensor(1.0), "latent_nll": torch.tensor(1.0)}),
             (1, {"loss": torch.tensor(5.0), "latent_nll": torch.tensor(2.0), "identity": torch.tensor(3.0)})]
    out = combine(parts)
    assert out["loss"].item() == pytest.approx(2.0) and out["latent_nll"].item() == pytest.approx(1.25)
    assert out["identity"].item() == pytest.approx(3.0)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_padded_batch_loss_is_the_mean_of_each_sample_alone(vae, stage):
    module = VAETrainModule(vae, stage, logvar_init=0.3, sample=False)
    lengths = [9, 1, 6] if stage < 3 else [9, 3, 6]
    with torch.no_grad():
        batch = padded_batch(lengths, t=9)
        got = micro_batch_loss(stage, module, batch, None, 0.1, 1e-6)
        garbage = micro_batch_loss(stage, module, padded_batch(lengths, t=9, pad_value=0.9), None, 0.1, 1e-6)
        alone = []
        for i, n in enumerate(lengths):
            x = batch["video"][i:i + 1, :, :n]
            out = module(x)
            alone.append(stage_loss(stage, x, to_vae_output(out), out["logvar"], None, 0.1, 1e-6))
    assert set(got) == set(STAGE_TERMS[stage])
    expected = sum(a["loss"] for a in alone) / len(alone)
    assert got["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert garbage["loss"].item() == pytest.approx(got["loss"].item(), rel=1e-6)  # padding content is never read
    if stage == 1:
        assert got["identity"].item() == pytest.approx(alone[1]["identity"].item(), rel=1e-5)


def test_stage0_loss_treats_every_real_frame_as_an_image(vae):
    module = VAETrainModule(vae, 0, logvar_init=0.0, sample=False)
    with torch.no_grad():
        batch = padded_batch([4, 1], t=4)
        got = micro_batch_loss(0, module, batch, None, 0.1, 0.0)
        frames = real_frames(batch["video"], batch["num_frames"])  # (1, 3, 5, H, W)
        rec = module(frames)["x_rec"]
    # logvar 0: the nll is the L1 summed over (C, H, W), averaged over the 5 real frames
    l1 = (frames - rec).abs().sum() / 5
    assert got["pixel_nll"].item() == pytest.approx(l1.item(), rel=1e-5)
    assert got["loss"].item() == pytest.approx(got["pixel_nll"].item())
    # the squared error is reduced like the nll: summed per frame, mean over the 5 frames
    assert got["mse"].item() == pytest.approx(((frames - rec).pow(2).sum() / 5).item(), rel=1e-5)
    weighted = micro_batch_loss(0, module, batch, None, 0.1, 0.0, mse_weight=2.0)
    assert weighted["loss"].item() == pytest.approx(got["pixel_nll"].item() + 2.0 * got["mse"].item(), rel=1e-6)
