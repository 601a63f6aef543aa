"""RAFT with random weights: official key names and sizes, shapes, closed forms, checkpoint round trip, scorer path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from components.curation.scorer import ClipFrames
from components.curation.scorers.camera import CAMERA_CLASSES
from components.curation.scorers.flow import FlowConfig, FlowScorer
from components.curation.scorers.raft_flow import RaftFlow, load_raft
from models.raft import RAFT_models, CorrPyramid, coords_grid, pad_to_multiple, unpad


@pytest.fixture(scope="module")
def things():
    torch.manual_seed(0)
    return RAFT_models["things"]().eval()


def test_parameter_counts_match_the_paper(things):
    # Teed & Deng report 5.3M (RAFT) and 1.0M (RAFT-S) parameters
    assert sum(p.numel() for p in things.parameters()) == 5_257_536
    assert sum(p.numel() for p in RAFT_models["small"]().parameters()) == 990_162


def test_official_key_names_and_shapes(things):
    sd = things.state_dict()
    expected = {
        "fnet.conv1.weight": (64, 3, 7, 7),
        "fnet.conv2.weight": (256, 128, 1, 1),
        "cnet.norm1.running_mean": (64,),
        "cnet.layer2.0.norm3.weight": (96,),
        "cnet.layer2.0.downsample.1.running_var": (96,),  # the same BatchNorm, saved under both names
        "update_block.encoder.convc1.weight": (256, 4 * 81, 1, 1),
        "update_block.encoder.conv.weight": (126, 256, 3, 3),
        "update_block.gru.convz1.weight": (128, 384, 1, 5),
        "update_block.gru.convq2.weight": (128, 384, 5, 1),
        "update_block.flow_head.conv2.weight": (2, 256, 3, 3),
        "update_block.mask.2.weight": (576, 256, 1, 1),
    }
    assert {k: tuple(sd[k].shape) for k in expected} == expected
    assert not [k for k in sd if k.startswith("fnet.norm")]  # instance norm: no parameters, as in raft-things.pth
    assert len(sd) == 179
    small = RAFT_models["small"]().state_dict()
    assert tuple(small["update_block.gru.convz.weight"].shape) == (96, 96 + 64 + 82, 3, 3)
    assert tuple(small["fnet.layer3.0.conv3.weight"].shape) == (96, 24, 1, 1)
    assert not [k for k in small if "mask" in k or "cnet.norm" in k]


@pytest.mark.parametrize("variant", ["things", "small"])
def test_forward_shapes(variant):
    torch.manual_seed(0)
    model = RAFT_models[variant]().eval()
    a, b = torch.rand(2, 3, 128, 136) * 255, torch.rand(2, 3, 128, 136) * 255
    with torch.no_grad():
        out = model(a, b, iters=2)
    assert len(out) == 2 and [tuple(f.shape) for f in out] == [(2, 2, 128, 136)] * 2
    assert all(torch.isfinite(f).all() for f in out)


@pytest.mark.parametrize("size", [(130, 128), (128, 120)])
def test_sizes_raft_cannot_take_are_refused(things, size):
    with pytest.raises(ValueError, match=rf"divisible by 8 and >= 128 .* got \({size[0]}, {size[1]}\)"):
        things(torch.zeros(1, 3, *size), torch.zeros(1, 3, *size))


def test_pad_to_multiple_round_trip():
    x = torch.arange(2 * 3 * 30 * 45, dtype=torch.float32).view(2, 3, 30, 45)
    padded, pad = pad_to_multiple(x)
    assert tuple(padded.shape) == (2, 3, 32, 48) and pad == (1, 2, 1, 1)
    assert torch.equal(unpad(padded, pad), x)
    padded, pad = pad_to_multiple(x, minimum=64)
    assert tuple(padded.shape) == (2, 3, 64, 64) and pad == (9, 10, 17, 17)
    assert torch.equal(unpad(padded, pad), x)


def test_correlation_lookup_centre_is_the_scaled_dot_product():
    torch.manual_seed(0)
    f1, f2 = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8)
    corr = CorrPyramid(f1, f2, levels=2, radius=1)(coords_grid(1, 8, 8, torch.device("cpu")))
    assert tuple(corr.shape) == (1, 2 * 9, 8, 8)
    expected = (f1 * f2).sum(1) / 4.0  # level 0, zero offset: <f1(x), f2(x)> / sqrt(16)
    assert torch.allclose(corr[:, 4], expected, atol=1e-5)


def test_upsampling_keeps_a_constant_flow(things):
    flow = torch.ones(1, 2, 4, 6) * torch.tensor([1.5, -0.5]).view(1, 2, 1, 1)
    expected = torch.tensor([12.0, -4.0]).view(1, 2, 1, 1).expand(1, 2, 32, 48)
    assert torch.allclose(things.upsample(flow, None), expected)
    # convex combination (softmax weights sum to 1) of equal neighbours; borders see zero padding, so inside only
    up = things.upsample(flow, torch.randn(1, 576, 4, 6))
    assert torch.allclose(up[..., 8:-8, 8:-8], expected[..., 8:-8, 8:-8], atol=1e-5)


def test_checkpoint_round_trip_through_the_loader(tmp_path, things):
    path = tmp_path / "raft-things.pth"
    # the official files were saved from nn.DataParallel: every key starts with "module."
    torch.save({f"module.{k}": v for k, v in things.state_dict().items()}, path)
    loaded, variant = load_raft(str(path))
    assert variant == "things"
    a, b = torch.rand(1, 3, 128, 128) * 255, torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        assert torch.equal(loaded(a, b, iters=2)[-1], things(a, b, iters=2)[-1])


def test_loader_names_a_wrong_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"other.pth: not a RAFT small checkpoint: missing \["):
        load_raft(str(path))


def test_raft_flow_on_a_translated_pair_end_to_end(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "raft-small.pth"
    torch.save(RAFT_models["small"]().state_dict(), path)
    rng = np.random.default_rng(0)
    canvas = (rng.random((44, 70, 3)) * 255).astype(np.uint8)
    frames = np.stack([canvas[2:42, 4 - t:64 - t] for t in range(3)])  # 40x60, content moves 1 px right a frame
    flows = RaftFlow(str(path), iters=2).flows(frames, [(0, 1), (1, 2)])
    assert [f.shape for f in flows] == [(40, 60, 2)] * 2  # unpadded back to the frame size (40x60 ran as 128x128)
    assert all(np.isfinite(f).all() for f in flows)
    # the scorer takes the explicit checkpoint, says so, and produces its columns (no accuracy without weights)
    scorer = FlowScorer(FlowConfig(method="raft", raft_path=str(path), raft_iters=2, pairs=2))
    assert scorer.provenance()["method"] == "RAFT (small, 2 iters)" and scorer.short_side == 256
    assert scorer.provenance()["weights"].startswith("raft-small.pth@")
    row = scorer.score([ClipFrames("c", frames, [0, 1, 2], 24.0)])[0]
    assert np.isfinite(row["flow"]) and row["cmotion"] in CAMERA_CLASSES
