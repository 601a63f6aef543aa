"""Held-out evaluation clips: a deterministic selection from a clip table, read as fixed-size video tensors.

A clip is held out when sha256(salt:clip_id) maps below `fraction`: the choice depends on the clip alone (not
on table order or size), so a training stage can exclude exactly these clips with `is_heldout`.
"""
from __future__ import annotations

import hashlib
from typing import Literal

import cv2
import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from components.curation.frames import read_frames

REQUIRED_COLUMNS = ("clip_id", "path", "media", "start_frame", "num_frames")
INTERPOLATION = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


class ClipSelection(BaseModel):
    """Which clips, how many frames, at what size, resized how."""

    model_config = ConfigDict(extra="forbid")
    table: str = "curate/tier/tier1.parquet"  # clip table (CLIP_COLUMNS), relative to the workspace or a URI
    fraction: float = Field(0.1, gt=0, le=1)  # 1.0: the table is already a held-out set
    salt: str = "reelforge-heldout-v1"
    max_clips: int = Field(64, ge=1)  # FVD is biased upward at small N: 2048 is the convention for reports
    frames: int = Field(17, ge=1)  # the first `frames` frames of each clip
    resolution: int = Field(64, ge=8)  # short side resized to this, then a centre square crop
    resize: Literal["area", "bilinear", "bicubic"] = "area"  # OpenCV interpolation

    def describe(self) -> str:
        return f"short side -> {self.resolution} ({self.resize}, OpenCV), centre crop {self.resolution}x{self.resolution}"


def heldout_score(clip_id: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the clip id and the salt."""
    return int(hashlib.sha256(f"{salt}:{clip_id}".encode()).hexdigest()[:12], 16) / 16**12


def is_heldout(clip_id: str, fraction: float, salt: str = ClipSelection().salt) -> bool:
    """True for the clips the evaluation holds out (training stages skip them)."""
    return heldout_score(clip_id, salt) < fraction


def select(table: pd.DataFrame, sel: ClipSelection, source: str) -> pd.DataFrame:
    """Held-out video clips long enough for `sel.frames`, ordered by their score, at most `sel.max_clips`."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; a clip table needs {list(REQUIRED_COLUMNS)}")
    usable = table[(table["media"] == "video") & (table["num_frames"] >= sel.frames)].copy()
    usable["heldout_score"] = [heldout_score(c, sel.salt) for c in usable["clip_id"]]
    chosen = usable[usable["heldout_score"] < sel.fraction].sort_values(["heldout_score", "clip_id"])
    if chosen.empty:
        raise ValueError(
            f"{source}: no held-out clip: {len(table)} rows, {len(usable)} videos with >= {sel.frames} frames, "
            f"none with score < fraction={sel.fraction} (salt {sel.salt!r}); raise the fraction or add clips"
        )
    return chosen.head(sel.max_clips).reset_index(drop=True)


def resize_crop(frames: np.ndarray, size: int, resize: str) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3): the short side to `size`, then the centre square."""
    t, h, w, _ = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        frames = np.stack([cv2.resize(f, (nw, nh), interpolation=INTERPOLATION[resize]) for f in frames])
    top, left = (nh - size) // 2, (nw - size) // 2
    return frames[:, top : top + size, left : left + size]


def load_clip(row: dict, sel: ClipSelection) -> torch.Tensor:
    """The clip's first `sel.frames` frames as (3, T, R, R) float32 in [-1, 1]."""
    start = int(row["start_frame"])
    frames = read_frames(row["path"], start, start + sel.frames)
    if len(frames) < sel.frames:
        raise ValueError(f"clip {row['clip_id']} ({row['path']}): decoded {len(frames)} frames from "
                         f"{start}, need {sel.frames}")
    video = resize_crop(frames, sel.resolution, sel.resize)
    x = torch.from_numpy(np.ascontiguousarray(video)).float().div(127.5).sub(1)  # (T, R, R, 3)
    return x.permute(3, 0, 1, 2).contiguous()  # (3, T, R, R)
