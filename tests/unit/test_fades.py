"""Fade detection on constructed frames: exact extents of cross and black fades, no fade at cuts or in motion;
the camera-motion check that tells a pan from a cross-fade."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from components.curation.fades import Fade, FadeConfig, detect_fades, max_span
from components.curation.frames import resize_short
from components.curation.pans import PanConfig, is_camera_motion, shifted_difference

H, W, FPS = 48, 64, 24.0
CFG = FadeConfig()


def shot(background: tuple[int, int, int], colour: tuple[int, int, int], x0: float, speed: float,
         t: int) -> np.ndarray:
    """A plain background with a square moving right `speed` pixels per frame."""
    frame = np.empty((H, W, 3), np.uint8)
    frame[:] = background
    x = int(round(x0 + speed * t)) % W
    frame[16:32, x:x + 16] = colour
    return frame


def shot_a(t: int) -> np.ndarray:
    return shot((30, 40, 120), (240, 200, 30), 4, 1.5, t)


def shot_b(t: int) -> np.ndarray:
    return shot((120, 70, 30), (30, 200, 220), 30, -1.0, t)


def blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return (a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w).round().astype(np.uint8)


def video(boundary: int, length: int, style: str, n: int = 40) -> np.ndarray:
    """Frames of shot A then shot B; a fade of `length` frames starting at boundary - length // 2 (synth's rule)."""
    first = boundary - length // 2
    frames = []
    for t in range(n):
        a, b = shot_a(t), shot_b(t)
        if t < first:
            frames.append(a)
        elif t >= first + length:
            frames.append(b)
        else:
            p = (t - first + 0.5) / length
            if style == "cross":
                frames.append(blend(a, b, p))
            else:  # through black: fade out, then in
                frames.append(blend(a, np.zeros_like(a), 2 * p) if p < 0.5 else blend(np.zeros_like(b), b, 2 * p - 1))
    return np.stack(frames)


def thumbs(frames: np.ndarray) -> np.ndarray:
    return np.stack([resize_short(f, CFG.short_sides[0]) for f in frames])


@pytest.mark.parametrize("style", ["cross", "black"])
@pytest.mark.parametrize("length", [2, 5, 8])
def test_fade_found_with_its_exact_blended_frames(style, length):
    fades = detect_fades(thumbs(video(20, length, style)), FPS, CFG)
    assert len(fades) == 1, fades
    fade = fades[0]
    first = 20 - length // 2
    assert (fade.first, fade.end, fade.style) == (first, first + length, style)
    assert abs(fade.frame - 20) <= 1, fade  # the middle of the blended frames


def test_a_cut_is_not_a_fade():
    assert detect_fades(thumbs(video(20, 0, "cross")), FPS, CFG) == []


def test_motion_inside_a_shot_is_not_a_fade():
    moving = np.stack([shot_a(t) for t in range(40)])
    still = np.stack([shot_a(0)] * 40)
    assert detect_fades(thumbs(moving), FPS, CFG) == []
    assert detect_fades(thumbs(still), FPS, CFG) == []


def test_two_fades_in_one_video_are_kept_apart():
    first = video(14, 4, "black")[:26]
    second = video(12, 6, "cross")[6:]  # B again, then a fade back towards A's look at 14 + 26 - 6 = 34
    frames = np.concatenate([first, second[::-1]])
    fades = detect_fades(thumbs(frames), FPS, CFG)
    assert [f.style for f in fades] == ["black", "cross"], fades
    assert fades[0].first == 12 and fades[0].end == 16


def test_fades_longer_than_the_window_are_not_reported_as_fades():
    # max_seconds caps the window: a 2 s dissolve is a slow change of content, beyond what is searched
    cfg = FadeConfig(max_seconds=0.2)
    assert max_span(FPS, cfg) == 6
    assert [f for f in detect_fades(thumbs(video(20, 16, "cross")), FPS, cfg) if f.end - f.first >= 16] == []


def test_too_short_videos_have_no_fades():
    assert detect_fades(thumbs(video(1, 0, "cross", n=2)), FPS, CFG) == []


def test_fade_record_is_plain_data():
    assert Fade(first=3, end=5, frame=4, style="cross", score=1.0).end == 5


def texture(seed: int, size: tuple[int, int] = (96, 160)) -> np.ndarray:
    coarse = np.random.default_rng(seed).random((size[0] // 8, size[1] // 8)).astype(np.float32)
    return (cv2.resize(coarse, size[::-1], interpolation=cv2.INTER_CUBIC).clip(0, 1) * 160 + 50).astype(np.uint8)


def test_shifted_difference_finds_a_pure_shift():
    canvas = texture(1)
    before, after = canvas[10:42, 20:76], canvas[13:45, 18:74]  # the window moved 3 down, 2 left
    plain, best = shifted_difference(before, after, 4)
    assert plain > 10 and best == pytest.approx(0.0)


def test_pan_is_camera_motion_but_a_fade_between_shots_is_not():
    canvas, other = texture(1), texture(2)
    cfg = PanConfig()
    pan = np.stack([canvas[16:48, 20 + 3 * t:76 + 3 * t] for t in range(5)])  # 32 x 56 window panning right
    assert is_camera_motion(pan, 0, 2, cfg)  # 6 px: within the 8 px searched at a 32 px short side
    assert not is_camera_motion(pan, 0, 4, cfg)  # 12 px: beyond it
    fade = np.stack([pan[0], other[16:48, 20:76]])
    assert not is_camera_motion(fade, 0, 1, cfg)


def test_chunked_passes_find_the_same_fades(monkeypatch):
    frames = np.concatenate([video(20, 6, "cross"), video(14, 4, "black")])
    whole = detect_fades(thumbs(frames), FPS, CFG)
    monkeypatch.setattr("components.curation.fades._CHUNK", 7)
    assert [(f.first, f.end) for f in whole] == [(17, 23), (52, 56)]  # the join at frame 40 is a cut, no fade
    assert detect_fades(thumbs(frames), FPS, CFG) == whole
