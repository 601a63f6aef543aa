"""Checkpointer: atomic saves, keep-last-K, RNG restore, optimiser restore, safetensors export."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from components.training.checkpoint import (
    Checkpointer,
    export_safetensors,
    load_safetensors,
    rng_state,
    set_rng_state,
)
from components.training.config import TrainConfig
from components.training.engine import DDPEngine, DistInfo


def make_engine(seed: int = 0, cls: type[DDPEngine] = DDPEngine) -> DDPEngine:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    return cls(TrainConfig(lr=0.1), model, DistInfo())


def train_one_step(engine: DDPEngine) -> None:
    loss = engine.model(torch.ones(5, 3)).pow(2).mean()
    engine.backward(loss)
    engine.step()


class FailingEngine(DDPEngine):
    """A real DDP engine whose optimiser save dies halfway, as a full disk or a kill would."""

    def save_optimizer(self, folder: Path, rank: int) -> None:
        (folder / "optimizer.pt").write_bytes(b"partial")
        raise OSError("disk full")


def test_failed_save_leaves_latest_on_previous(tmp_path):
    engine = make_engine()
    ckpt = Checkpointer(tmp_path, keep=3)
    train_one_step(engine)
    ckpt.save(1, engine, {"sampler": {"cursor": 8}})
    saved = {k: v.clone() for k, v in engine.module.state_dict().items()}

    failing = make_engine(cls=FailingEngine)
    train_one_step(failing)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(2, failing, {"sampler": {"cursor": 16}})

    assert (tmp_path / "latest").read_text().strip() == "step_00000001"
    assert not (tmp_path / "step_00000002").exists()
    fresh = make_engine(seed=1)
    loaded = ckpt.load(fresh)
    assert loaded.step == 1 and loaded.state["sampler"] == {"cursor": 8}
    for key, value in fresh.module.state_dict().items():
        assert torch.equal(value, saved[key])

    # the next good save clears the debris of the failed one
    ckpt.save(2, engine, {"sampler": {"cursor": 16}})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    assert (tmp_path / "latest").read_text().strip() == "step_00000002"


def test_keeps_last_k(tmp_path):
    engine = make_engine()
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in range(1, 5):
        ckpt.save(step, engine, {})
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000003", "step_00000004"]
    assert ckpt.latest() == tmp_path / "step_00000004"


def test_latest_naming_incomplete_folder_is_a_clear_error(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(5, make_engine(), {})
    (tmp_path / "step_00000005" / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="step_00000005.*meta.json is missing"):
        ckpt.latest()


def test_no_checkpoint_loads_nothing(tmp_path):
    assert Checkpointer(tmp_path / "empty").load(make_engine()) is None


def test_rng_state_round_trip_repeats_next_numbers():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = rng_state()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.random(), np.random.rand(7), torch.rand(7)  # move the generators on
    set_rng_state(state)
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == first


def test_checkpoint_restores_rng_and_optimizer(tmp_path):
    engine = make_engine()
    train_one_step(engine)
    torch.manual_seed(123)
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, engine, {})
    expected_draw = torch.rand(4)
    expected_avg = [s["exp_avg"].clone() for s in engine.optimizer.state.values()]

    torch.manual_seed(999)
    fresh = make_engine(seed=7)
    ckpt.load(fresh)
    assert torch.equal(torch.rand(4), expected_draw)
    restored = [s["exp_avg"] for s in fresh.optimizer.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(restored, expected_avg)) and len(restored) == 4
    assert fresh.optimizer.state[next(iter(fresh.optimizer.state))]["step"].item() == 1


def test_strategy_mismatch_names_both(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, make_engine(), {})
    other = make_engine()
    other.strategy = "deepspeed"
    with pytest.raises(ValueError, match="written by strategy 'ddp'; this run uses 'deepspeed'"):
        ckpt.load(other)


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(0)
    tied = nn.Linear(4, 4)
    weights = {"a.weight": tied.weight, "b.weight": tied.weight, "half": torch.randn(3, 2).bfloat16(),
               "steps": torch.tensor([7], dtype=torch.int64), "view": torch.arange(12.0).reshape(3, 4).t()}
    path = tmp_path / "out" / "model.safetensors"
    export_safetensors(weights, path, {"step": "7"})
    back = load_safetensors(path)
    assert sorted(back) == sorted(weights)
    for key, value in weights.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value.detach())
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        assert fh.metadata() == {"step": "7"}
