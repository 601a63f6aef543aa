"""temporal_flickering on constructed videos, against values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from components.evaluation.vbench.dimensions_pixel import flicker_score, temporal_flickering
from components.evaluation.vbench.prompts import VideoItem
from vbench_testing import flat_video, write_lossless


def test_flicker_score_closed_forms():
    # grey 10 -> 13 -> 7: MAEs 3 and 6, mean 4.5 -> (255 - 4.5) / 255
    assert flicker_score(flat_video([10, 13, 7])) == pytest.approx(250.5 / 255)
    half = np.zeros((2, 4, 4, 3), np.uint8)
    half[1, :2] = 255  # half the pixels jump by 255: MAE 127.5
    assert flicker_score(half) == pytest.approx(0.5)
    assert flicker_score(flat_video([42] * 4)) == 1.0


def test_single_frame_is_an_error_naming_the_video():
    with pytest.raises(ValueError, match="v.mp4: temporal_flickering needs >= 2 frames"):
        flicker_score(flat_video([1]), "v.mp4")


def test_dimension_is_the_mean_over_video_files(tmp_path):
    a = write_lossless(flat_video([10, 13, 7]), tmp_path / "a-0.mp4")  # 250.5 / 255
    b = write_lossless(flat_video([0, 51, 0, 51]), tmp_path / "b-0.mp4")  # MAE 51 each -> 204 / 255
    result = temporal_flickering([VideoItem(str(a), "a"), VideoItem(str(b), "b")])
    assert [r["score"] for r in result.per_video] == pytest.approx([250.5 / 255, 204 / 255])
    assert result.value == pytest.approx((250.5 + 204) / 2 / 255)
    assert result.record()["videos"] == 2 and result.record()["frames"] == "all frames"
