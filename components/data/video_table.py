"""The clip table a training stage reads: curated clips when they exist, else the ingest metadata, split train/val.

Both sources become one frame of clips with the curation columns (components/curation/clips.py): an ingested
video is one clip covering all its frames, an image a one-frame clip. The val part is what eval.vae holds out
(`is_heldout` of components/evaluation/clips.py), so no evaluated clip is ever trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.curation.clips import clip_id
from components.evaluation.clips import is_heldout
from components.hashing import exists
from components.workspace import is_remote

# What the dataset reads of a row; every table is brought to these columns.
TABLE_COLUMNS = ["clip_id", "video_id", "path", "media", "start_frame", "end_frame", "num_frames", "fps"]


def resolve_table(tables: list[str], ws: Path) -> str:
    """The first of `tables` that exists (workspace-relative or URI); the last one when none does."""
    uris = [t if is_remote(t) or Path(t).is_absolute() else str(ws / t) for t in tables]
    return next((u for u in uris if exists(u)), uris[-1])


def _from_metadata(df: pd.DataFrame) -> pd.DataFrame:
    """Ingest metadata rows (whole videos and images) as clips covering every frame."""
    out = pd.DataFrame({
        "clip_id": [clip_id(v, 0, n) for v, n in zip(df["id"], df["num_frames"])],
        "video_id": df["id"], "path": df["path"], "media": df["media"],
        "start_frame": 0, "end_frame": df["num_frames"], "num_frames": df["num_frames"], "fps": df["fps"],
    })
    return out


def normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bring a clip table or an ingest metadata table to TABLE_COLUMNS; errors name the source and column."""
    if "clip_id" not in df.columns and "id" in df.columns:
        needed = ["id", "path", "media", "num_frames", "fps"]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(f"{source}: metadata table lacks column(s) {missing}")
        df = _from_metadata(df)
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: clip table lacks column(s) {missing}; expected {TABLE_COLUMNS}")
    out = df[TABLE_COLUMNS].copy()
    bad_media = sorted(set(out["media"]) - {"video", "image"})
    if bad_media:
        raise ValueError(f"{source}: column media holds {bad_media}; expected video or image")
    bad = out.index[(out["end_frame"] - out["start_frame"] < 1) | (out["start_frame"] < 0)]
    if len(bad):
        row = out.loc[bad[0]]
        raise ValueError(f"{source}: row {bad[0]} (clip {row['clip_id']}) has an empty frame range "
                         f"[{row['start_frame']}, {row['end_frame']})")
    out["num_frames"] = out["end_frame"] - out["start_frame"]
    return out.sort_values("clip_id", kind="stable").reset_index(drop=True)


@dataclass
class ClipTable:
    """The train and val clips of one source table, and what was left out (with counts for the run's params)."""

    source: str
    train: pd.DataFrame
    val: pd.DataFrame
    too_short: int  # video clips under min_frames, left out

    def summary(self) -> dict[str, int | str]:
        count = lambda df, media: int((df["media"] == media).sum())  # noqa: E731
        return {"source": self.source, "train_videos": count(self.train, "video"),
                "train_images": count(self.train, "image"), "val_videos": count(self.val, "video"),
                "val_images": count(self.val, "image"), "too_short": self.too_short}


def load_clip_table(source: str, heldout_fraction: float, heldout_salt: str, min_frames: int = 1) -> ClipTable:
    """Read `source`, drop video clips under min_frames, set the held-out clips aside as val."""
    if not exists(source):
        raise FileNotFoundError(f"clip table {source} does not exist; run data.ingest (or the curate stages) first")
    df = normalise(pd.read_parquet(source), source)
    short = (df["media"] == "video") & (df["num_frames"] < min_frames)
    df = df[~short].reset_index(drop=True)
    is_val = df["clip_id"].map(lambda c: is_heldout(c, heldout_fraction, heldout_salt)).astype(bool)
    if not len(df[~is_val]):
        raise ValueError(f"{source}: no training clips left (after min_frames={min_frames} and "
                         f"heldout_fraction={heldout_fraction})")
    return ClipTable(source, df[~is_val].reset_index(drop=True), df[is_val].reset_index(drop=True), int(short.sum()))
