"""motion: xGen-VideoSyn-1's frame-difference motion score (components/curation/motion.py) as a clip scorer.

The score is the mean fraction of the frame whose motion mask is set, over every consecutive pair of the clip's
frames, at `short_side`; 0 = nothing moved, 1 = every pixel changed between every pair of frames.
channels="rgb" (default) runs the mask on the R, G and B planes and takes the largest fraction per pair: xGen's
grey difference misses subjects whose luma matches the background (a magenta shape on grey differs by 6 grey
levels, under any usable threshold). On the synthetic corpus (seeds 0-3, 257 moving shots) grey left 29 moving
shots at exactly 0, rgb 1 (a white shape on grey, over-exposed until both are white). channels="grey" is xGen.
STATIC_THRESHOLD is the default below which a clip counts as static (xGen drops those): 0.2% of the frame
changing per frame pair, the same number as tier_rules.RuleConfig.static_motion. Static synthetic shots score
exactly 0 (H.264 repeats unchanged blocks; blur and closing drop the odd flipped pixel), so the margin is for
real sensor noise; 6 of 257 moving shots (very slow subjects on gradients, an over-exposed white-on-grey
shape) score below it with rgb (tests/integration/test_motion_scorers.py measures and prints both rates).
"""
from __future__ import annotations

import cv2
import numpy as np
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.curation.motion import MotionConfig, motion_series
from components.curation.scorer import ClipFrames

STATIC_THRESHOLD = 0.002


class MotionScorerConfig(BaseModel):
    """The motion-mask parameters and the size frames are scored at."""

    model_config = ConfigDict(extra="forbid")
    short_side: int = Field(96, ge=16)  # same as the flow scorer, so curate.score decodes the frames once
    channels: Literal["rgb", "grey"] = "rgb"
    motion: MotionConfig = MotionConfig()


class MotionScorer:
    """Mean motion-mask fraction over consecutive frames (every frame of the clip)."""

    name = "motion"
    columns = ("motion",)
    num_frames = 0  # consecutive frames: the mask compares each frame with the one before

    def __init__(self, cfg: MotionScorerConfig | None = None):
        self.cfg = cfg or MotionScorerConfig()
        self.short_side = self.cfg.short_side

    def provenance(self) -> dict[str, str]:
        m = self.cfg.motion
        return {"scorer": self.name, "weights": "none", "version": "1",
                "method": f"xGen frame-difference mask on {self.cfg.channels} (diff > {m.diff_threshold}, "
                          f"median {m.blur_kernel}, close {m.morph_kernel}) at short side {self.short_side}"}

    def series(self, frames: np.ndarray) -> np.ndarray:
        """Moving fraction of each consecutive pair of (T, H, W, 3) uint8 RGB frames: shape (T - 1,)."""
        if self.cfg.channels == "grey":
            return motion_series(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]), self.cfg.motion)
        planes = [motion_series(np.ascontiguousarray(frames[..., c]), self.cfg.motion) for c in range(3)]
        return np.max(planes, axis=0)

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        out = []
        for clip in batch:
            series = self.series(clip.frames)
            out.append({"motion": float(series.mean()) if len(series) else 0.0})
        return out
