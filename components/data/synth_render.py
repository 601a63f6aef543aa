"""Render planned shots into frames: moving shapes, camera pans, text, near-duplicate edits, degradations, fades."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from components.data.synth_config import SynthConfig
from components.data.synth_plan import ImagePlan, Scene, Shot, VideoPlan
from components.data.synth_shapes import CAMERAS, DIRECTIONS, background, crop_resize, degrade, draw_shape, \
    draw_text, shift

_PAN_MARGIN_S = 1.0  # extra background beyond the shot so fades that extend a shot still have canvas


class SceneRenderer:
    """Frames of one scene at a given size: frame(t) for any scene time t in seconds (shapes wrap around)."""

    def __init__(self, scene: Scene, width: int, height: int, seconds: float, cfg: SynthConfig):
        self.scene, self.width, self.height, self.cfg = scene, width, height, cfg
        self.size = scene.size * min(width, height)
        self.pad = (0, 0)
        if scene.camera:
            # the canvas extends past the frame by the farthest the camera travels, both ways
            dx, dy = CAMERAS[scene.camera]
            reach = cfg.camera_speed * (seconds + _PAN_MARGIN_S)
            self.pad = (math.ceil(abs(dx) * reach * width), math.ceil(abs(dy) * reach * height))
        self.canvas = background(scene.background, width + 2 * self.pad[0], height + 2 * self.pad[1], scene.seed)

    def _background(self, t: float) -> np.ndarray:
        if not self.scene.camera:
            return self.canvas.copy()
        dx, dy = CAMERAS[self.scene.camera]
        # the window moves the way the camera turns, so content drifts the opposite way on screen
        ox = self.pad[0] + int(round(dx * self.cfg.camera_speed * t * self.width))
        oy = self.pad[1] + int(round(dy * self.cfg.camera_speed * t * self.height))
        ox = min(max(ox, 0), 2 * self.pad[0])
        oy = min(max(oy, 0), 2 * self.pad[1])
        return self.canvas[oy:oy + self.height, ox:ox + self.width].copy()

    def position(self, t: float) -> tuple[float, float]:
        """Shape centre in pixels at time t; it leaves one edge and re-enters at the other."""
        s = self.scene
        cx, cy = s.x0 * self.width, s.y0 * self.height
        if s.direction is None:
            return cx, cy
        dx, dy = DIRECTIONS[s.direction]
        speed = self.cfg.speeds[s.speed]
        cx += dx * speed * self.width * t
        cy += dy * speed * self.height * t
        half = self.size / 2
        cx = (cx + half) % (self.width + self.size) - half
        cy = (cy + half) % (self.height + self.size) - half
        return cx, cy

    def frame(self, t: float) -> np.ndarray:
        img = self._background(t)
        cx, cy = self.position(t)
        draw_shape(img, self.scene.shape, self.scene.colour, cx, cy, self.size)
        if self.scene.text:
            draw_text(img, self.scene.text, self.cfg.text_height)
        return img


class ShotRenderer:
    """Frames of one shot of a video by absolute frame index, with its edit or degradation applied."""

    def __init__(self, shot: Shot, video: VideoPlan, cfg: SynthConfig):
        self.shot, self.fps, self.cfg = shot, video.fps, cfg
        seconds = shot.t0 + shot.length / video.fps
        self.scene = SceneRenderer(shot.scene, video.width, video.height, seconds, cfg)

    def frame(self, index: int) -> np.ndarray:
        shot, cfg = self.shot, self.cfg
        img = self.scene.frame(shot.t0 + (index - shot.start) / self.fps)
        if shot.duplicate_edit == "crop":
            img = crop_resize(img, cfg.duplicate_crop)
        elif shot.duplicate_edit == "shift":
            img = shift(img, cfg.duplicate_shift)
        if shot.degradation:
            strength = cfg.model_dump(include={"blur_sigma", "noise_std", "overexpose_gain", "overexpose_offset"})
            img = degrade(img, shot.degradation, strength, shot.scene.seed + index - shot.start)
        return img


def _blend(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    return (a.astype(np.float32) * (1 - alpha) + b.astype(np.float32) * alpha).round().astype(np.uint8)


def video_frames(video: VideoPlan, cfg: SynthConfig) -> Iterator[np.ndarray]:
    """Every frame of a planned video, in order, with cuts and fades at the planned frames."""
    renderers = [ShotRenderer(shot, video, cfg) for shot in video.shots]
    fades = {}  # frame index -> (shot index before the boundary, transition)
    for i, tr in enumerate(video.transitions):
        if tr.kind == "fade":
            for f in range(tr.first, tr.first + tr.length):
                fades[f] = (i, tr)
    current = 0
    for f in range(video.num_frames):
        while f >= video.shots[current].end:
            current += 1
        if f not in fades:
            yield renderers[current].frame(f)
            continue
        i, tr = fades[f]
        a, b = renderers[i].frame(f), renderers[i + 1].frame(f)
        p = (f - tr.first + 0.5) / tr.length  # progress through the fade, in (0, 1)
        if tr.style == "cross":
            yield _blend(a, b, p)
        elif p < 0.5:  # through black: first half fades out, second half fades in
            yield _blend(a, np.zeros_like(a), 2 * p)
        else:
            yield _blend(np.zeros_like(b), b, 2 * p - 1)


def image_pixels(image: ImagePlan, cfg: SynthConfig) -> np.ndarray:
    """The RGB pixels of a planned still image."""
    return SceneRenderer(image.scene, image.width, image.height, 0.0, cfg).frame(0.0)
