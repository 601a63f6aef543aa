"""One decoding pass over a video that feeds every split detector: PySceneDetect, fades and xGen motion.

Frames go straight from PyAV into the detectors (PySceneDetect's own SceneDetector API), so a video is
decoded once, URIs work like local paths, and only thumbnails stay in memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, SceneDetector
from scenedetect.scene_manager import compute_downscale_factor

from components.curation.frames import iter_frames, resize_short
from components.curation.motion import pair_score
from components.curation.split_config import SplitConfig


@dataclass
class Scan:
    """What one decoding pass found: frame count, PySceneDetect cuts, fade thumbnails, motion per pair."""

    num_frames: int
    cuts: list[int]
    thumbs: dict[int, np.ndarray]  # short side -> (T, h, w, 3) uint8 thumbnails for the fade detector
    motion: np.ndarray  # (T - 1,) xGen motion-mask fraction of each consecutive pair (empty without reclip)
    pans: np.ndarray  # (T, H, W) uint8 grayscale, short side PanConfig.short_side (camera-motion check)


def make_detector(cfg: SplitConfig) -> SceneDetector:
    """The configured PySceneDetect detector."""
    if cfg.detector == "adaptive":
        return AdaptiveDetector(adaptive_threshold=cfg.adaptive_threshold, min_scene_len=cfg.min_scene_len,
                                window_width=cfg.adaptive_window, min_content_val=cfg.min_content_val)
    return ContentDetector(threshold=cfg.content_threshold, min_scene_len=cfg.min_scene_len)


def scan(path: str, fps: float, cfg: SplitConfig) -> Scan:
    """Decode the video once: run the cut detector, keep fade thumbnails, score motion per pair (each only
    when the config uses it)."""
    det = make_detector(cfg)
    rate = float(fps)
    thumbs: dict[int, list[np.ndarray]] = {}
    pans, scores, cuts = [], [], []
    previous, downscale, index = None, None, -1
    for index, bgr in enumerate(iter_frames(path, format="bgr24")):
        if downscale is None:  # as SceneManager does: detectors see frames about 256 px wide
            downscale = compute_downscale_factor(max(bgr.shape[:2]))
        small = bgr if downscale <= 1 else cv2.resize(
            bgr, (max(1, round(bgr.shape[1] / downscale)), max(1, round(bgr.shape[0] / downscale))))
        cuts += [c.frame_num for c in det.process_frame(FrameTimecode(index, rate), small)]
        if cfg.fades:
            for side in cfg.fade.short_sides:
                thumbs.setdefault(side, []).append(resize_short(bgr, side))
        if cfg.reclip or cfg.pan_check:
            gray = cv2.cvtColor(resize_short(bgr, cfg.motion_short_side), cv2.COLOR_BGR2GRAY)
            pans.append(resize_short(gray, cfg.pan.short_side))
            if previous is not None and cfg.reclip:
                scores.append(pair_score(previous, gray, cfg.motion))
            previous = gray
    if index < 0:
        raise ValueError(f"{path}: no video frames decoded")
    cuts += [c.frame_num for c in det.post_process(FrameTimecode(index, rate))]
    return Scan(num_frames=index + 1, cuts=sorted({c for c in cuts if 0 < c <= index}),
                thumbs={side: np.stack(t) for side, t in thumbs.items()}, motion=np.array(scores, np.float64),
                pans=np.stack(pans) if pans else np.zeros((0, 1, 1), np.uint8))
