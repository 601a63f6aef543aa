"""Trainer and train.smoke in-process (world size 1): learning, exact resume, determinism, schedule, EMA, metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from components.stage import REGISTRY, StageContext
from components.training.checkpoint import load_safetensors
from components.training.config import TrainConfig
from components.training.engine import cpu_has_native_bf16, use_bf16
from components.training.smoke import ShardedBatches, SmokeConfig, train_smoke
from components.training.trainer import EMA, SimulatedKill, WarmupSchedule


class RecordingTracker:
    """Keeps what the trainer logs, as MLflow would."""

    def __init__(self):
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.tags: dict[str, str] = {}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)


def context(tmp_path: Path, name: str, tracker=None, **cfg) -> StageContext:
    out = tmp_path / name / "out"
    out.mkdir(parents=True, exist_ok=True)
    return StageContext(name="train.smoke", profile="tiny", cfg=SmokeConfig(**cfg), workspace=tmp_path, out=out,
                        inputs={}, checkpoint_dir=tmp_path / name / "ckpt", tracker=tracker)


SMALL = dict(steps=24, batch_size=8, data_size=64, checkpoint_every=8, log_every=4, lr=2e-2)


def test_smoke_registered_with_output():
    spec = REGISTRY["train.smoke"]
    assert spec.output == "train/smoke" and spec.config is SmokeConfig


def test_loss_decreases_and_outputs_written(tmp_path):
    ctx = context(tmp_path, "run", steps=40, batch_size=16, data_size=128, lr=2e-2)
    result = train_smoke(ctx)
    assert result["step"] == 40
    assert result["loss_last"] < 0.05 * result["loss_first"]
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics == {**result, "steps_run": 40, "resumed_from": None}
    # exported weights equal the final checkpoint's
    exported = load_safetensors(ctx.out / "model.safetensors")
    saved = torch.load(ctx.checkpoint_dir / "step_00000040" / "model.pt", weights_only=True)
    assert sorted(exported) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert all(torch.equal(exported[k], saved[k]) for k in saved)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    cfg = dict(SMALL, grad_accum_steps=2, warmup_steps=5, ema_decay=0.9)
    whole = train_smoke(context(tmp_path, "whole", **cfg))

    ctx = context(tmp_path, "killed", stop_after=13, **cfg)
    with pytest.raises(SimulatedKill, match="stop_after=13"):
        train_smoke(ctx)
    assert (ctx.checkpoint_dir / "latest").read_text().strip() == "step_00000013"
    resumed = train_smoke(ctx)  # the same command again, as a retry would run it

    assert resumed == whole
    assert json.loads((ctx.out / "metrics.json").read_text())["resumed_from"] == 13
    for name in ("model.safetensors", "ema.safetensors"):
        a = load_safetensors(tmp_path / "whole" / "out" / name)
        b = load_safetensors(ctx.out / name)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_trajectory_other_seed_differs(tmp_path):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        tracker = RecordingTracker()
        train_smoke(context(tmp_path, name, tracker=tracker, seed=seed, progress=False, **SMALL))
        runs.append([m["train/loss"] for _, m in tracker.metrics])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_metrics_logged_on_log_steps(tmp_path):
    tracker = RecordingTracker()
    train_smoke(context(tmp_path, "m", tracker=tracker, warmup_steps=8, **SMALL))
    steps = [step for step, _ in tracker.metrics]
    assert steps == [1, 4, 8, 12, 16, 20, 24]
    for step, m in tracker.metrics:
        assert set(m) == {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s",
                          "train/step_time_s", "train/peak_mem_mb"}
        assert m["train/lr"] == pytest.approx(2e-2 * min(1.0, step / 8))
        assert m["train/samples_per_s"] > 0 and m["train/peak_mem_mb"] > 10 and m["train/grad_norm"] > 0


def test_precision_resolves_per_device_and_is_tagged(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for precision, want_cuda in (("fp32", False), ("auto", True), ("bf16", True)):
        assert use_bf16(TrainConfig(steps=1, precision=precision), cuda) is want_cuda
    assert not use_bf16(TrainConfig(steps=1, precision="auto"), cpu)  # CPU numbers stay fp32 unless asked
    bf16 = TrainConfig(steps=1, precision="bf16")
    assert use_bf16(bf16, cpu, "ddp") is cpu_has_native_bf16()  # only where the CPU multiplies bf16 itself
    assert not use_bf16(bf16, cpu, "deepspeed")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # Linux names the same CPU features
        flags = set(cpuinfo.read_text().split())
        assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)

    tracker = RecordingTracker()
    train_smoke(context(tmp_path, "p", tracker=tracker, **SMALL))  # SmokeConfig's default: auto
    assert tracker.tags == {"reelforge.precision": "fp32"}
    if cpu_has_native_bf16():
        tracker = RecordingTracker()
        result = train_smoke(context(tmp_path, "b", tracker=tracker, precision="bf16", **SMALL))
        assert tracker.tags == {"reelforge.precision": "bf16"}
        assert result["loss_last"] < 0.5 * result["loss_first"]


def test_grad_accumulation_matches_larger_batch(tmp_path):
    # world 1: two micro-batches of 8 are exactly the next 16 samples of the same permutation
    big = train_smoke(context(tmp_path, "big", **dict(SMALL, batch_size=16)))
    accum = train_smoke(context(tmp_path, "acc", **dict(SMALL, batch_size=8, grad_accum_steps=2)))
    assert accum["loss_last"] == pytest.approx(big["loss_last"], rel=1e-5)
    assert accum["loss_first"] == pytest.approx(big["loss_first"], rel=1e-6)


def test_warmup_then_constant():
    schedule = WarmupSchedule(lr=1e-4, warmup_steps=1000)
    assert schedule(1) == pytest.approx(1e-7)
    assert schedule(500) == pytest.approx(5e-5)
    assert schedule(1000) == schedule(70_000) == 1e-4
    assert WarmupSchedule(lr=3e-3, warmup_steps=0)(1) == 3e-3


def test_warmup_then_cosine_to_the_floor():
    schedule = WarmupSchedule(lr=1e-3, warmup_steps=10, decay="cosine", total_steps=110, min_lr_ratio=0.1)
    assert schedule(5) == pytest.approx(5e-4) and schedule(10) == pytest.approx(1e-3)
    assert schedule(60) == pytest.approx(1e-4 + 9e-4 * 0.5)  # half way: cos(pi/2) = 0
    assert schedule(110) == pytest.approx(1e-4) == schedule(500)
    assert schedule.state_dict() == {"base_lr": 1e-3, "warmup_steps": 10, "decay": "cosine", "total_steps": 110,
                                     "min_lr_ratio": 0.1}


def test_ema_closed_form():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0), layer.bias.fill_(0.0)
    ema = EMA(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.fill_(3.0), layer.bias.fill_(1.0)
    ema.update(layer)
    ema.update(layer)
    # two updates toward a constant: ema = 3 - (3 - 1)·0.9²
    assert torch.allclose(ema.state_dict()["weight"], torch.full((1, 2), 3 - 2 * 0.81))
    assert torch.allclose(ema.state_dict()["bias"], torch.tensor([1 - 0.81]))


def test_sharded_batches_split_global_batch_and_resume():
    x = torch.arange(20.0).reshape(20, 1)
    one = ShardedBatches(x, x, batch_size=4, rank=0, world_size=1, seed=5)
    ranks = [ShardedBatches(x, x, batch_size=2, rank=r, world_size=2, seed=5) for r in (0, 1)]
    for _ in range(12):  # crosses epochs: 20 samples hold 5 global batches of 4
        whole = next(one)[0]
        assert torch.equal(torch.cat([next(r)[0] for r in ranks]), whole)
    state = one.state_dict()
    assert state == {"epoch": 2, "cursor": 8, "seed": 5}
    expected = next(one)[0]
    again = ShardedBatches(x, x, batch_size=4, rank=0, world_size=1, seed=5)
    again.load_state_dict(state)
    assert torch.equal(next(again)[0], expected)


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match=r"stop_after \(30\) must be below steps \(30\)"):
        SmokeConfig(steps=30, stop_after=30)
    with pytest.raises(ValidationError, match=r"batch_size \(64\) exceeds data_size \(32\)"):
        SmokeConfig(batch_size=64, data_size=32)
    with pytest.raises(ValidationError, match="strategy"):
        SmokeConfig(strategy="fsdp")


@pytest.mark.slow
def test_deepspeed_in_process_resumes(tmp_path):
    """DeepSpeed ZeRO-2 on one process (its own gloo group); first run builds two C++ ops (~1 min)."""
    cfg = dict(SMALL, strategy="deepspeed")
    whole = train_smoke(context(tmp_path, "whole", **cfg))
    ctx = context(tmp_path, "killed", stop_after=13, **cfg)
    with pytest.raises(SimulatedKill):
        train_smoke(ctx)
    assert (ctx.checkpoint_dir / "step_00000013" / "deepspeed").is_dir()
    resumed = train_smoke(ctx)
    assert whole["loss_last"] < 0.2 * whole["loss_first"]
    # DeepSpeed's fused CPU Adam restores its step counter so that the trajectory differs in the last bits
    assert resumed["loss_last"] == pytest.approx(whole["loss_last"], abs=1e-6)


def test_reference_deepspeed_json_is_what_the_builder_makes():
    from components.training.config import TrainConfig
    from components.training.deepspeed_engine import deepspeed_config

    full = TrainConfig(strategy="deepspeed", batch_size=1, lr=1e-4, eps=1e-15, weight_decay=0.0, grad_clip=1.0)
    built = deepspeed_config(full, bf16=True)
    reference = json.loads((Path(__file__).parents[2] / "infra" / "deepspeed" / "zero2.json").read_text())
    assert reference == built
    assert built["zero_optimization"]["stage"] == 2 and built["bf16"] == {"enabled": True}
    assert built["gradient_clipping"] == 1.0 and built["zero_optimization"]["overlap_comm"] is True
    assert deepspeed_config(SmokeConfig(grad_accum_steps=3), bf16=False)["gradient_accumulation_steps"] == 3
