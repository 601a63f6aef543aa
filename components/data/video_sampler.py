"""Which clip each sample position holds, per (seed, epoch): video/image mixing, random lengths, rank shards.

An epoch is every training video clip once plus image samples making up `image_ratio` of the total
(real images cycled through; one frame of a video clip when the table holds no images), shuffled with a
generator seeded by (seed, epoch). Every random choice of a sample (its length, its start frame, the
replacement for a corrupt clip) comes from its key's own seed, so a sample depends on its global position
only: never on the rank, the number of ranks or of DataLoader workers. Rank r of W takes positions
[c + r*B, c + (r+1)*B) of each global batch starting at c, like DistributedSampler; a tail shorter than a
global batch is dropped, and an epoch shorter than one global batch is repeated so it never comes out empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from components.data.video_config import VideoDataConfig

_PLAN_SALT = 0x5EED  # separates the epoch-plan stream from other users of the same seed


@dataclass(frozen=True)
class SampleKey:
    """One sample: a row of the training table, whether it is a single image, its length and its draws' seed."""

    row: int
    image: bool
    length: int
    seed: int


class EpochPlan:
    """The sample keys of every epoch of one training table (computed once per epoch, then cached)."""

    def __init__(self, table: pd.DataFrame, cfg: VideoDataConfig, seed: int, global_batch: int):
        self.cfg = cfg
        self.seed = seed
        self.global_batch = global_batch
        self.video_rows = np.flatnonzero((table["media"] == "video").to_numpy())
        self.image_rows = np.flatnonzero((table["media"] == "image").to_numpy())
        if not len(self.video_rows) and not len(self.image_rows):
            raise ValueError("EpochPlan: the training table is empty")
        self.n_video, self.n_image = self._counts()
        base = self.n_video + self.n_image
        self.repeats = -(-global_batch // base)  # ceil: at least one global batch per epoch
        self.size = base * self.repeats
        self._cached: tuple[int, list[SampleKey]] | None = None

    def _counts(self) -> tuple[int, int]:
        """Video and image samples per epoch: images are image_ratio of the total, rounded."""
        n_video, ratio = len(self.video_rows), self.cfg.image_ratio
        if n_video == 0:  # an image-only table: every sample is an image
            return 0, len(self.image_rows)
        if ratio >= 1:
            return 0, max(len(self.image_rows), n_video)
        return n_video, int(round(n_video * ratio / (1 - ratio)))

    def _rng(self, epoch: int, part: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, part, _PLAN_SALT]))

    def _one_pass(self, epoch: int, part: int) -> list[SampleKey]:
        rng = self._rng(epoch, part)
        cfg = self.cfg
        videos = list(rng.permutation(self.video_rows)[: self.n_video])
        # images cycle through their pool; without images, single frames of random video clips stand in
        pool = self.image_rows if len(self.image_rows) else self.video_rows
        cycles = -(-self.n_image // len(pool)) if self.n_image else 0
        images = np.concatenate([rng.permutation(pool) for _ in range(cycles)])[: self.n_image] if cycles else []
        if cfg.random_length:
            lengths = rng.integers(1, cfg.num_frames + 1, size=len(videos))
        else:
            lengths = np.full(len(videos), cfg.num_frames)
        entries = [(int(r), False, int(n)) for r, n in zip(videos, lengths)] + [(int(r), True, 1) for r in images]
        order = rng.permutation(len(entries))
        seeds = rng.integers(0, 2**63 - 1, size=len(entries))
        return [SampleKey(*entries[i], seed=int(s)) for i, s in zip(order, seeds)]

    def keys(self, epoch: int) -> list[SampleKey]:
        """Every sample key of `epoch`, in order."""
        if self._cached is None or self._cached[0] != epoch:
            keys = [k for part in range(self.repeats) for k in self._one_pass(epoch, part)]
            self._cached = (epoch, keys)
        return self._cached[1]

    def next_batch_start(self, epoch: int, cursor: int) -> tuple[int, int]:
        """Where the next global batch starts when `cursor` samples of `epoch` are consumed."""
        if cursor + self.global_batch > self.size:
            return epoch + 1, 0
        return epoch, cursor


class RankBatchSampler:
    """Endless micro-batches of SampleKeys for one rank, from a saved (epoch, cursor) onward."""

    def __init__(self, plan: EpochPlan, rank: int, world_size: int, batch_size: int, epoch: int = 0,
                 cursor: int = 0):
        if plan.global_batch != batch_size * world_size:
            raise ValueError(f"RankBatchSampler: plan made for global batch {plan.global_batch}, "
                             f"got {batch_size} x {world_size} ranks")
        self.plan, self.rank, self.batch_size = plan, rank, batch_size
        self.epoch, self.cursor = epoch, cursor

    def __iter__(self) -> Iterator[list[SampleKey]]:
        epoch, cursor = self.epoch, self.cursor
        while True:
            epoch, cursor = self.plan.next_batch_start(epoch, cursor)
            start = cursor + self.rank * self.batch_size
            yield self.plan.keys(epoch)[start:start + self.batch_size]
            cursor += self.plan.global_batch
