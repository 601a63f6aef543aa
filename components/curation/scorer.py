"""One small interface for every clip scorer, so curate.score batches, resumes and records them alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class ClipFrames:
    """What a scorer sees: the clip row and frames sampled as the scorer asked (uint8 RGB, (T, H, W, 3))."""

    clip_id: str
    frames: np.ndarray
    indices: list[int]  # absolute frame numbers of `frames` in the source video
    fps: float


class Scorer(Protocol):
    """A scorer names its output columns, the frames it needs, and what produced its numbers."""

    name: str  # e.g. "motion", "ocr", "aesthetic_classical"
    columns: tuple[str, ...]  # columns it writes, e.g. ("motion",) or ("flow", "cmotion")
    num_frames: int  # frames to sample per clip (0 = every frame)
    short_side: int  # resize shorter side to this before scoring (0 = native)

    def provenance(self) -> dict[str, str]:
        """{'scorer': name, 'method': 'farneback', 'weights': 'none' | '<file>@<sha256>', 'version': '1'}."""
        ...

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        """One dict of column values per clip, in batch order."""
        ...
