"""human_action: VBench's label rule, UMT preprocessing, and the UMT ViT classifier (real architecture) end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from components.evaluation.vbench.dimensions_action import action_label, human_action, parse_labels, umt_clip
from components.evaluation.vbench.frames import IMAGENET_MEAN, IMAGENET_STD
from components.evaluation.vbench.loaders import load_labels, load_umt
from components.evaluation.vbench.prompts import VideoItem
from models.vbench.umt import UMT_L16, UMTClassifier, UMTConfig, position_table
from vbench_testing import moving_square, write_lossless

TINY = UMTConfig(patch_size=32, dim=32, depth=1, heads=1, classes=6)  # 224 px, 16 frames: VBench's input
LABELS = "abseiling\t0\nAir Drumming\t1\nriding a bike\t2\nswimming\t3\nsurfing water\t4\nyoga\t5\n"


def test_label_of_a_file_name_follows_vbench():
    assert action_label("/v/A person is riding a bike-3.mp4") == "riding a bike"
    assert action_label("a person is surfing water_0033-0.mp4") == "surfing water"
    assert parse_labels(LABELS, "k.txt")[1] == "air drumming"
    with pytest.raises(ValueError, match="k.txt: line 1 is not 'name<TAB>index'"):
        parse_labels("abseiling 0\n", "k.txt")


def test_clip_is_sixteen_middles_resized_to_256_and_cropped():
    frames = np.zeros((32, 40, 60, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(32, dtype=np.uint8)[:, None, None] * 5  # red channel encodes the frame index
    x = umt_clip(frames)
    assert x.shape == (3, 16, 224, 224)  # 40x60 -> 256x384 -> centre 224
    red = x[0, :, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    # middles of 16 segments of 32 frames: 0, 2, 4, ... (each segment [2k, 2k+1] -> (4k + 1) // 2 = 2k)
    assert (red * 255).tolist() == pytest.approx([5.0 * 2 * k for k in range(16)], abs=1e-3)


def test_umt_large_has_the_checkpoint_names_and_size():
    with torch.device("meta"):
        model = UMT_L16()
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == 306_695_568
    assert params["pos_embed"].shape == (1, 16 * 196, 1024) and params["head.weight"].shape == (400, 1024)
    assert {"blocks.23.attn.q_bias", "blocks.0.attn.v_bias", "fc_norm.weight"} <= set(params)
    assert "blocks.0.attn.qkv.bias" not in params  # k has no bias: q and v biases are separate parameters


def test_position_table_interpolates_the_eight_frame_grid():
    cfg = UMTConfig(patch_size=32, dim=8, frames=16)
    table = position_table(cfg).reshape(16, 49, 8)
    eight = position_table(UMTConfig(patch_size=32, dim=8, frames=8)).reshape(8, 49, 8)
    # linear, align_corners=False, 8 -> 16: output 2k+1 sits 3/4 of the way from input k to k+1
    assert torch.allclose(table[3], 0.75 * eight[1] + 0.25 * eight[2], atol=1e-6)
    assert torch.allclose(table[0], eight[0]) and torch.allclose(table[15], eight[7])


def test_human_action_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = UMTClassifier(TINY).eval()
    with torch.no_grad():  # random trunk, but a head that is sure of class 2 ("riding a bike") for any video
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([-9.0, -9.0, 9.0, -9.0, -9.0, -9.0]))
    torch.save(model.state_dict(), tmp_path / "umt.pth")
    (tmp_path / "k400.txt").write_text(LABELS)
    umt, record = load_umt(str(tmp_path / "umt.pth"))
    labels, _ = load_labels(str(tmp_path / "k400.txt"))
    assert umt.cfg == TINY and len(record.sha256) == 64
    videos = [VideoItem(str(write_lossless(moving_square(20, 48), tmp_path / f"A person is {a}-0.mp4")), a)
              for a in ("riding a bike", "swimming")]
    result = human_action(umt, labels, videos)
    assert [r["score"] for r in result.per_video] == [1.0, 0.0] and result.value == 0.5
    assert result.per_video[1]["confident"] == ["riding a bike"] and len(result.per_video[0]["top5"]) == 5
    with torch.no_grad():
        logits = umt(umt_clip(moving_square(20, 48))[None])
    assert logits.shape == (1, 6) and torch.isfinite(logits).all()


def test_loader_refuses_a_checkpoint_without_the_trunk(tmp_path):
    state = UMTClassifier(TINY).state_dict()
    del state["blocks.0.attn.q_bias"]
    torch.save({"model": state}, tmp_path / "wrapped.pth")  # wrapped checkpoints are unwrapped first
    with pytest.raises(ValueError, match=r"wrapped.pth: not a UMT classifier checkpoint: missing "
                                         r"\['blocks.0.attn.q_bias'\]"):
        load_umt(str(tmp_path / "wrapped.pth"))
