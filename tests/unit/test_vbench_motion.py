"""dynamic_degree and the static filter: VBench's rules on constructed flow scores, RAFT-things end to end."""
from __future__ import annotations

import pytest
import torch

from components.evaluation.vbench.dimensions_motion import (DynamicConfig, StaticConfig, dynamic_degree, flow_pairs,
                                                            is_dynamic, static_filter, static_verdict,
                                                            top_magnitude)
from components.evaluation.vbench.prompts import VideoItem
from models.raft import RAFT_models
from vbench_testing import moving_square, write_lossless


def test_top_magnitude_is_the_mean_of_the_largest_five_percent():
    flow = torch.zeros(1, 2, 10, 10)
    flow[0, 0, 0, :3] = 3.0  # three pixels move (3, 4): magnitude 5
    flow[0, 1, 0, :3] = 4.0
    flow[0, 0, 5, 5] = 1.0  # one pixel moves 1
    assert top_magnitude(flow, 0.05).tolist() == pytest.approx([(3 * 5 + 1) / 5])  # int(100 * 0.05) = 5 pixels
    assert top_magnitude(flow, 0.02).tolist() == pytest.approx([5.0])
    with pytest.raises(ValueError, match="no top 5% pixels"):
        top_magnitude(torch.zeros(1, 2, 3, 3), 0.05)


def test_dynamic_rule_thresholds_and_counts():
    cfg = DynamicConfig()
    # 16 frames at 256 px: threshold 6 px, round(4 * 16 / 16) = 4 pairs needed
    assert is_dynamic([7.0] * 4 + [0.0] * 11, 16, 256, 8.0, cfg)
    assert not is_dynamic([7.0] * 3 + [0.0] * 12, 16, 256, 8.0, cfg)
    assert not is_dynamic([6.0] * 15, 16, 256, 8.0, cfg)  # "exceed": 6 is not above 6
    # 512 px doubles the threshold; 8 frames need round(2) = 2 pairs
    assert not is_dynamic([11.0] * 7, 8, 512, 8.0, cfg) and is_dynamic([13.0, 13.0], 8, 512, 8.0, cfg)
    # 6 frames: round(1.5) = 2 (Python rounds half to even), 10 frames: round(2.5) = 2
    assert not is_dynamic([7.0], 6, 256, 8.0, cfg) and is_dynamic([7.0, 7.0], 10, 256, 8.0, cfg)
    low_fps = DynamicConfig(fps_factor=True)  # VBench's later rule: threshold x max(1, 8 / fps)
    assert is_dynamic([7.0] * 4, 16, 256, 4.0, cfg) and not is_dynamic([7.0] * 4, 16, 256, 4.0, low_fps)
    assert not is_dynamic([], 1, 256, 8.0, cfg)


def test_static_rule():
    cfg = StaticConfig()
    # 16 frames at 256 px: threshold 3 px, at most round(2) = 2 moving pairs, ends <= 3 * 2 * 2 = 12
    assert static_verdict([4.0, 4.0] + [0.0] * 13 + [12.0, 12.0], 16, 256, cfg)
    assert not static_verdict([4.0, 4.0, 4.0] + [0.0] * 12 + [0.0, 0.0], 16, 256, cfg)
    assert not static_verdict([0.0] * 15 + [12.5, 0.0], 16, 256, cfg)


@pytest.mark.slow  # RAFT-things on CPU: seconds per pair even at 128 px
def test_dynamic_degree_and_static_filter_run_on_raft_things(tmp_path):
    torch.manual_seed(0)
    raft = RAFT_models["things"]().eval()
    frames = moving_square(3, 60, step=5)
    # padded to multiples of 8 (RAFT's InputPadder); scored over that padded field as VBench does
    assert flow_pairs(raft, frames[:, :, :58], [(0, 1)], iters=1, batch=1).shape == (1, 2, 64, 64)
    path = write_lossless(frames, tmp_path / "a square moving-0.mp4", fps=16)
    item = VideoItem(str(path), "a square moving")
    result = dynamic_degree(raft, [item], DynamicConfig(iters=1))
    record = result.per_video[0]
    assert record["frame_step"] == 2 and len(record["pair_scores"]) == 1  # fps 16: every 2nd frame, 2 frames
    assert result.value in (0.0, 1.0) and all(s >= 0 for s in record["pair_scores"])
    kept, verdicts = static_filter(raft, [item], StaticConfig(iters=1, keep=1))
    assert list(verdicts) == [str(path)] and kept == ([item] if verdicts[str(path)] else [])
