"""The distributed bucket batch sampler: global sequence, exact-once epochs, resume on another world size."""
from __future__ import annotations

import math
from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from components.data.bucket_sampler import BucketBatches, BucketBatchSampler, BucketItem, plan_epoch
from components.data.buckets import BucketConfig, Clips

TINY = {"128px": {1: (1.0, 3), 17: (0.6, 2), 33: (1.0, 2)}, "64px": {1: (1.0, 5), 17: (1.0, 3)}}
SIZES = [(128, 128), (72, 128), (144, 256), (96, 96), (64, 64), (128, 96)]


def corpus(n: int = 90, seed: int = 0) -> Clips:
    """Mixed images and videos of the tiny corpus' sizes and lengths."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        h, w = SIZES[rng.integers(len(SIZES))]
        image = rng.random() < 0.3
        records.append(dict(height=h, width=w, num_frames=1 if image else int(rng.integers(10, 60)),
                            media="image" if image else "video"))
    return Clips.from_records(records)


def samplers(clips: Clips, cfg: BucketConfig, world: int, seed: int = 0) -> list[BucketBatchSampler]:
    return [BucketBatchSampler(clips, cfg, rank=r, world_size=world, seed=seed) for r in range(world)]


def run_steps(ranks: list[BucketBatchSampler], steps: int) -> list[list[BucketItem]]:
    """Simulate `steps` trainer steps in-process: every rank takes one micro-batch; returned in global order."""
    streams = [iter(s) for s in ranks]
    out = []
    for _ in range(steps):
        for stream, sampler in zip(streams, ranks):
            out.append(next(stream))
            sampler.advance()
    return out


def rows(batches: list[list[BucketItem]]) -> list[int]:
    return [item.index for batch in batches for item in batch]


def test_epoch_plan_covers_every_assigned_clip_once_in_homogeneous_batches():
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    plan = plan_epoch(clips, cfg, seed=0, epoch=0)
    assigned = np.flatnonzero(plan.assignment.bucket >= 0)
    seen = Counter(rows([plan.items(g) for g in range(plan.num_batches)]))
    assert set(seen) == set(assigned.tolist()) and set(seen.values()) == {1}
    short = Counter()
    for g in range(plan.num_batches):
        key, batch = plan.key(g), plan.items(g)
        assert {plan.assignment.key(item.index) for item in batch} == {key}
        assert {(i.num_frames, i.height, i.width) for i in batch} == {(key.num_frames, key.height, key.width)}
        size = cfg.batch_size(key)
        assert 1 <= len(batch) <= size
        short[key] += len(batch) < size
    assert max(short.values()) <= 1  # only a bucket's last micro-batch may be smaller
    summary = plan.summary()
    assert summary["assigned"] == len(assigned) and summary["micro_batches"] == plan.num_batches
    assert summary["assigned"] + sum(v for k, v in summary.items() if k.startswith("unassigned_")) == 90


def test_same_global_sequence_on_one_two_and_three_ranks():
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    m = plan_epoch(clips, cfg, 0, 0).num_batches
    total = 6 * (m + m // 2)  # about 1.5 epochs: crosses an epoch boundary
    single = run_steps(samplers(clips, cfg, 1), total)
    assert run_steps(samplers(clips, cfg, 2), total // 2) == single
    assert run_steps(samplers(clips, cfg, 3), total // 3) == single
    assert [b for b in single[:m]] == [plan_epoch(clips, cfg, 0, 0).items(g) for g in range(m)]
    assert single[m] == plan_epoch(clips, cfg, 0, 1).items(0)


def test_plan_is_deterministic_per_seed_and_epoch():
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    a, b = plan_epoch(clips, cfg, 4, 2), plan_epoch(clips, cfg, 4, 2)
    assert np.array_equal(a.order, b.order) and np.array_equal(a.bounds, b.bounds)
    assert not np.array_equal(a.order, plan_epoch(clips, cfg, 4, 3).order)
    assert not np.array_equal(a.order, plan_epoch(clips, cfg, 5, 2).order)


@pytest.mark.parametrize("old_world, new_world", [(2, 3), (3, 1)])
def test_resume_mid_epoch_on_another_world_size_visits_every_clip_once(tmp_path, old_world, new_world):
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    plan = plan_epoch(clips, cfg, 0, 0)
    old = samplers(clips, cfg, old_world)
    before = run_steps(old, plan.num_batches // (2 * old_world))  # stop mid-epoch
    states = [s.state_dict() for s in old]
    assert all(s == states[0] for s in states) and states[0]["consumed"] == len(before) and states[0]["epoch"] == 0
    torch.save({"step": 7, "sampler": states[0]}, tmp_path / "state.pt")  # as the Checkpointer stores it
    saved = torch.load(tmp_path / "state.pt", weights_only=False)["sampler"]
    new = samplers(clips, cfg, new_world)
    for s in new:
        s.load_state_dict(saved)
    remaining = plan.num_batches - len(before)
    after = run_steps(new, math.ceil(remaining / new_world))
    seen = Counter(rows(before + after[:remaining]))
    assert set(seen) == set(np.flatnonzero(plan.assignment.bucket >= 0).tolist()) and set(seen.values()) == {1}
    # a step that straddles the epoch end continues with epoch 1's first micro-batches
    extra = len(after) - remaining
    assert after[remaining:] == [plan_epoch(clips, cfg, 0, 1).items(g) for g in range(extra)]
    assert (new[0].epoch, new[0].consumed) == (1, extra)
    assert before + after == run_steps(samplers(clips, cfg, 1), len(before) + len(after))  # same as uninterrupted


def test_small_dataset_never_yields_an_empty_epoch():
    three = Clips.from_records([dict(height=64, width=64, num_frames=1, media="image")] * 3)
    cfg = BucketConfig.model_validate({"64px": {1: (1.0, 8)}})
    plan = plan_epoch(three, cfg, 0, 0)
    assert plan.num_batches == 1 and sorted(i.index for i in plan.items(0)) == [0, 1, 2]
    batches = run_steps(samplers(three, cfg, 2), 4)  # 2 ranks, 1 micro-batch per epoch: steps roll over epochs
    assert [sorted(i.index for i in b) for b in batches] == [[0, 1, 2]] * 8
    with pytest.raises(ValueError, match=r"drops every micro-batch.*64px/1f/1.00: 3 clips < batch_size 8"):
        plan_epoch(three, BucketConfig.model_validate({"resolutions": cfg.resolutions, "drop_last": True}), 0, 0)
    with pytest.raises(ValueError, match=r"no clip fits any bucket \(3 clips; .*'too_small': 3"):
        plan_epoch(three, BucketConfig.model_validate({"240p": {1: (1.0, 8)}}), 0, 0)


def test_drop_last_drops_and_counts_each_buckets_remainder():
    ten = Clips.from_records([dict(height=64, width=64, num_frames=1, media="image")] * 10)
    cfg = BucketConfig.model_validate({"resolutions": {"64px": {1: (1.0, 4)}}, "drop_last": True})
    plan = plan_epoch(ten, cfg, 0, 0)
    assert [len(plan.rows(g)) for g in range(plan.num_batches)] == [4, 4]
    assert plan.dropped_last == 2 and plan.summary()["dropped_last"] == 2
    assert len(set(plan.order.tolist())) == 8


def test_iterating_does_not_move_the_saved_position():
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    sampler = BucketBatchSampler(clips, cfg, rank=1, world_size=2)
    list(islice(iter(sampler), 5))  # what a prefetching DataLoader does
    assert (sampler.epoch, sampler.consumed) == (0, 0)
    sampler.advance(3)
    assert sampler.consumed == 6


class ItemDataset(Dataset):
    """Returns the requested (row, T, H, W) as a tensor, standing in for a video decoder."""

    def __len__(self) -> int:
        return 90

    def __getitem__(self, item: BucketItem) -> torch.Tensor:
        return torch.tensor(item)


def test_trainer_data_through_a_dataloader_resumes_exactly():
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    data = BucketBatches(ItemDataset(), BucketBatchSampler(clips, cfg, rank=0, world_size=1, seed=3))
    first = [next(data) for _ in range(4)]
    plan = plan_epoch(clips, cfg, 3, 0)
    expected = torch.tensor([tuple(i) for i in plan.items(0)])
    assert torch.equal(first[0], expected)  # collated (B, 4): rows with the bucket's T, H, W
    state = data.state_dict()
    reference = [next(data) for _ in range(6)]
    resumed = BucketBatches(ItemDataset(), BucketBatchSampler(clips, cfg, rank=0, world_size=1, seed=3))
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip([next(resumed) for _ in range(6)], reference))
    # a plain DataLoader over the sampler reads from the sampler's position: micro-batch 4 + 6 of the plan
    batch = next(iter(DataLoader(ItemDataset(), batch_sampler=resumed.sampler)))
    assert batch[:, 0].tolist() == plan.rows(10).tolist()


def test_state_errors_are_clear():
    clips, cfg = corpus(), BucketConfig.model_validate(TINY)
    state = BucketBatchSampler(clips, cfg, seed=0).state_dict()
    with pytest.raises(ValueError, match="sampler state has seed 0, this run uses seed 1"):
        BucketBatchSampler(clips, cfg, seed=1).load_state_dict(state)
    other = BucketConfig.model_validate({**TINY, "64px": {1: (1.0, 6), 17: (1.0, 3)}})
    with pytest.raises(ValueError, match="other clips or another bucket config"):
        BucketBatchSampler(clips, other, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="sampler state version None"):
        BucketBatchSampler(clips, cfg).load_state_dict({"seed": 0})
    with pytest.raises(ValueError, match=r"rank 2 is not in \[0, world_size=2\)"):
        BucketBatchSampler(clips, cfg, rank=2, world_size=2)
