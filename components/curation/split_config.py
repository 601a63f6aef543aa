"""SplitConfig: every knob of curate.split (detector, fades, clip lengths, size cap, re-clipping, re-encoding)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import StageConfig
from components.curation.fades import FadeConfig
from components.curation.motion import MotionConfig
from components.curation.pans import PanConfig


class SplitConfig(StageConfig):
    """Scene split of every ingested video into clips (Open-Sora scene_cut, VidGen cascade, xGen re-clip)."""

    metadata: str = "data/ingest/metadata.parquet"  # relative to the workspace, or an fsspec URI
    # PySceneDetect, thresholds in its own units and lengths in FRAMES (our shots are 8-60 frames long)
    detector: Literal["adaptive", "content"] = "adaptive"
    adaptive_threshold: float = Field(3.0, gt=0)  # Open-Sora: AdaptiveDetector(adaptive_threshold=3.0)
    adaptive_window: int = Field(2, ge=1)  # frames averaged on each side of a candidate cut
    # the library default (15) misses cuts between dark or look-alike shots whose adaptive ratio is clear
    min_content_val: float = Field(7.0, ge=0)
    content_threshold: float = Field(27.0, gt=0)  # ContentDetector (detector: content)
    min_scene_len: int = Field(4, ge=1)  # frames between two cuts: below our shortest shot, above a flash
    # VidGen's cascade: a second detector for cross-fades and fades through black
    fades: bool = True
    fade: FadeConfig = FadeConfig()
    merge_frames: int = Field(2, ge=0)  # a cut this close to a fade is the same transition
    # a cut or cross-fade across which the frame merely shifted is a pan or tilt: dropped
    pan_check: bool = True
    pan: PanConfig = PanConfig()
    # xGen re-clipping: split at a lone motion peak (an edit the detectors missed), keep the longer part
    reclip: bool = True
    motion: MotionConfig = MotionConfig()
    motion_short_side: int = Field(64, ge=8)  # frames are scored at this shorter side
    # clip lengths (Open-Sora scene_cut --min_seconds / --max_seconds); long clips truncate as Open-Sora does
    min_seconds: float = Field(0.5, ge=0)
    max_seconds: float | None = Field(20.0, gt=0)
    max_frames: int | None = Field(None, ge=1)
    long_clips: Literal["truncate", "split", "drop"] = "truncate"
    max_short_side: int = Field(1080, ge=2)  # clips never get upscaled; larger ones record the capped size
    reencode: bool = False  # write each clip as H.264 under clips/ and point `path` at it
    crf: int = Field(18, ge=0, le=51)  # re-encode quality (visually lossless for training data)
    preset: str = "veryfast"
    workers: int = Field(1, ge=1)  # processes, one video each
    progress: bool = True  # rich progress bar (never under pytest)

    @model_validator(mode="after")
    def _lengths(self) -> "SplitConfig":
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds})")
        return self
