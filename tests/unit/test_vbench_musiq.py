"""imaging_quality: MUSIQ's multi-scale patches, VBench's 'longer' resize, and MUSIQ (real architecture) end to end."""
from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from components.evaluation.vbench.compute import compute
from components.evaluation.vbench.dimensions_musiq import imaging_quality, longer_size, musiq_frames
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.loaders_musiq import load_musiq
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.weights import Located
from models.vbench.musiq import MUSIQ, MUSIQ_SPAQ, MusiqConfig
from models.vbench.musiq_patches import hashed_positions, multiscale_patches
from vbench_testing import moving_square, write_lossless

TINY = MusiqConfig(hidden=64, mlp_dim=128, heads=1, layers=2)  # patch 32, scales 224/384 + original: VBench's input


def tiny_musiq(seed: int = 0, cfg: MusiqConfig = TINY) -> MUSIQ:
    """Random trunk; a head scaled so frame scores sit near 50 on SPAQ's 0-100 scale."""
    torch.manual_seed(seed)
    model = MUSIQ(cfg).eval()
    with torch.no_grad():
        model.head.weight.mul_(0.1)
        model.head.bias.fill_(50.0)
    return model


def test_full_size_has_the_spaq_checkpoint_names_and_size():
    with torch.device("meta"):
        model = MUSIQ_SPAQ()
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == 27_125_825  # MUSIQ's 27M
    assert params["conv_root.weight"].shape == (64, 3, 7, 7) and params["block1.conv_proj.weight"].shape == (
        256, 64, 1, 1)
    assert params["embedding.weight"].shape == (384, 16384)  # 256 channels x 8 x 8 root features per 32 px patch
    assert params["transformer_encoder.posembed_input.position_emb"].shape == (1, 100, 384)
    assert params["transformer_encoder.scaleembed_input.scale_emb"].shape == (3, 384)
    assert params["transformer_encoder.transformer.encoderblock_13.attention.query.weight"].shape == (384, 384)
    assert params["transformer_encoder.transformer.encoderblock_0.mlp.fc1.weight"].shape == (1152, 384)
    assert params["head.weight"].shape == (1, 384) and "transformer_encoder.cls" in params
    assert "transformer_encoder.transformer.encoderblock_14.norm1.weight" not in params


def test_hashed_positions_are_nearest_grid_cells():
    # 4 x 7 patches on the 10 x 10 table: rows floor(10 i / 4), columns floor(10 j / 7)
    pos = hashed_positions(10, 4, 7).reshape(4, 7)
    assert pos[0].tolist() == [0, 1, 2, 4, 5, 7, 8]
    assert pos[:, 0].tolist() == [0, 20, 50, 70] and pos[3, 6] == 78
    # more columns than cells: neighbours share a cell
    assert hashed_positions(10, 1, 16).tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9]


def test_multiscale_sequence_layout_and_same_padding():
    image = torch.rand(2, 3, 100, 150)
    t = multiscale_patches(image, 32, 10, (384, 224), -1)  # scales are sorted: 224 first
    # 224: 149x224 -> 5x7 of 49; 384: 256x384 -> 8x12 of 144; original 100x150 -> 4x5, all kept
    assert t.pixels.shape == (2, 49 + 144 + 20, 3 * 32 * 32)
    assert t.mask[0].tolist() == [True] * 35 + [False] * 14 + [True] * 96 + [False] * 48 + [True] * 20
    assert t.scales[0, :35].unique().tolist() == [0] and t.scales[0, 49:145].unique().tolist() == [1]
    assert t.scales[0, 193:].unique().tolist() == [2] and t.scales[0, 35:49].unique().tolist() == [0]
    assert t.positions[0, 193:].tolist() == (torch.tensor([0, 2, 5, 7])[:, None] * 10 +
                                             torch.tensor([0, 2, 4, 6, 8])).reshape(-1).tolist()
    # TF 'SAME': 28 rows of zeros split 14 / 14, 10 columns 5 / 5; patches flattened (c, y, x) like unfold
    first = t.pixels[1, 193].reshape(3, 32, 32)
    assert torch.equal(first[:, 14:, 5:], image[1, :, :18, :27]) and first[:, :14].abs().sum() == 0
    assert t.pixels[0, 35:49].abs().sum() == 0  # padding tokens are zeros


def test_padding_tokens_do_not_change_the_score():
    model = tiny_musiq()
    padded = MUSIQ(replace(TINY, original_max_len=64)).eval()  # the 4x5 original grid padded to 64 tokens
    padded.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 100, 150)
    with torch.no_grad():
        a, b = model(x), padded(x)
    assert a.shape == (2,) and torch.allclose(a, b, atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(model(x[1:]), a[1:], atol=1e-4)  # frames in a batch are scored independently


def test_distribution_head_gives_the_expected_class():
    model = MUSIQ(replace(TINY, classes=10, layers=1)).eval()
    with torch.no_grad():  # pyiqa's dist_to_mos: sum_k k p_k with 1-based classes; all mass on class index 6
        model.head[0].weight.zero_()
        model.head[0].bias.copy_(torch.tensor([-50.0] * 6 + [50.0] + [-50.0] * 3))
        assert model(torch.rand(1, 3, 40, 40)).tolist() == pytest.approx([7.0])


def test_longer_resize_follows_vbench():
    assert longer_size(600, 1000) == (307, 512) and longer_size(1080, 1920) == (288, 512)
    assert longer_size(512, 300) == (512, 300)  # only long sides above 512 shrink
    frames = np.zeros((2, 96, 640, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(640) * 2 % 256).astype(np.uint8)  # red = 2 x column (first 128 columns)
    frames[1, :, :, 1] = 204
    x = musiq_frames(frames)
    assert x.shape == (2, 3, 76, 512)  # int(0.8 * 96) = 76
    # bilinear 640 -> 512 (align_corners False): output column 1 samples 1.375 = 0.625 col 1 + 0.375 col 2
    assert float(x[0, 0, 10, 1]) == pytest.approx((0.625 * 2 + 0.375 * 4) / 255)  # 2.75 / 255: not rounded
    assert torch.allclose(x[1, 1], torch.tensor(0.8)) and x[0, 1].abs().max() == 0
    with pytest.raises(ValueError, match="uint8 frames"):
        musiq_frames(frames.astype(np.float32))


def test_loader_round_trip_and_end_to_end(tmp_path):
    model = tiny_musiq()
    torch.save(model.state_dict(), tmp_path / "musiq_spaq.pth")
    musiq, record = load_musiq(str(tmp_path / "musiq_spaq.pth"))
    assert musiq.cfg == TINY and not musiq.training
    assert record.sha256 == hashlib.sha256((tmp_path / "musiq_spaq.pth").read_bytes()).hexdigest()
    wide = np.ascontiguousarray(np.tile(moving_square(2, 96, seed=1), (1, 1, 7, 1))[:, :, :640])  # 96x640
    videos = [VideoItem(str(write_lossless(wide, tmp_path / "a wide shot-0.mp4")), "a wide shot"),
              VideoItem(str(write_lossless(moving_square(3, 48), tmp_path / "a square-0.mp4")), "a square")]
    result = imaging_quality(musiq, videos, batch=2)
    first, second = result.per_video
    assert (first["frames"], first["size"], second["frames"], second["size"]) == (2, [76, 512], 3, [48, 48])
    with torch.no_grad():
        direct = model(musiq_frames(moving_square(3, 48))) / 100
    assert second["score"] == pytest.approx(float(direct.mean()), abs=1e-5)
    assert second["frame_scores"] == pytest.approx((direct * 100).tolist(), abs=1e-3)
    assert result.value == pytest.approx((first["score"] + second["score"]) / 2)
    assert 0.3 < result.value < 0.7 and all(0.3 < r["score"] < 0.7 for r in result.per_video)
    assert first["score"] == pytest.approx(first["musiq"] / 100)


def test_stage_dispatch_loads_the_file_and_records_it(tmp_path):
    torch.save(tiny_musiq(seed=1).state_dict(), tmp_path / "musiq_spaq.pth")
    video = write_lossless(moving_square(2, 32), tmp_path / "a square-0.mp4")
    hub = ModelHub({"musiq-spaq": Located("musiq-spaq", str(tmp_path / "musiq_spaq.pth"), True)})
    outcome = compute(["imaging_quality"], lambda dim: [VideoItem(str(video), "a square")], hub)
    result = outcome.results["imaging_quality"]
    with torch.no_grad():
        direct = tiny_musiq(seed=1)(musiq_frames(moving_square(2, 32))).mean() / 100
    assert result.value == pytest.approx(float(direct), abs=1e-6) and len(result.per_video) == 1
    sha = hashlib.sha256((tmp_path / "musiq_spaq.pth").read_bytes()).hexdigest()
    assert result.settings["weights"] == [{"name": "musiq-spaq", "file": str(tmp_path / "musiq_spaq.pth"),
                                           "sha256": sha}]


def test_loader_names_the_file_of_a_wrong_checkpoint(tmp_path):
    state = tiny_musiq().state_dict()
    del state["block1.gn_proj.bias"]
    torch.save({"params": state}, tmp_path / "wrapped.pth")  # pyiqa training checkpoints nest under "params"
    with pytest.raises(ValueError, match=r"wrapped.pth: not a MUSIQ checkpoint: missing \['block1.gn_proj.bias'\]"):
        load_musiq(str(tmp_path / "wrapped.pth"))
    torch.save({"cls_token": torch.zeros(1, 1, 8)}, tmp_path / "dino.pth")
    with pytest.raises(ValueError, match="dino.pth: not a MUSIQ checkpoint \\(no embedding.weight\\)"):
        load_musiq(str(tmp_path / "dino.pth"))
