"""xGen frame-difference motion: mask areas on constructed frames, clip scores, and the peak re-clip rule."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from components.curation.motion import MotionConfig, motion_mask, motion_score, motion_series, reclip_at_peak

CFG = MotionConfig()


def square_frame(x: int, y: int = 20, side: int = 20, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    frame = np.full(size, 60, np.uint8)
    frame[y:y + side, x:x + side] = 200
    return frame


def test_static_pair_scores_zero():
    frame = square_frame(30)
    assert motion_mask(frame, frame.copy(), CFG).sum() == 0
    assert motion_series(np.stack([frame] * 5), CFG).tolist() == [0.0] * 4
    assert motion_score(np.stack([frame] * 5), CFG) == 0.0


def test_changes_below_threshold_are_not_motion():
    rng = np.random.default_rng(0)
    frame = square_frame(30)
    noisy = np.clip(frame.astype(int) + rng.integers(-CFG.diff_threshold, CFG.diff_threshold + 1, frame.shape),
                    0, 255).astype(np.uint8)
    assert motion_mask(frame, noisy, CFG).sum() == 0


@pytest.mark.parametrize("shift", [4, 6, 8])
def test_moving_square_mask_is_its_swept_area(shift):
    # a side-s square moved d < s pixels sideways changes two s x d strips: the area it left and entered
    side = 20
    mask = motion_mask(square_frame(30), square_frame(30 + shift), CFG)
    swept = 2 * side * shift
    assert abs(int(mask.sum()) - swept) <= 0.1 * swept, (int(mask.sum()), swept)
    # the mask sits where the square was or is, nowhere else
    ys, xs = np.nonzero(mask)
    assert ys.min() >= 20 - 1 and ys.max() <= 20 + side and xs.min() >= 30 - 1 and xs.max() <= 30 + side + shift


def test_jumping_square_mask_is_both_squares():
    side = 20
    mask = motion_mask(square_frame(10), square_frame(60), CFG)
    assert abs(int(mask.sum()) - 2 * side * side) <= 0.05 * 2 * side * side, int(mask.sum())


def test_median_blur_removes_isolated_pixels():
    frame = square_frame(30)
    speckled = frame.copy()
    speckled[5, 5] = speckled[50, 80] = 255  # single flipped pixels: compression noise, not motion
    assert motion_mask(frame, speckled, CFG).sum() == 0


def test_series_and_score_of_a_moving_square():
    frames = np.stack([square_frame(10 + 5 * t) for t in range(6)])
    series = motion_series(frames, CFG)
    area = 64 * 96
    assert series.shape == (5,)
    assert np.allclose(series, 2 * 20 * 5 / area, rtol=0.1), series
    assert motion_score(frames, CFG) == pytest.approx(series.mean())
    assert motion_score(frames[:1], CFG) == 0.0


def test_series_rejects_colour_frames():
    with pytest.raises(ValueError, match=r"\(T, H, W\) grayscale"):
        motion_series(np.zeros((3, 8, 8, 3), np.uint8), CFG)


def test_reclip_splits_after_a_lone_peak():
    series = np.full(12, 0.05)
    series[6] = 0.95  # pair (6, 7): the second part starts at frame 7
    assert reclip_at_peak(series, CFG) == 7


def test_reclip_needs_a_high_peak():
    series = np.full(12, 0.02)
    series[6] = CFG.peak_threshold - 0.05  # towers over its neighbours but moves too little of the frame
    assert reclip_at_peak(series, CFG) is None


def test_reclip_needs_contrast_with_neighbours():
    series = np.full(12, 0.6)
    series[6] = 0.95  # a fast shot: the peak is high but so is everything around it (0.35 < 0.6 contrast)
    assert reclip_at_peak(series, CFG) is None


def test_reclip_at_the_edges_and_on_tiny_clips():
    series = np.array([0.9, 0.1, 0.1, 0.1])
    assert reclip_at_peak(series, CFG) == 1  # neighbours on one side only
    assert reclip_at_peak(np.array([0.99]), CFG) is None
    assert reclip_at_peak(np.array([]), CFG) is None


def test_config_rejects_even_kernels():
    with pytest.raises(ValidationError, match="kernel size must be odd, got 4"):
        MotionConfig(morph_kernel=4)
