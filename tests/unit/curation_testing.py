"""Helpers for the curation tests: a clip table from synthetic ground truth and small Scorers of our own."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from components.curation.clips import CLIP_COLUMNS, clip_id
from components.curation.scorer import ClipFrames
from components.stage import StageContext
from components.tracking import NoopTracker

# small and fast: 2-3 shots of ~1 s at 8-12 fps on 64-96 px frames
MICRO = dict(shots_per_video=(2, 3), shot_seconds=(0.8, 1.2), fps_choices=[8, 12],
             frame_sizes=[(96, 64), (64, 64)], image_sizes=[(96, 64)], plant_bad=False)


def video_id(relpath: str) -> str:
    """The id data.ingest gives a file (sha256 of its path relative to the source)."""
    return hashlib.sha256(relpath.encode()).hexdigest()[:16]


def gt_clips(root: Path, gt: dict) -> pd.DataFrame:
    """The clip table a perfect split would write: one clip per ground-truth shot, one per image.

    As curate.split does, a clip keeps the video's caption only when it covers the whole video.
    """
    rows = []
    for video in gt["videos"]:
        vid = video_id(video["path"])
        whole = len(video["shots"]) == 1
        for shot in video["shots"]:
            rows.append(_row(vid, str(root / video["path"]), "video", shot["start"], shot["end"], video["fps"],
                             video["height"], video["width"], video["caption"] if whole else "", "scene"))
    for image in gt["images"]:
        rows.append(_row(video_id(image["path"]), str(root / image["path"]), "image", 0, 1, 120.0,
                         image["height"], image["width"], image["caption"], "whole"))
    return pd.DataFrame(rows, columns=list(CLIP_COLUMNS))


def gt_metadata(root: Path, gt: dict) -> pd.DataFrame:
    """The columns of data.ingest's metadata.parquet that curation reads (id, path, media, text)."""
    rows = [{"id": video_id(v["path"]), "path": str(root / v["path"]), "media": "video", "text": v["caption"]}
            for v in gt["videos"]]
    rows += [{"id": video_id(i["path"]), "path": str(root / i["path"]), "media": "image", "text": i["caption"]}
             for i in gt["images"]]
    return pd.DataFrame(rows)


def _row(vid, path, media, start, end, fps, height, width, text, rule) -> dict:
    return {"clip_id": clip_id(vid, start, end), "video_id": vid, "path": path, "media": media,
            "start_frame": start, "end_frame": end, "num_frames": end - start, "fps": float(fps),
            "start_s": start / fps, "end_s": end / fps, "height": height, "width": width,
            "aspect_ratio": height / width, "resolution": height * width, "text": text, "split_rule": rule}


def context(name: str, cfg, ws: Path, out: str, inputs: dict[str, str]) -> StageContext:
    """A hand-built stage context writing into ws/out, as the runner would give it."""
    return StageContext(name=name, profile="tiny", cfg=cfg, workspace=ws, out=ws / out, inputs=inputs,
                        checkpoint_dir=ws / "checkpoints" / name, tracker=NoopTracker())


class LumaScorer:
    """Mean grey level of 3 sampled frames at short side 32; counts its calls (resumability tests)."""

    name = "luma"
    columns = ("luma", "luma_frames")
    num_frames = 3
    short_side = 32

    def __init__(self, version: str = "1", fail_on: str | None = None):
        self.version, self.fail_on, self.calls = version, fail_on, 0

    def provenance(self) -> dict[str, str]:
        return {"scorer": self.name, "method": "mean grey level", "weights": "none", "version": self.version}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float]]:
        self.calls += 1
        for clip in batch:
            if self.fail_on and clip.clip_id.startswith(self.fail_on):
                raise RuntimeError("planted failure")
        return [{"luma": float(c.frames.mean()), "luma_frames": float(len(c.indices))} for c in batch]


class EdgeScorer:
    """Mean |horizontal gradient| over every frame at native size (a second frame request)."""

    name = "edge"
    columns = ("edge",)
    num_frames = 0
    short_side = 0

    def __init__(self):
        self.calls = 0

    def provenance(self) -> dict[str, str]:
        return {"scorer": self.name, "method": "mean abs x-gradient", "weights": "none", "version": "1"}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float]]:
        self.calls += 1
        return [{"edge": float(np.abs(np.diff(c.frames.astype(np.float32), axis=2)).mean())} for c in batch]
