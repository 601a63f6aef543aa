"""Buckets (resolution, num_frames, aspect ratio): the Open-Sora bucket config and the per-epoch clip assignment.

Config, Open-Sora's compact form: `{res: {num_frames: (keep_prob, batch_size)}}`, where keep_prob may be a pair
`(keep_prob, allow_prob)`. Assignment of one clip (RECIPE §6), for resolutions from the largest pixel budget down:
  1. skip the resolution when the clip has fewer than min_pixel_ratio (0.8) x its pixels;
  2. pick the frame count: an image takes 1 (if the resolution has a 1-frame entry); a video takes the largest
     frame count F > 1 it covers (num_frames >= F * frame_interval; Open-Sora 1.2 asks for strictly more), and
     an `allow_prob` entry is taken only with that probability, else the next smaller F is tried;
  3. keep with that entry's keep_prob, else fall to the next smaller resolution;
  4. the aspect ratio is the closest of the 17 labels to height / width.
Every draw is a hash of (seed, epoch, clip row, resolution, frame count), so the result depends on nothing but
those: not on global RNG state, world size or worker count. A clip left without a bucket is counted under one
of UNASSIGNED_REASONS; nothing is dropped silently.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.data.aspect_ratios import ASPECT_RATIOS, Resolution, get_resolution

# Why a clip got no bucket in an epoch (index + 1 is its code in Assignment.reason; 0 means assigned).
UNASSIGNED_REASONS = (
    "too_small",  # fewer than min_pixel_ratio x the pixels of every configured resolution
    "no_image_bucket",  # an image, but no resolution it reaches has a 1-frame entry
    "too_short",  # a video covering no frame count > 1 at any resolution it reaches
    "not_kept",  # had a bucket, but the keep / allow draws sent it past the smallest resolution this epoch
)
MEDIA = ("video", "image")


class FrameBucket(BaseModel):
    """One (resolution, num_frames) entry: keep probability, frame-count allow probability, micro-batch size."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    keep_prob: float = Field(ge=0, le=1)
    allow_prob: float = Field(1.0, ge=0, le=1)
    batch_size: int | None = Field(None, ge=1)  # None only where keep_prob is 0 (Open-Sora's `(0.0, None)`)

    @model_validator(mode="before")
    @classmethod
    def _compact(cls, data: Any) -> Any:
        """Accept (keep_prob, batch_size) and ((keep_prob, allow_prob), batch_size) as well as the field dict."""
        if isinstance(data, (list, tuple)):
            if len(data) != 2:
                raise ValueError(f"expected (keep_prob, batch_size), got {data!r}")
            prob, batch_size = data
            if isinstance(prob, (list, tuple)):
                if len(prob) != 2:
                    raise ValueError(f"expected keep_prob or (keep_prob, allow_prob), got {prob!r}")
                return {"keep_prob": prob[0], "allow_prob": prob[1], "batch_size": batch_size}
            return {"keep_prob": prob, "batch_size": batch_size}
        return data

    @model_validator(mode="after")
    def _batch(self) -> "FrameBucket":
        if self.batch_size is None and self.keep_prob > 0:
            raise ValueError(f"batch_size is required when keep_prob > 0 (keep_prob={self.keep_prob})")
        return self


class BucketConfig(BaseModel):
    """Bucket resolutions with their frame-count entries, plus the assignment and batching knobs."""

    model_config = ConfigDict(extra="forbid")
    resolutions: dict[str, dict[int, FrameBucket]]
    min_pixel_ratio: float = Field(0.8, gt=0, le=1)  # a clip reaches a resolution with >= this x its pixels
    frame_interval: int = Field(1, ge=1)  # frames are read with this stride: F frames need F x stride
    drop_last: bool = False  # drop each bucket's short final micro-batch (see bucket_sampler)

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        """A bare Open-Sora dict `{res: {num_frames: ...}}` is read as `resolutions`."""
        if isinstance(data, dict) and data and not set(data) & set(cls.model_fields):
            return {"resolutions": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> "BucketConfig":
        if not self.resolutions:
            raise ValueError("resolutions: at least one resolution is required")
        for name, entries in self.resolutions.items():
            get_resolution(name)  # raises for an unknown name, listing the known ones
            if not entries:
                raise ValueError(f"resolutions.{name}: at least one frame count is required")
            for frames, entry in entries.items():
                if frames < 1:
                    raise ValueError(f"resolutions.{name}.{frames}: frame count must be >= 1")
                if frames == 1 and entry.allow_prob < 1:
                    raise ValueError(f"resolutions.{name}.1: the image entry takes a single keep_prob, "
                                     f"not (keep_prob, allow_prob)")
        return self

    def ordered(self) -> list[tuple[Resolution, list[tuple[int, FrameBucket]]]]:
        """Resolutions from the largest pixel budget down, each with its entries by frame count, largest first."""
        res = sorted((get_resolution(name) for name in self.resolutions), key=lambda r: -r.pixels)
        return [(r, sorted(self.resolutions[r.name].items(), reverse=True)) for r in res]

    def bucket_keys(self) -> list["BucketKey"]:
        """Every bucket this config can fill, in a fixed order: resolution, frames (largest first), ratio."""
        return [BucketKey(r.name, frames, label, *r.table[label])
                for r, entries in self.ordered() for frames, _ in entries for label in ASPECT_RATIOS]

    def batch_size(self, key: "BucketKey") -> int:
        """Micro-batch size of a bucket."""
        size = self.resolutions[key.resolution][key.num_frames].batch_size
        if size is None:
            raise ValueError(f"bucket {key.name} has no batch_size (keep_prob 0): no clip should be assigned to it")
        return size


class BucketKey(NamedTuple):
    """A bucket and the (num_frames, height, width) every clip in it is resized and cropped to."""

    resolution: str
    num_frames: int
    aspect_ratio: str
    height: int
    width: int

    @property
    def name(self) -> str:
        return f"{self.resolution}/{self.num_frames}f/{self.aspect_ratio}"


@dataclass(frozen=True)
class Clips:
    """The columns assignment needs, one row per clip (a metadata table's height, width, num_frames, media)."""

    height: np.ndarray  # int64
    width: np.ndarray  # int64
    num_frames: np.ndarray  # int64
    is_image: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.height)

    @classmethod
    def from_table(cls, table: Any, source: str = "clip table") -> "Clips":
        """From a DataFrame (or dict of columns) with height, width, num_frames, media; names the bad row."""
        missing = [c for c in ("height", "width", "num_frames", "media") if c not in table]
        if missing:
            raise ValueError(f"{source}: missing column(s) {missing}; bucketing needs height, width, num_frames, media")
        media = np.asarray(table["media"], dtype=object)
        ids = np.asarray(table["id"], dtype=object) if "id" in table else None
        bad = np.flatnonzero(~np.isin(media, MEDIA))
        if len(bad):
            raise ValueError(f"{source}: row {_row(bad[0], ids)} media must be one of {MEDIA}, got {media[bad[0]]!r}")
        columns = {}
        for col in ("height", "width", "num_frames"):
            values = np.asarray(table[col], dtype=np.float64)
            bad = np.flatnonzero(~(values >= 1) | (values != np.floor(values)))
            if len(bad):
                raise ValueError(f"{source}: row {_row(bad[0], ids)} {col} must be a positive integer, "
                                 f"got {values[bad[0]]}")
            columns[col] = values.astype(np.int64)
        return cls(is_image=media == "image", **columns)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], source: str = "clip records") -> "Clips":
        """From a list of {height, width, num_frames, media} dicts."""
        columns = ["height", "width", "num_frames", "media"] + (["id"] if records and "id" in records[0] else [])
        return cls.from_table({c: [r.get(c) for r in records] for c in columns}, source)

    def fingerprint(self) -> str:
        """sha256 prefix of the columns: a resumed sampler checks it sees the same clips."""
        digest = hashlib.sha256()
        for column in (self.height, self.width, self.num_frames, self.is_image):
            digest.update(np.ascontiguousarray(column).tobytes())
        return digest.hexdigest()[:16]


def _row(index: int, ids: np.ndarray | None) -> str:
    return f"{index} (id {ids[index]})" if ids is not None else str(index)


# ---- hash-based draws ------------------------------------------------------------------------------------------
_MASK = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic): a well-spread 64-bit hash."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def salt(*parts: object) -> int:
    """A stable 64-bit integer naming one kind of draw (python's hash() changes per process)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def uniform_draws(seed: int, epoch: int, rows: np.ndarray, draw: int) -> np.ndarray:
    """U[0, 1) per row, a pure function of (seed, epoch, row, draw): no generator state anywhere."""
    key = np.array([seed & _MASK], dtype=np.uint64)
    for part in (epoch & _MASK, draw):
        key = _mix(key ^ np.uint64(part))
    h = _mix(_mix(np.asarray(rows, dtype=np.uint64) ^ key))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53  # top 53 bits: every double in [0, 1) is exact


# ---- assignment ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """Per clip: bucket index into `keys` (-1: none) and reason code (0: assigned, i: UNASSIGNED_REASONS[i-1])."""

    keys: list[BucketKey]
    bucket: np.ndarray  # int64
    reason: np.ndarray  # int8

    def key(self, row: int) -> BucketKey | None:
        """The bucket of clip `row`, or None."""
        b = int(self.bucket[row])
        return self.keys[b] if b >= 0 else None

    def why(self, row: int) -> str | None:
        """Why clip `row` has no bucket (None when it has one)."""
        code = int(self.reason[row])
        return UNASSIGNED_REASONS[code - 1] if code else None

    def unassigned(self) -> dict[str, int]:
        """Clips without a bucket, per reason (every reason listed, zeros included)."""
        counts = np.bincount(self.reason, minlength=len(UNASSIGNED_REASONS) + 1)
        return {name: int(counts[i + 1]) for i, name in enumerate(UNASSIGNED_REASONS)}

    def counts(self) -> dict[str, int]:
        """Clips per filled bucket, by bucket name."""
        used = np.bincount(self.bucket[self.bucket >= 0], minlength=len(self.keys))
        return {self.keys[i].name: int(n) for i, n in enumerate(used) if n}

    def summary(self) -> dict[str, int]:
        """Flat counts for a tracker: clips, assigned, unassigned_<reason>."""
        out = {"clips": len(self.bucket), "assigned": int((self.bucket >= 0).sum())}
        out.update({f"unassigned_{name}": n for name, n in self.unassigned().items()})
        return out


def assign_buckets(clips: Clips, cfg: BucketConfig, seed: int, epoch: int) -> Assignment:
    """Bucket of every clip for (seed, epoch), by the rules in the module docstring (vectorised over clips)."""
    n = len(clips)
    rows = np.arange(n)
    keys = cfg.bucket_keys()
    labels = np.array([float(label) for label in ASPECT_RATIOS])
    # closest label = count of midpoints below h / w; a tie keeps the smaller label, as Open-Sora's min() does
    ratio_index = np.searchsorted((labels[:-1] + labels[1:]) / 2, clips.height / clips.width, side="left")
    pixels = clips.height * clips.width
    bucket = np.full(n, -1, dtype=np.int64)
    pending = np.ones(n, dtype=bool)
    reached = np.zeros(n, dtype=bool)  # some resolution is large enough
    had_entry = np.zeros(n, dtype=bool)  # some (resolution, frames) entry fits, draws aside
    base = 0  # index in `keys` of this (resolution, frames) block's first aspect ratio
    for res, entries in cfg.ordered():
        here = pending & (pixels >= cfg.min_pixel_ratio * res.pixels)
        reached |= here
        frames = np.zeros(n, dtype=np.int64)  # chosen frame count, 0: none at this resolution
        keep = np.zeros(n, dtype=np.float64)
        block = np.zeros(n, dtype=np.int64)
        open_videos = here & ~clips.is_image
        for offset, (count, entry) in enumerate(entries):
            if count == 1:
                fits = here & clips.is_image
            else:
                fits = open_videos & (clips.num_frames >= count * cfg.frame_interval)
                open_videos &= ~fits  # a larger frame count that fits is never revisited for this clip
            had_entry |= fits
            if entry.allow_prob < 1:
                idx = rows[fits]
                denied = uniform_draws(seed, epoch, idx, salt("allow", res.name, count)) >= entry.allow_prob
                fits[idx[denied]] = False
                open_videos[idx[denied]] = True  # denied: try the next smaller frame count
            frames[fits], keep[fits] = count, entry.keep_prob
            block[fits] = base + offset * len(ASPECT_RATIOS)
        candidates = rows[frames > 0]
        kept = candidates[uniform_draws(seed, epoch, candidates, salt("keep", res.name)) < keep[candidates]]
        bucket[kept] = block[kept] + ratio_index[kept]
        pending[kept] = False
        base += len(entries) * len(ASPECT_RATIOS)
    reason = np.zeros(n, dtype=np.int8)
    reason[pending & ~reached] = 1
    reason[pending & reached & ~had_entry & clips.is_image] = 2
    reason[pending & reached & ~had_entry & ~clips.is_image] = 3
    reason[pending & had_entry] = 4
    return Assignment(keys=keys, bucket=bucket, reason=reason)


# ---- examples (YAML-ready: plain dicts, lists and numbers) -------------------------------------------------------
# RECIPE §6's Open-Sora 1.2 stage examples; §7 pairs them with the quality tiers (240p/360p, 360p/480p, 720p/1080p).
OPEN_SORA_STAGES: dict[str, dict[str, dict[int, list]]] = {
    "stage1": {"240p": {1: [0.3, 297], 51: [0.4, 20], 102: [[0.4, 0.33], 10]}},
    "stage2": {"360p": {1: [0.5, 141], 51: [0.15, 8], 102: [[0.3, 0.5], 4]}},
    "stage3": {"720p": {1: [0.3, 36], 51: [0.2, 2], 102: [0.1, 1]}},
}
# Tiny profile tiers on the synthetic corpus (frames 8-75, sides 72-256): the same shape, 2-core sizes.
TINY_STAGES: dict[str, dict[str, dict[int, list]]] = {
    "stage1": {"96px": {1: [0.5, 16], 17: [0.5, 4], 33: [[0.5, 0.5], 2]},
               "64px": {1: [1.0, 32], 9: [1.0, 8], 17: [1.0, 4]}},
    "stage2": {"128px": {1: [0.5, 8], 17: [0.5, 2], 33: [[0.5, 0.5], 1]},
               "96px": {1: [1.0, 16], 17: [1.0, 4], 33: [1.0, 2]}},
    "stage3": {"128px": {1: [1.0, 8], 17: [1.0, 2], 33: [1.0, 1]}},
}
