"""DiT training data: the captioned clip table, bucketed micro-batches of latents, and their caption embeddings.

Each step a rank gets one bucket's micro-batch (components/data/bucket_sampler.py): clips of one resolution,
frame count and aspect ratio, so latents stack without padding. The frames a clip contributes are fixed per
(seed, clip): the same request every epoch, which is what lets the latents be memoised (or cached on disk).
With score_text a caption gets its clip's scores appended (RECIPE §1), the parts kept drawn per (seed, epoch, clip).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from components.curation.clips import clip_id as make_clip_id
from components.curation.score_text import PARTS, score_to_text
from components.curation.tier_rules import ScoreColumns, aesthetic
from components.data.bucket_sampler import BucketBatchSampler, BucketItem, EpochPlan, plan_epoch
from components.data.buckets import Clips, salt
from components.data.video_table import normalise
from components.dit.captions import CaptionEmbeddings
from components.dit.config import DiTDataConfig
from components.dit.latents import LatentRequest, LatentSource
from components.evaluation.clips import is_heldout
from components.hashing import exists

CAPTION_COLUMNS = ["text", "height", "width"]  # what the DiT needs beyond the shared clip-table columns
SCORE_FIELDS = [field for _, field in PARTS]  # aes, flow, cmotion: the scores score-to-text appends (RECIPE §1)
AS_IMAGE = "as_image"  # add_frame_images: a video row that bucketing reads as a one-frame image


def score_columns(raw: pd.DataFrame) -> pd.DataFrame:
    """A table's score-to-text fields: LAION `aes` when present, else the classical stand-in; None where unscored."""
    none = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    cols = ScoreColumns()
    try:
        aes = aesthetic(raw, cols)[0]
    except ValueError:  # ingest metadata or an unscored table: no aesthetic part
        aes = none
    flow = raw[cols.flow] if cols.flow in raw.columns else none
    cmotion = raw["cmotion"] if "cmotion" in raw.columns else none
    return pd.DataFrame({"aes": aes, "flow": flow, "cmotion": cmotion}, index=raw.index)


def score_fields(row: pd.Series) -> dict[str, Any]:
    """The score-to-text row of one clip of a caption table: {aes, flow, cmotion}."""
    return {field: row[field] for field in SCORE_FIELDS}


def load_caption_table(source: str) -> pd.DataFrame:
    """A curated tier table or the ingest metadata as clips with their caption (`text`), height, width and scores."""
    if not exists(source):
        raise FileNotFoundError(f"clip table {source} does not exist; run data.ingest (or the curate stages) first")
    raw = pd.read_parquet(source)
    table = normalise(raw, source)
    extra = raw.copy()
    if "clip_id" not in extra.columns:  # ingest metadata: one clip per video or image, as normalise() names it
        extra["clip_id"] = [make_clip_id(v, 0, int(n)) for v, n in zip(extra["id"], extra["num_frames"])]
    missing = [c for c in ("height", "width") if c not in extra.columns]
    if missing:
        raise ValueError(f"{source}: lacks column(s) {missing}; buckets need every clip's height and width")
    if "text" not in extra.columns:
        extra["text"] = ""
    extra[SCORE_FIELDS] = score_columns(raw)
    extra = extra[["clip_id", *CAPTION_COLUMNS, *SCORE_FIELDS]].drop_duplicates("clip_id")
    out = table.merge(extra, on="clip_id", how="left", validate="one_to_one")
    out["text"] = out["text"].fillna("").astype(str)
    return out


def heldout_mask(table: pd.DataFrame, fraction: float, salt_: str) -> pd.Series:
    """True for the rows whose clip the evaluation holds out (components/evaluation/clips.py rule)."""
    return table["clip_id"].map(lambda c: is_heldout(str(c), fraction, salt_)).astype(bool)


def without_heldout(table: pd.DataFrame, fraction: float, salt_: str, source: str) -> tuple[pd.DataFrame, int]:
    """The table without the clips evaluation holds out, and how many those were."""
    held = heldout_mask(table, fraction, salt_).to_numpy(dtype=bool)
    if held.all():
        raise ValueError(f"{source}: every one of its {len(table)} clips is held out (heldout_fraction={fraction}); "
                         "nothing is left to train on")
    return table[~held].reset_index(drop=True), int(held.sum())


def add_frame_images(table: pd.DataFrame) -> pd.DataFrame:
    """The table, then a copy of each video row marked AS_IMAGE: bucketing reads the copy as a one-frame image.

    Joint image + video training (RECIPE §7) on a corpus with few images: every video keeps its video sample and
    also gives one frame (DiTDataset.frames: fixed per clip and seed) to the 1-frame buckets.
    """
    videos = table[table["media"] == "video"].assign(**{AS_IMAGE: True})
    return pd.concat([table.assign(**{AS_IMAGE: False}), videos], ignore_index=True)


def bucket_clips(table: pd.DataFrame, images_from_videos: bool, source: str = "clip table") -> Clips:
    """The columns bucketing reads; with images_from_videos every clip counts as a one-frame image, as does a row
    add_frame_images marked."""
    as_image = np.full(len(table), images_from_videos, dtype=bool)
    if AS_IMAGE in table.columns:
        as_image |= table[AS_IMAGE].to_numpy(dtype=bool)
    media = np.where(as_image, "image", table["media"].to_numpy(dtype=object))
    frames = np.where(as_image, 1, table["num_frames"].to_numpy(dtype=np.int64))
    return Clips.from_table({"height": table["height"], "width": table["width"], "num_frames": frames,
                             "media": media, "id": table["clip_id"]}, source)


class DiTDataset(Dataset):
    """BucketItem -> {x0 (C, t, h, w) latents, caption, fps, pixel height/width, pixel frames, clip_id}.

    Bucket sizes are floored to multiples of the VAE stride (Open-Sora's 240p 16:9 is 240x426 → 240x424): the
    video VAE takes whole latent pixels only, and a crop of 2 pixels costs less than padding every sample.
    """

    def __init__(self, table: pd.DataFrame, cfg: DiTDataConfig, latents: LatentSource, seed: int, stride: int = 8):
        self.table = table.reset_index(drop=True)
        self.cfg = cfg
        self.latents = latents
        self.seed = seed
        self.stride = stride

    def __len__(self) -> int:
        return len(self.table)

    def frames(self, row: pd.Series, num_frames: int) -> tuple[int, ...]:
        """Source frames of a sample: fixed per (seed, clip), `frame_interval` apart for videos."""
        start, end = int(row["start_frame"]), int(row["end_frame"])
        draw = salt(self.seed, str(row["clip_id"]))
        if num_frames == 1:
            return (start,) if row["media"] == "image" else (start + draw % (end - start),)
        stride = self.cfg.buckets.frame_interval
        span = (num_frames - 1) * stride + 1
        if end - start < span:
            raise ValueError(f"clip {row['clip_id']}: {end - start} frames cannot give {num_frames} frames "
                             f"{stride} apart")
        offset = draw % (end - start - span + 1)
        return tuple(start + offset + i * stride for i in range(num_frames))

    def caption(self, row: pd.Series, epoch: int) -> str:
        """The clip's caption; with score_text its scores appended, the parts kept drawn per (seed, epoch, clip)."""
        if not self.cfg.score_text:
            return str(row["text"])
        rng = np.random.default_rng(salt(self.seed, "score_text", epoch, str(row["clip_id"])))
        return score_to_text(str(row["text"]), score_fields(row), rng, self.cfg.score_text_drop)

    def request(self, item: BucketItem) -> LatentRequest:
        """The latents a bucket item asks for (the key a latent cache must be filled with)."""
        row = self.table.iloc[item.index]
        height, width = item.height // self.stride * self.stride, item.width // self.stride * self.stride
        return LatentRequest(str(row["clip_id"]), str(row["path"]), self.frames(row, item.num_frames), height, width)

    def __getitem__(self, item: BucketItem) -> dict[str, Any]:
        row = self.table.iloc[item.index]
        request = self.request(item)
        fps = self.cfg.image_fps if item.num_frames == 1 else float(row["fps"]) / self.cfg.buckets.frame_interval
        return {"x0": self.latents.get(request), "caption": self.caption(row, item.epoch), "fps": fps,
                "height": request.height, "width": request.width, "num_frames": item.num_frames,
                "clip_id": request.clip_id}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One bucket's samples: x0 (B, C, t, h, w), fps/height/width (B,) float, num_frames (B,), captions, ids."""
    return {
        "x0": torch.stack([s["x0"] for s in samples]),
        "fps": torch.tensor([s["fps"] for s in samples], dtype=torch.float32),
        "height": torch.tensor([s["height"] for s in samples], dtype=torch.float32),
        "width": torch.tensor([s["width"] for s in samples], dtype=torch.float32),
        "num_frames": torch.tensor([s["num_frames"] for s in samples], dtype=torch.long),
        "caption": [s["caption"] for s in samples],
        "clip_id": [s["clip_id"] for s in samples],
    }


def with_text(batch: dict[str, Any], captions: CaptionEmbeddings) -> dict[str, Any]:
    """Add the caption embeddings y (B, L, dim) and their mask (B, L)."""
    batch["y"], batch["mask"] = captions.get(batch["caption"])
    return batch


class DiTBatches:
    """The Trainer's StatefulData: this rank's bucket micro-batches with caption embeddings; resumable anywhere.

    Read in the main process, without a DataLoader: the memoised latents and the VAE live here, and a DataLoader
    iterator draws its base seed from torch's global generator when it is created, which would shift a resumed
    run's noise stream by one draw (the uninterrupted run creates its iterator once, at step 1).
    """

    def __init__(self, dataset: DiTDataset, sampler: BucketBatchSampler, captions: CaptionEmbeddings):
        self.dataset = dataset
        self.sampler = sampler
        self.captions = captions
        self._items: Iterator[list[BucketItem]] | None = None

    def __iter__(self) -> "DiTBatches":
        return self

    def __next__(self) -> dict[str, Any]:
        if self._items is None:
            self._items = iter(self.sampler)
        batch = collate([self.dataset[item] for item in next(self._items)])
        self.sampler.advance()  # only micro-batches handed to the trainer count as consumed
        return with_text(batch, self.captions)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        self._items = None  # the next batch comes from the restored position


@dataclass
class DiTData:
    """Everything a stage reads: the stream of its rank, the fixed validation batches, and bucket counts."""

    batches: DiTBatches
    eval_batches: list[dict[str, Any]]
    summary: dict[str, int]


def eval_batches(plan: EpochPlan, dataset: DiTDataset, captions: CaptionEmbeddings, samples: int) -> list[dict]:
    """The first `samples` clips of epoch 0's plan, one batch per bucket micro-batch (they cannot stack across)."""
    out, left = [], samples
    for g in range(plan.num_batches):
        items = plan.items(g)[:left]
        out.append(with_text(collate([dataset[item] for item in items]), captions))
        left -= len(items)
        if left == 0:
            break
    return out


def build_data(table: pd.DataFrame, cfg: DiTDataConfig, latents: LatentSource, captions: CaptionEmbeddings,
               seed: int, rank: int, world_size: int, eval_samples: int, stride: int = 8,
               source: str = "clip table") -> DiTData:
    """The rank's bucketed stream and the validation batches (the same on every rank)."""
    if cfg.video_frames_as_images:
        table = add_frame_images(table)
    clips = bucket_clips(table, cfg.images_from_videos, source)
    dataset = DiTDataset(table, cfg, latents, seed, stride)
    sampler = BucketBatchSampler(clips, cfg.buckets, rank, world_size, seed)
    plan = plan_epoch(clips, cfg.buckets, seed, 0)
    return DiTData(DiTBatches(dataset, sampler, captions), eval_batches(plan, dataset, captions, eval_samples),
                   plan.summary())
