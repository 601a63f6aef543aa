"""subject_consistency: the pair formula in closed form, DINO ViT (real architecture, official names) end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from components.evaluation.vbench.dimensions_consistency import pair_similarities, subject_consistency
from components.evaluation.vbench.loaders import load_dino
from components.evaluation.vbench.prompts import VideoItem
from models.vbench.dino import DINO_ViT_B16, DinoConfig, DinoViT
from vbench_testing import moving_square, write_lossless

TINY = DinoConfig(dim=64, depth=2, heads=1)


def test_pair_formula_closed_form():
    s = 1 / math.sqrt(2)
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s], [-1.0, 0.0]])
    # t=1: cos(f0,f1)=0, cos(f0,f1)=0; t=2: cos(f1,f2)=s, cos(f0,f2)=s; t=3: both negative -> clamped to 0
    assert pair_similarities(f).tolist() == pytest.approx([0.0, s, 0.0])
    assert pair_similarities(3 * f).tolist() == pytest.approx([0.0, s, 0.0])  # features are L2-normalised first


def test_dino_b16_has_the_official_names_and_size():
    with torch.device("meta"):
        model = DINO_ViT_B16()
    names = dict(model.named_parameters())
    assert sum(p.numel() for p in names.values()) == 85_798_656  # ViT-B/16 without a head
    assert names["pos_embed"].shape == (1, 197, 768) and names["patch_embed.proj.weight"].shape == (768, 3, 16, 16)
    assert {"cls_token", "blocks.11.attn.qkv.weight", "blocks.0.mlp.fc2.bias", "norm.bias"} <= set(names)


def test_position_grid_interpolation_is_dinos():
    torch.manual_seed(0)
    model = DinoViT(TINY)
    assert model.interpolate_pos_encoding(196, 224, 224) is model.pos_embed  # the trained grid: untouched
    with torch.no_grad():
        model.pos_embed[:, 1:] = 0.25  # a constant grid stays constant under bicubic interpolation
    grid = model.interpolate_pos_encoding(14 * 21, 224, 336)
    assert grid.shape == (1, 1 + 14 * 21, 64) and torch.allclose(grid[:, 1:], torch.full_like(grid[:, 1:], 0.25))


def test_features_are_the_cls_token_of_non_square_frames():
    torch.manual_seed(0)
    model = DinoViT(TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 336))
    assert out.shape == (2, 64) and torch.isfinite(out).all()


def test_subject_consistency_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = DinoViT(TINY)
    frozen = write_lossless(np.repeat(moving_square(1, 32), 3, axis=0), tmp_path / "still-0.mp4")
    moving = write_lossless(moving_square(4, 32, step=7), tmp_path / "moving-0.mp4")
    result = subject_consistency(model, [VideoItem(str(frozen), "still"), VideoItem(str(moving), "moving")])
    still, move = (r["score"] for r in result.per_video)
    assert still == pytest.approx(1.0, abs=1e-5)  # identical frames: every cosine is 1
    assert 0.0 <= move <= 1.0
    assert result.value == pytest.approx((2 * still + 3 * move) / 5, abs=1e-6)  # mean over all 5 pairs


def test_loader_reads_an_official_style_checkpoint(tmp_path):
    torch.manual_seed(1)
    model = DinoViT(TINY).eval()
    torch.save(model.state_dict(), tmp_path / "dino.pth")
    loaded, record = load_dino(str(tmp_path / "dino.pth"))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.cfg == TINY and len(record.sha256) == 64
    torch.save({k: v for k, v in model.state_dict().items() if k != "norm.weight"}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad.pth: not a DINO ViT .* missing \['norm.weight'\]"):
        load_dino(str(tmp_path / "bad.pth"))
