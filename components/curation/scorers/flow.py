"""Optical flow magnitude (`flow`) and camera motion (`cmotion`) of a clip, from a few frame pairs.

flow: mean optical-flow magnitude over the whole frame, in pixels per frame at a reference short side of 256
(flow measured on frames whose short side is s, between frames `gap` apart, is multiplied by 256 / s / gap), so
clips of any resolution compare, and a frame rate change shows up as the per-frame motion it really is.
VBench's dynamic-degree threshold uses the same 256 reference (6·min(H, W)/256). `pairs` pairs spread over the
clip, each two frames `pair_seconds` apart rounded to whole frames; the default 0 means consecutive frames: the
smallest displacement, so repetitive texture cannot alias (on the synthetic corpus a 2-frame gap at 12 fps moved
a checkerboard more than half its period and read as a tilt the wrong way). VBench's 8 fps is pair_seconds=0.125.
cmotion: the dominant motion of each pair (camera.fit_camera), per frame at the reference size, median over the
pairs, classified by camera.classify_camera.
Flow comes from RAFT (raft-things, when the weights store has it) or OpenCV's Farneback (the offline stand-in);
provenance() says which.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.curation.scorer import ClipFrames
from components.curation.scorers.camera import CameraConfig, classify_camera, fit_camera
from components.hashing import exists
from components.weights import require


class FarnebackConfig(BaseModel):
    """cv2.calcOpticalFlowFarneback parameters (OpenCV's documented defaults for video, 3 pyramid levels)."""

    model_config = ConfigDict(extra="forbid")
    pyr_scale: float = Field(0.5, gt=0, lt=1)
    levels: int = Field(3, ge=1)
    winsize: int = Field(15, ge=3)
    iterations: int = Field(3, ge=1)
    poly_n: int = Field(5, ge=5, le=7)
    poly_sigma: float = Field(1.2, gt=0)


class FlowConfig(BaseModel):
    """Which flow method, which frame pairs at what size, the reference size for normalisation, camera rules."""

    model_config = ConfigDict(extra="forbid")
    # auto: RAFT when the weights store has raft-things, else Farneback; raft: the weights must be there
    method: Literal["auto", "raft", "farneback"] = "auto"
    short_side: int = Field(96, ge=16)  # Farneback scores frames at this short side (never upscaled)
    raft_short_side: int = Field(256, ge=16)  # RAFT's (it needs >= 128; smaller sources are padded)
    pairs: int = Field(4, ge=1)  # frame pairs per clip, spread evenly over it
    pair_seconds: float = Field(0.0, ge=0)  # time between the two frames of a pair, in whole frames (>= 1)
    reference_short_side: int = Field(256, ge=1)  # flow is reported in px/frame at this short side
    farneback: FarnebackConfig = FarnebackConfig()
    camera: CameraConfig = CameraConfig()
    raft_weights: str = "raft-things"  # name in the weights list
    raft_path: str | None = None  # an explicit checkpoint path (skips the weights list)
    weights_profile: str = "full"  # the profile whose weights.yaml lists raft_weights
    raft_iters: int = Field(12, ge=1)
    device: str = "cpu"


def find_raft_weights(cfg: FlowConfig, required: bool) -> str | None:
    """The checkpoint the config points at (raft_path, else raft_weights in the weights list), or None.

    With required=False a missing or unlisted file means "use Farneback"; with required=True it is an error that
    names the file.
    """
    if cfg.raft_path:
        if exists(cfg.raft_path):
            return cfg.raft_path
        if required:
            raise FileNotFoundError(f"{cfg.raft_path}: RAFT checkpoint not found (flow option raft_path)")
        return None
    try:
        return require(cfg.weights_profile, [cfg.raft_weights])[cfg.raft_weights]
    except FileNotFoundError:
        if required:
            raise
        return None


def farneback_flow(first: np.ndarray, second: np.ndarray, cfg: FarnebackConfig) -> np.ndarray:
    """Dense flow (H, W, 2) from uint8 grey `first` to `second`: first(x) ≈ second(x + flow(x))."""
    return cv2.calcOpticalFlowFarneback(first, second, None, cfg.pyr_scale, cfg.levels, cfg.winsize,
                                        cfg.iterations, cfg.poly_n, cfg.poly_sigma, 0)


def frame_pairs(indices: list[int], fps: float, pairs: int, pair_seconds: float) -> list[tuple[int, int]]:
    """Positions (i, j) into the clip's frames: `pairs` evenly spread pairs about pair_seconds apart."""
    n = len(indices)
    if n < 2:
        return []
    stride = min(max(1, int(round(fps * pair_seconds))), n - 1)
    starts = np.unique(np.round(np.linspace(0, n - 1 - stride, pairs)).astype(int))
    return [(int(i), int(i) + stride) for i in starts]


class FlowScorer:
    """flow (px/frame at the reference short side) and cmotion (one of camera.CAMERA_CLASSES) per clip."""

    name = "flow"
    columns = ("flow", "cmotion")
    num_frames = 0  # every frame: pairs are picked by time, not by sample count

    def __init__(self, cfg: FlowConfig | None = None):
        self.cfg = cfg or FlowConfig()
        self.short_side = self.cfg.short_side
        self.raft = None
        if self.cfg.method != "farneback":
            path = find_raft_weights(self.cfg, required=self.cfg.method == "raft")
            if path is not None:
                from components.curation.scorers.raft_flow import RaftFlow  # torch only when RAFT runs

                self.raft = RaftFlow(path, self.cfg.raft_iters, self.cfg.device)
                self.short_side = self.cfg.raft_short_side

    def provenance(self) -> dict[str, str]:
        if self.raft is not None:
            return {"scorer": self.name, "method": f"RAFT ({self.raft.variant}, {self.cfg.raft_iters} iters)",
                    "weights": self.raft.weights_id, "version": "1"}
        return {"scorer": self.name, "method": "farneback (offline stand-in for RAFT)", "weights": "none",
                "version": "1"}

    def pair_flows(self, frames: np.ndarray, pairs: list[tuple[int, int]]) -> list[np.ndarray]:
        """Flow fields (H, W, 2) in pixels of `frames`, one per pair."""
        if self.raft is not None:
            return self.raft.flows(frames, pairs)
        grey = {k: cv2.cvtColor(frames[k], cv2.COLOR_RGB2GRAY) for pair in pairs for k in pair}
        return [farneback_flow(grey[i], grey[j], self.cfg.farneback) for i, j in pairs]

    def score_clip(self, clip: ClipFrames) -> dict[str, float | str]:
        """Columns for one clip; a clip of one frame has no motion: flow 0, static."""
        cfg = self.cfg
        pairs = frame_pairs(clip.indices, clip.fps, cfg.pairs, cfg.pair_seconds)
        if not pairs:
            return {"flow": 0.0, "cmotion": "static"}
        h, w = clip.frames.shape[1:3]
        to_reference = cfg.reference_short_side / min(h, w)
        magnitudes, moves = [], []
        for (i, j), flow in zip(pairs, self.pair_flows(clip.frames, pairs)):
            per_frame = to_reference / (clip.indices[j] - clip.indices[i])
            magnitudes.append(float(np.linalg.norm(flow, axis=2).mean()) * per_frame)
            fit = fit_camera(flow, cfg.camera)
            if fit.inlier_frac < cfg.camera.min_inlier_frac:
                moves.append((0.0, 0.0, 0.0))  # no consensus motion: the camera is not what moves
            else:
                moves.append((fit.dx * per_frame, fit.dy * per_frame, fit.corner_zoom(h, w) * per_frame))
        dx, dy, zoom = np.median(np.array(moves), axis=0)
        return {"flow": float(np.mean(magnitudes)),
                "cmotion": classify_camera(float(dx), float(dy), float(zoom), cfg.camera)}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        return [self.score_clip(clip) for clip in batch]
