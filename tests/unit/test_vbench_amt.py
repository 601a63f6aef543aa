"""motion_smoothness: VBench's rule (frame selection, padding, truncation, score) and AMT-S (real architecture)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from components.evaluation.vbench.compute import compute
from components.evaluation.vbench.dimensions_amt import (interpolate_odd, motion_smoothness, smoothness_score,
                                                         to_uint8, vbench_scale)
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.loaders_amt import load_amt
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.weights import Located
from models.vbench.amt import AMT, AMT_S, AMTConfig
from vbench_testing import flat_video, moving_square, write_lossless

TINY = AMTConfig(channels=(8, 8, 12, 12), skip_channels=4, feature_dim=16, num_flows=2, hidden_dim=8, flow_dim=4,
                 corr_dim=8, fc_dim=8)


def _tiny(seed: int = 0) -> AMT:
    torch.manual_seed(seed)
    return AMT(TINY).eval()


def _blend(model: AMT) -> AMT:
    """Zero every layer that emits a flow, a feature update, a residual or a correction: AMT then predicts the
    plain average of its two inputs (zero flows, masks sigmoid(0) = 1/2), which a test can work out by hand."""
    last = [model.decoder4.convblock[2], model.decoder3.convblock[2], model.decoder2.convblock[2],
            model.decoder1.convblock[2], model.comb_block[2]]
    last += [getattr(model, f"update{i}").feat_head[2] for i in (4, 3, 2)]
    last += [getattr(model, f"update{i}").flow_head[2] for i in (4, 3, 2)]
    with torch.no_grad():
        for layer in last:
            layer.weight.zero_()
            layer.bias.zero_()
    return model


def test_amt_s_has_the_checkpoint_names_and_size():
    with torch.device("meta"):
        model = AMT_S()
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == 2_990_543 and len(model.state_dict()) == 213
    shapes = {"feat_encoder.conv2.weight": (84, 96, 1, 1), "feat_encoder.layer2.0.downsample.0.weight": (64, 32, 1, 1),
              "encoder.pyramid4.1.0.weight": (56, 56, 3, 3), "encoder.pyramid1.0.1.weight": (20,),
              "decoder4.convblock.0.0.weight": (112, 113, 3, 3), "decoder4.convblock.2.weight": (112, 48, 4, 4),
              "decoder3.convblock.1.conv2.0.weight": (20, 20, 3, 3), "decoder1.convblock.2.weight": (60, 24, 4, 4),
              "update4.convc1.weight": (64, 392, 1, 1), "update2.gru.0.weight": (76, 92, 3, 3),
              "update3.feat_head.2.weight": (32, 76, 3, 3), "comb_block.1.weight": (18,)}
    assert {k: tuple(params[k].shape) for k in shapes} == shapes
    assert not any("norm" in k for k in params)  # the correlation encoder's instance norms carry no weights


def test_vbench_scale_follows_its_vram_rule():
    assert vbench_scale(320, 512, None) == (1.0, 16)  # the CPU never resizes
    assert vbench_scale(4320, 7680, None) == (1.0, 16)
    assert vbench_scale(1080, 1920, 80 * 1024**3) == (1.0, 16)
    # 4K on 80 GiB: 2^19/(2160*3840) * sqrt((80 GiB - 2500 MiB)/1500 MiB) = 0.45995; 1/sqrt -> 23.59 sixteenths
    assert vbench_scale(2160, 3840, 80 * 1024**3) == (pytest.approx(16 / 23), 23)
    with pytest.raises(ValueError, match="more than 2500 MiB of GPU memory, the GPU has 2048 MiB"):
        vbench_scale(64, 64, 2 * 1024**3)


def test_score_and_truncation_against_hand_computed_values():
    assert to_uint8(torch.tensor([0.5, 1.0, 0.999, 0.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2))[0, :, :, 0].tolist() \
        == [[127, 255], [254, 0]]  # x255 then truncated: 127.5 -> 127, 254.745 -> 254
    frames = flat_video([0, 100, 0, 40, 0], 2, 2)
    predicted = flat_video([110, 40], 2, 2)
    predicted[1, 0] = 70  # half of the second prediction is 30 off
    # odd frames 1 and 3: |100 - 110| = 10 and (0 + 30) / 2 = 15 -> mean 12.5
    assert smoothness_score(frames, predicted) == pytest.approx((255 - 12.5) / 255, abs=1e-12)


def test_forward_shapes_and_errors():
    model = _tiny()
    a, b = torch.rand(2, 3, 128, 144), torch.rand(2, 3, 128, 144)
    with torch.no_grad():
        pred = model(a, b, 0.5)
        single = model(a[1:], b[1:], 0.5)
    assert pred.shape == (2, 3, 128, 144) and 0 <= pred.min() and pred.max() <= 1
    assert torch.allclose(pred[1:], single, atol=1e-5)  # pairs in a batch do not see each other
    with pytest.raises(ValueError, match=r"divisible by 16 and >= 128 .* got \(120, 144\)"):
        model(a[..., :120, :], b[..., :120, :])


def test_loader_round_trip_is_strict_and_records_sha256(tmp_path):
    model = _tiny()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "amt-s.pth")  # the official layout
    loaded, record = load_amt(str(tmp_path / "amt-s.pth"))
    assert loaded.cfg == TINY and not loaded.training
    assert record.sha256 == hashlib.sha256((tmp_path / "amt-s.pth").read_bytes()).hexdigest()
    x0, x1 = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x0, x1), model(x0, x1))


def test_loader_names_the_file_of_a_wrong_checkpoint(tmp_path):
    state = _tiny().state_dict()
    del state["update3.convf1.bias"]
    torch.save({"state_dict": state}, tmp_path / "cut.pth")
    with pytest.raises(ValueError, match=r"cut.pth: not an AMT checkpoint: missing \['update3.convf1.bias'\]"):
        load_amt(str(tmp_path / "cut.pth"))
    torch.save({"state_dict": {"fnet.conv1.weight": torch.zeros(1)}}, tmp_path / "raft.pth")
    with pytest.raises(ValueError, match="raft.pth: not an AMT checkpoint \\(no encoder.pyramid1.0.0.weight\\)"):
        load_amt(str(tmp_path / "raft.pth"))


def test_blend_model_end_to_end_matches_the_hand_computed_score(tmp_path):
    torch.save({"state_dict": _blend(_tiny()).state_dict()}, tmp_path / "amt-s.pth")
    amt, _ = load_amt(str(tmp_path / "amt-s.pth"))
    # 32x48 frames (padded to 128x128 and cropped back); even frames interpolate the odd ones as their average
    videos = [VideoItem(str(write_lossless(flat_video([0, 51, 0, 51, 0], 32, 48), tmp_path / "a-0.mp4")), "a"),
              # (0 + 255) / 2 = 127.5 becomes 127 (VBench truncates): a perfect score; rounding would give 254/255
              VideoItem(str(write_lossless(flat_video([0, 127, 255, 127, 0, 9], 32, 48), tmp_path / "b-0.mp4")), "b")]
    result = motion_smoothness(amt, videos, batch=1)
    assert [r["score"] for r in result.per_video] == [pytest.approx(204 / 255), 1.0]
    assert result.value == pytest.approx((204 / 255 + 1.0) / 2)
    # 5 frames: evens 0, 2, 4 predict 1 and 3; 6 frames: the same, frame 5 has no even successor
    assert [(r["frames"], r["interpolated"], r["scale"]) for r in result.per_video] == [(5, 2, 1.0), (6, 2, 1.0)]


def test_random_init_end_to_end_through_the_hub(tmp_path):
    torch.save({"state_dict": _tiny(1).state_dict()}, tmp_path / "amt_s.pth")
    frames = moving_square(9, 64)
    videos = [VideoItem(str(write_lossless(frames, tmp_path / "square-0.mp4")), "square")]
    hub = ModelHub({"amt-s": Located("amt-s", str(tmp_path / "amt_s.pth"), True)})
    outcome = compute(["motion_smoothness"], lambda _: videos, hub)
    result = outcome.results["motion_smoothness"]
    assert 0.0 <= result.value <= 1.0 and result.per_video[0]["interpolated"] == 4
    assert result.settings["weights"][0]["sha256"] == hashlib.sha256((tmp_path / "amt_s.pth").read_bytes()).hexdigest()
    predicted, scale = interpolate_odd(hub.get("amt-s"), frames, batch=3)
    assert predicted.shape == (4, 64, 64, 3) and predicted.dtype == np.uint8 and scale == 1.0
    assert result.value == pytest.approx(smoothness_score(frames, predicted), abs=1e-4)  # batch 16 vs 3
    with pytest.raises(ValueError, match=r"short.mp4: motion_smoothness needs >= 3 frames \(two even ones\), got 2"):
        motion_smoothness(hub.get("amt-s"), [VideoItem(str(write_lossless(frames[:2], tmp_path / "short.mp4")), "s")])
