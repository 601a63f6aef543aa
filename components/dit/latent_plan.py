"""What cache.latents encodes: every sample a tier's training can request, over any epoch, and its captions.

A clip lands in one bucket per epoch, drawn by its keep / allow probabilities (components/data/buckets.py), so
over all epochs it can land in any of a few buckets: `candidate_buckets` lists them all, so the cache serves
every epoch. The frames a clip gives a bucket are fixed per (seed, clip) by the DiT dataset
(components/dit/data.py: DiTDataset.frames), so each (clip, bucket) is one LatentRequest, encoded once.
Captions: the clip's text, and with score-to-text every subset of its score parts (aesthetic, motion, camera
motion), each formatted by components/curation/score_text.py exactly as training appends them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from components.curation.score_text import PARTS, score_to_text
from components.data.aspect_ratios import ASPECT_RATIOS
from components.data.buckets import BucketConfig, BucketKey, Clips
from components.dit.config import DiTDataConfig
from components.dit.data import DiTDataset, add_frame_images, bucket_clips, load_caption_table, score_fields
from components.dit.latents import LatentRequest

_LABELS = list(ASPECT_RATIOS)
_VALUES = np.array([float(label) for label in _LABELS])


@dataclass
class PlannedSample:
    """One latent the cache holds: the request, its bucket, the fps it trains with, captions and tiers."""

    request: LatentRequest
    bucket: BucketKey
    fps: float
    captions: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)


def aspect_label(height: int, width: int) -> str:
    """The closest of the 17 aspect-ratio labels to height / width, ties to the smaller (as assign_buckets)."""
    return _LABELS[int(np.searchsorted((_VALUES[:-1] + _VALUES[1:]) / 2, height / width, side="left"))]


def candidate_buckets(clips: Clips, cfg: BucketConfig) -> list[list[BucketKey]]:
    """Per clip, every bucket assign_buckets can give it in some epoch, largest resolution first.

    At each resolution the clip reaches, the frame counts it may take are the fitting entries down to the first
    one without an allow draw; it goes on to smaller resolutions unless every such entry keeps it for sure.
    """
    out: list[list[BucketKey]] = [[] for _ in range(len(clips))]
    for i in range(len(clips)):
        label = aspect_label(int(clips.height[i]), int(clips.width[i]))
        pixels = int(clips.height[i]) * int(clips.width[i])
        for res, entries in cfg.ordered():
            if pixels < cfg.min_pixel_ratio * res.pixels:
                continue
            taken, settled = [], False
            for count, entry in entries:
                if count == 1:
                    fits = bool(clips.is_image[i])
                else:
                    fits = not clips.is_image[i] and clips.num_frames[i] >= count * cfg.frame_interval
                if not fits:
                    continue
                taken.append((count, entry))
                if count == 1 or entry.allow_prob >= 1:
                    settled = True
                    break
            h, w = res.table[label]
            out[i] += [BucketKey(res.name, count, label, h, w) for count, entry in taken if entry.keep_prob > 0]
            if settled and all(entry.keep_prob >= 1 for _, entry in taken):
                break  # always kept here: smaller resolutions are never reached
    return out


class _KeepPattern:
    """Stands in for score_to_text's generator: replays a fixed keep pattern so every subset is formatted by it."""

    def __init__(self, keep: tuple[bool, ...]):
        self.keep = keep

    def random(self, n: int) -> np.ndarray:
        return np.array([1.0 if k else 0.0 for k in self.keep[:n]])


def caption_variants(text: str, row: dict[str, Any], score_text: bool) -> list[str]:
    """The caption as training reads it, and with score_text every subset of the row's score parts appended."""
    if not score_text:
        return [text]
    variants = {text} | {score_to_text(text, row, _KeepPattern(keep), p_drop=0.5) for keep in product((False, True),
                                                                                                repeat=len(PARTS))}
    return sorted(variants)


def plan_tier(source: str, tier: str, buckets: BucketConfig, images_from_videos: bool, seed: int,
              score_text: bool, video_frames_as_images: bool = False) -> list[PlannedSample]:
    """Every (clip, candidate bucket) sample of one tier table, with the frames training will request."""
    table = load_caption_table(source)
    if video_frames_as_images:
        table = add_frame_images(table)
    data_cfg = DiTDataConfig(tables=[source], buckets=buckets, images_from_videos=images_from_videos,
                             video_frames_as_images=video_frames_as_images)
    dataset = DiTDataset(table, data_cfg, latents=None, seed=seed)
    clips = bucket_clips(table, images_from_videos, source)
    out = []
    for i, keys in enumerate(candidate_buckets(clips, buckets)):
        row = table.iloc[i]
        captions = caption_variants(str(row["text"]), score_fields(row), score_text)
        for key in keys:
            frames = dataset.frames(row, key.num_frames)
            fps = data_cfg.image_fps if key.num_frames == 1 else float(row["fps"]) / buckets.frame_interval
            request = LatentRequest(str(row["clip_id"]), str(row["path"]), frames, key.height, key.width)
            out.append(PlannedSample(request, key, fps, list(captions), [tier]))
    return out


def merge_plans(plans: list[list[PlannedSample]], key_of) -> dict[str, PlannedSample]:
    """One sample per cache key across tiers (a clip in tiers 1 and 2 is encoded once), tiers and captions joined."""
    merged: dict[str, PlannedSample] = {}
    for plan in plans:
        for sample in plan:
            key = key_of(sample.request)
            if key not in merged:
                merged[key] = PlannedSample(sample.request, sample.bucket, sample.fps, list(sample.captions),
                                            list(sample.tiers))
                continue
            seen = merged[key]
            seen.tiers += [t for t in sample.tiers if t not in seen.tiers]
            seen.captions += [c for c in sample.captions if c not in seen.captions]
    return merged
