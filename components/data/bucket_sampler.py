"""The distributed bucket batch sampler: every rank draws one bucket's micro-batch per step, resumable anywhere.

Epoch plan (the same on every rank, a function of (seed, epoch) only):
  1. assign_buckets(clips, cfg, seed, epoch) puts each clip in a bucket (or counts why not);
  2. each bucket's clips are shuffled and cut into micro-batches of the bucket's batch_size;
  3. all micro-batches are shuffled into one global sequence of M micro-batches.
Micro-batch g of the endless stream epoch 0 ++ epoch 1 ++ … goes to rank g % W at step g // W, so the global
sequence is the same on 1 and N ranks, and a run is a position (epoch, micro-batches consumed globally).
Steps straddle epoch boundaries: when W does not divide M, the last step of an epoch takes its remaining
micro-batches and completes with the first of the next epoch. Nothing is padded or dropped for the world size,
and a resume on a different world size continues at the same position, visiting every remaining clip once.

Short buckets (the known Open-Sora pain: a bucket with fewer clips than its batch size yielded nothing, and an
epoch of such buckets was empty): by default each bucket's last micro-batch keeps its remainder as a SMALLER
batch, so every assigned clip is seen exactly once per epoch and no clip is repeated (smaller never exceeds the
memory the batch size was tuned for). drop_last=True drops those remainders (counted as `dropped_last`); an epoch
left with no micro-batch at all is an error naming its buckets, never a silent empty epoch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from components.data.buckets import Assignment, BucketConfig, BucketKey, Clips, assign_buckets, salt

log = logging.getLogger(__name__)

STATE_VERSION = 1
_SHUFFLE = salt("shuffle")  # stream of the epoch's shuffles, apart from the assignment draws


class BucketItem(NamedTuple):
    """One dataset request: clip row `index`, to be read as num_frames frames resized and cropped to height x width.

    `epoch` is the epoch that drew it, for per-epoch draws of the dataset (the score-to-text parts a caption keeps).
    """

    index: int
    num_frames: int
    height: int
    width: int
    epoch: int = 0


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's global micro-batch sequence: micro-batch g holds rows order[bounds[g]:bounds[g + 1]]."""

    epoch: int
    assignment: Assignment
    order: np.ndarray  # clip rows, micro-batch after micro-batch
    bounds: np.ndarray  # (M + 1,) offsets into order
    batch_bucket: np.ndarray  # (M,) index into assignment.keys
    dropped_last: int  # clips in remainders dropped by drop_last

    @property
    def num_batches(self) -> int:
        return len(self.batch_bucket)

    def rows(self, g: int) -> np.ndarray:
        """Clip rows of micro-batch g."""
        return self.order[self.bounds[g]:self.bounds[g + 1]]

    def key(self, g: int) -> BucketKey:
        """Bucket of micro-batch g."""
        return self.assignment.keys[int(self.batch_bucket[g])]

    def items(self, g: int) -> list[BucketItem]:
        """Micro-batch g as dataset requests."""
        key = self.key(g)
        return [BucketItem(int(row), key.num_frames, key.height, key.width, self.epoch) for row in self.rows(g)]

    def summary(self) -> dict[str, int]:
        """Counts for a tracker: clips, assigned, unassigned_<reason>, dropped_last, micro_batches."""
        return {**self.assignment.summary(), "dropped_last": self.dropped_last, "micro_batches": self.num_batches}


def plan_epoch(clips: Clips, cfg: BucketConfig, seed: int, epoch: int) -> EpochPlan:
    """The epoch's global micro-batch sequence (identical on every rank); raises if it would be empty."""
    assignment = assign_buckets(clips, cfg, seed, epoch)
    rng = np.random.default_rng([seed & (2**64 - 1), epoch & (2**64 - 1), _SHUFFLE])
    rows = np.flatnonzero(assignment.bucket >= 0)
    buckets = assignment.bucket[rows]
    grouped = rows[np.lexsort((rng.random(len(rows)), buckets))]  # by bucket, shuffled within each bucket
    ids, counts = np.unique(buckets, return_counts=True)
    keep_rows, lengths, batch_bucket, dropped = [], [], [], 0
    start = 0
    for b, count in zip(ids.tolist(), counts.tolist()):
        size = cfg.batch_size(assignment.keys[b])
        full, rest = divmod(count, size)
        sizes = [size] * full + ([rest] if rest and not cfg.drop_last else [])
        dropped += rest if cfg.drop_last else 0
        keep_rows.append(grouped[start:start + sum(sizes)])
        lengths += sizes
        batch_bucket += [b] * len(sizes)
        start += count
    if not lengths:
        raise ValueError(_empty_epoch_message(assignment, cfg, epoch))
    lengths_arr, order = np.array(lengths), np.concatenate(keep_rows)
    old_bounds = np.concatenate([[0], np.cumsum(lengths_arr)])
    perm = rng.permutation(len(lengths_arr))
    new_lengths = lengths_arr[perm]
    bounds = np.concatenate([[0], np.cumsum(new_lengths)])
    # each new slot g copies old micro-batch perm[g]: shift every row of it by (old start - new start)
    shift = np.repeat(old_bounds[:-1][perm] - bounds[:-1], new_lengths)
    order = order[np.arange(len(order)) + shift]
    plan = EpochPlan(epoch, assignment, order, bounds, np.array(batch_bucket)[perm], dropped)
    log.info("bucket plan, epoch %d: %s", epoch, plan.summary())
    return plan


def _empty_epoch_message(assignment: Assignment, cfg: BucketConfig, epoch: int) -> str:
    counts = assignment.counts()
    if not counts:
        return (f"epoch {epoch}: no clip fits any bucket ({len(assignment.bucket)} clips; unassigned per reason "
                f"{assignment.unassigned()}), so the epoch would be empty")
    short = [f"{k.name}: {counts[k.name]} clips < batch_size {cfg.batch_size(k)}"
             for k in assignment.keys if k.name in counts]
    return f"epoch {epoch}: drop_last=True drops every micro-batch, so the epoch would be empty ({'; '.join(short)})"


class BucketBatchSampler(Sampler[list[BucketItem]]):
    """Endless stream of this rank's micro-batches (lists of BucketItem); a DataLoader batch_sampler.

    Iterating does not move the saved position: the consumer calls advance() per micro-batch it actually
    uses (BucketBatches does), so DataLoader prefetching never runs the checkpointed state ahead.
    The stream is endless: loop by steps, not by `for batch in loader` epochs (len() is undefined).
    """

    def __init__(self, clips: Clips, cfg: BucketConfig, rank: int = 0, world_size: int = 1, seed: int = 0):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"BucketBatchSampler: rank {rank} is not in [0, world_size={world_size})")
        self.clips, self.cfg, self.rank, self.world_size, self.seed = clips, cfg, rank, world_size, seed
        self.epoch = 0
        self.consumed = 0  # micro-batches of this epoch consumed by all ranks together
        self._plans: dict[int, EpochPlan] = {}
        self._fingerprint: str | None = None

    def plan(self, epoch: int) -> EpochPlan:
        """The epoch's plan (the two most recent are cached)."""
        if epoch not in self._plans:
            self._plans = {e: p for e, p in self._plans.items() if e >= epoch - 1}
            self._plans[epoch] = plan_epoch(self.clips, self.cfg, self.seed, epoch)
        return self._plans[epoch]

    def _locate(self, epoch: int, position: int) -> tuple[int, int]:
        """(epoch, offset) of the `position`-th micro-batch counted from the start of `epoch`."""
        while position >= (size := self.plan(epoch).num_batches):
            epoch, position = epoch + 1, position - size
        return epoch, position

    def __iter__(self) -> Iterator[list[BucketItem]]:
        return self._stream(self.epoch, self.consumed)  # position captured now, not at the first next()

    def _stream(self, epoch: int, consumed: int) -> Iterator[list[BucketItem]]:
        epoch, g = self._locate(epoch, consumed + self.rank)
        while True:
            yield self.plan(epoch).items(g)
            epoch, g = self._locate(epoch, g + self.world_size)

    def advance(self, micro_batches: int = 1) -> None:
        """Mark `micro_batches` micro-batches per rank as consumed (world_size x that many globally)."""
        self.epoch, self.consumed = self._locate(self.epoch, self.consumed + micro_batches * self.world_size)

    def fingerprint(self) -> str:
        """Clips and bucket config this state belongs to."""
        if self._fingerprint is None:
            self._fingerprint = f"{self.clips.fingerprint()}-{salt(self.cfg.model_dump_json()):016x}"
        return self._fingerprint

    def state_dict(self) -> dict[str, Any]:
        """Position for a checkpoint: the same on every rank, valid for any world size."""
        return {"version": STATE_VERSION, "seed": self.seed, "epoch": self.epoch, "consumed": self.consumed,
                "world_size": self.world_size, "fingerprint": self.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position (possibly written by a run with another world size)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"sampler state version {state.get('version')!r}; this code reads {STATE_VERSION}")
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this run uses seed {self.seed}")
        if state["fingerprint"] != self.fingerprint():
            raise ValueError(
                f"sampler state was saved for other clips or another bucket config (fingerprint "
                f"{state['fingerprint']}, this run {self.fingerprint()}): resuming would skip or repeat clips"
            )
        self._plans = {}
        self.epoch, self.consumed = self._locate(int(state["epoch"]), int(state["consumed"]))


class BucketBatches:
    """The Trainer's StatefulData: this rank's collated micro-batches, loaded by a DataLoader over the sampler.

    `dataset[item]` receives a BucketItem. The state is the sampler's position, advanced only for micro-batches
    handed to the trainer, so prefetched ones are read again after a resume.
    """

    def __init__(self, dataset: Dataset, sampler: BucketBatchSampler,
                 collate_fn: Callable[[list[Any]], Any] | None = None, num_workers: int = 0, **loader_kwargs: Any):
        self.sampler = sampler
        # an own generator: a DataLoader iterator otherwise draws its base seed from torch's global RNG, which
        # would shift every later random draw (diffusion noise) by one and break exact resume
        loader_kwargs.setdefault("generator", torch.Generator().manual_seed(sampler.seed))
        self._make = lambda: iter(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn,
                                             num_workers=num_workers, **loader_kwargs))
        self._it: Iterator[Any] | None = None

    def __iter__(self) -> "BucketBatches":
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = self._make()
        batch = next(self._it)
        self.sampler.advance()
        return batch

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        self._it = None  # the next batch is read from the restored position
