"""VBench frame sampling ("16 frames" = middle of 16 segments) and CLIP / DINO preprocessing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from components.evaluation.vbench.frames import (CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, clip_pil,
                                                 clip_tensor, dino_tensor, middle_indices, read_video, resized_size)
from vbench_testing import write_lossless


def test_sixteen_frames_are_segment_middles():
    # segments of 100 frames: edges int(linspace(0, 100, 17)) = 0, 6, 12, 18, 25, ...; middle = (a + b - 1) // 2
    assert middle_indices(16, 100) == [2, 8, 14, 21, 27, 33, 39, 46, 52, 58, 64, 71, 77, 83, 89, 96]
    assert middle_indices(8, 16) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert middle_indices(1, 17) == [8]


def test_short_videos_are_padded_with_the_last_index():
    assert middle_indices(16, 5) == [0, 1, 2, 3, 4] + [4] * 11
    with pytest.raises(ValueError, match="vlen >= 1"):
        middle_indices(16, 0)


def test_resize_keeps_the_short_side_and_truncates_the_long_one():
    assert resized_size(480, 854, 224) == (224, 398)  # 224 * 854 / 480 = 398.53
    assert resized_size(1080, 720, 224) == (336, 224)
    assert resized_size(64, 64, 224) == (224, 224)


def test_clip_of_a_flat_frame_is_the_normalised_grey():
    frames = np.full((2, 48, 80, 3), 100, np.uint8)
    x = clip_tensor(frames)
    assert x.shape == (2, 3, 224, 224)
    want = (torch.tensor([100 / 255.0] * 3) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), want, atol=1e-5) and float(x.std(dim=(2, 3)).max()) < 1e-4


def test_clip_centre_crop_offsets_follow_torchvision():
    ramp = np.tile(np.arange(300, dtype=np.int64)[None, :, None] % 256, (224, 1, 3)).astype(np.uint8)
    x = clip_tensor(ramp[None])  # short side already 224: no resize, crop left = round(76 / 2) = 38
    col0 = float(x[0, 0, 0, 0]) * CLIP_STD[0] + CLIP_MEAN[0]
    assert col0 * 255 == pytest.approx(38, abs=1e-3)
    odd = np.tile(np.arange(225, dtype=np.uint8)[None, :, None], (224, 1, 3))
    first = float(clip_tensor(odd[None])[0, 0, 0, 0]) * CLIP_STD[0] + CLIP_MEAN[0]
    assert first * 255 == pytest.approx(0, abs=1e-3)  # round(0.5) = 0 (Python rounds half to even)


def test_dino_resizes_the_short_side_without_crop():
    frames = np.full((3, 64, 96, 3), 200, np.uint8)
    x = dino_tensor(frames)
    assert x.shape == (3, 3, 224, 336)
    want = (torch.tensor([200 / 255.0] * 3) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[0, :, 100, 100], want, atol=1e-5)


def test_clip_pil_matches_the_tensor_path_on_flat_frames():
    frames = np.full((1, 40, 60, 3), 30, np.uint8)
    assert clip_pil(frames).shape == (1, 3, 224, 224)
    assert torch.allclose(clip_pil(frames), clip_tensor(frames), atol=1e-5)


def test_read_video_returns_every_frame_and_the_rate(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 24, 3), dtype=np.uint8)
    video = read_video(str(write_lossless(frames, tmp_path / "a-0.mp4", fps=24)))
    assert video.fps == 24.0 and np.array_equal(video.frames, frames)
