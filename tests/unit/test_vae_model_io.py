"""VAE stage models: which parts train, exports and the initialisation of one stage from the previous one."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from components.training.vae_model import (EXPORT_ARCH, EXPORT_CONFIG, EXPORT_WEIGHTS, PARTS, build_vae, export_vae,
                                           load_init, set_trainable)
from models.vae import VAE_models


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_set_trainable_freezes_all_but_the_parts():
    vae = VAE_models["tiny"]()
    counts = set_trainable(vae, ["temporal"])
    assert counts == {"trainable_params": count(vae.temporal), "frozen_params": count(vae.spatial)}
    assert all(not p.requires_grad for p in vae.spatial.parameters())
    counts = set_trainable(vae, ["spatial_encoder", "temporal"])
    encoder = count(vae.spatial.encoder) + count(vae.spatial.quant_conv)
    assert counts["trainable_params"] == encoder + count(vae.temporal)
    assert not any(p.requires_grad for p in vae.spatial.decoder.parameters())
    assert set(PARTS) == {"spatial_encoder", "spatial_decoder", "temporal"}


def test_stage0_export_initialises_the_2d_half_only(tmp_path):
    torch.manual_seed(1)
    stage0 = VAE_models["tiny"]()
    export_vae(stage0, tmp_path / "stage0", {"model": "tiny", "stage": 0}, parts=["spatial"])
    meta = json.loads((tmp_path / "stage0" / EXPORT_CONFIG).read_text())
    assert meta["parts"] == ["spatial"] and meta["stage"] == 0
    vae = build_vae("tiny", "init", tmp_path / "stage0", "tiny", seed=5)
    fresh = build_vae("tiny", "random", None, "tiny", seed=5)
    for key, value in stage0.spatial.state_dict().items():
        assert torch.equal(vae.spatial.state_dict()[key], value)
    for key, value in fresh.temporal.state_dict().items():  # the temporal VAE keeps its seeded init
        assert torch.equal(vae.temporal.state_dict()[key], value)


def test_full_export_round_trip_carries_latent_stats(tmp_path):
    vae = VAE_models["tiny"]()
    vae.set_latent_stats((0.1, 0.2, 0.3, 0.4), (1.5, 2.0, 2.5, 3.0))
    export_vae(vae, tmp_path / "s3", {"model": "tiny", "stage": 3})
    arch = json.loads((tmp_path / "s3" / EXPORT_ARCH).read_text())
    assert arch["scale"] == [1.5, 2.0, 2.5, 3.0] and arch["chunk_frames"] == 17
    assert arch["temporal"]["filters"] == [16, 32, 32, 64]
    other = VAE_models["tiny"]()
    assert load_init(other, tmp_path / "s3") == ["spatial", "temporal"]
    assert torch.equal(other.scale.flatten(), torch.tensor([1.5, 2.0, 2.5, 3.0]))


def test_partial_or_missing_exports_are_refused(tmp_path):
    vae = VAE_models["tiny"]()
    with pytest.raises(FileNotFoundError, match=f"{EXPORT_WEIGHTS} is missing"):
        load_init(vae, tmp_path / "nothing")
    # a whole-VAE export that lost its temporal weights is not a stage-0 export: refuse it
    export_vae(vae, tmp_path / "cut", {"model": "tiny", "stage": 1}, parts=["spatial"])
    meta = json.loads((tmp_path / "cut" / EXPORT_CONFIG).read_text())
    (tmp_path / "cut" / EXPORT_CONFIG).write_text(json.dumps({**meta, "parts": ["spatial", "temporal"]}))
    with pytest.raises(ValueError, match="does not fit VAE 'tiny'"):
        load_init(VAE_models["tiny"](), tmp_path / "cut")


def test_sdxl_vae_loads_from_the_weights_store_or_names_what_is_missing(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from components.training.vae_model import load_sdxl_vae
    from models.vae.spatial import SpatialVAEConfig
    from tests.unit.vae_testing import diffusers_twin

    monkeypatch.setenv("REELFORGE_WEIGHTS", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match="sdxl-vae: .*sdxl-vae/diffusion_pytorch_model.safetensors"):
        load_sdxl_vae("full")
    small = diffusers_twin(SpatialVAEConfig(block_out_channels=(32, 32), layers_per_block=1))  # a diffusers folder
    folder = tmp_path / "store" / "sdxl-vae"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(dict(small.config)))
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(folder / "diffusion_pytorch_model.safetensors"))
    loaded = load_sdxl_vae("full")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in small.state_dict().items())


def test_fresh_posteriors_start_with_the_configured_log_variance(tmp_path):
    vae = build_vae("tiny", "random", None, "tiny", seed=0, posterior_logvar_init=-6.0)
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        d2 = vae.spatial.encode(x[:, :, 0]).latent_dist
        post = vae.encode_temporal(vae.encode_frames(x))
    # the weights still add their small random part to the bias
    assert d2.logvar.mean().item() == pytest.approx(-6.0, abs=0.5)
    assert post.logvar.mean().item() == pytest.approx(-6.0, abs=0.5)
    export_vae(vae, tmp_path / "s1", {"model": "tiny", "stage": 1})
    loaded = build_vae("tiny", "init", tmp_path / "s1", "tiny", seed=3, posterior_logvar_init=-2.0)
    assert torch.equal(loaded.temporal.encoder.quant_conv.conv.bias, vae.temporal.encoder.quant_conv.conv.bias)


def test_2d_vae_runs_channels_last_and_exports_contiguous(tmp_path):
    torch.manual_seed(3)
    vae = VAE_models["tiny"]()
    convs = [m.weight for m in vae.spatial.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # 3x3 kernels: NHWC differs from NCHW
    plain = VAE_models["tiny"]()
    plain.load_state_dict(vae.state_dict())
    plain.spatial.to(memory_format=torch.contiguous_format)
    x = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        got, want = vae.decode(vae.encode(x), 9), plain.decode(plain.encode(x), 9)
    assert got.shape == (2, 3, 9, 32, 32)
    assert torch.allclose(got, want, atol=1e-5) and got.abs().max() > 0.01  # the same network, another layout
    export_vae(vae, tmp_path / "out", {"model": "tiny", "stage": 3})
    saved = load_file(str(tmp_path / "out" / EXPORT_WEIGHTS))
    assert all(t.is_contiguous() for t in saved.values())
    for key, value in vae.state_dict().items():
        assert torch.equal(saved[key], value), key
    back = build_vae("tiny", "init", tmp_path / "out", "tiny", seed=0)
    with torch.no_grad():
        assert torch.equal(back.decode(back.encode(x), 9), got)  # loaded into NHWC weights again: the same bits
