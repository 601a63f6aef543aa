"""train.smoke: a small MLP regressing a fixed random linear map, trained by the shared Trainer (DDP or ZeRO-2).

It exercises the launcher, the strategies, checkpoint/resume and weight export in seconds on CPU.
"""
from __future__ import annotations

import json
from typing import Any

import torch
from pydantic import Field, model_validator
from torch import nn

from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.training.checkpoint import Checkpointer, export_safetensors
from components.training.config import TrainConfig
from components.training.engine import DistInfo, build_engine
from components.training.trainer import Trainer


class SmokeConfig(TrainConfig):
    """The smoke run: TrainConfig with small defaults plus the synthetic data and MLP sizes."""

    steps: int = Field(60, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-2, gt=0)
    log_every: int = Field(5, ge=1)
    checkpoint_every: int = Field(20, ge=1)
    data_size: int = Field(512, ge=1)
    in_dim: int = Field(8, ge=1)
    hidden: int = Field(32, ge=1)
    noise_std: float = Field(0.01, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> "SmokeConfig":
        if self.batch_size > self.data_size:
            raise ValueError(f"batch_size ({self.batch_size}) exceeds data_size ({self.data_size})")
        return self


def make_data(cfg: SmokeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I), y = x·w + noise with a fixed random w; the same on every rank (seeded by cfg.seed)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.data_size, cfg.in_dim, generator=gen)
    w = torch.randn(cfg.in_dim, 1, generator=gen)
    y = x @ w + cfg.noise_std * torch.randn(cfg.data_size, 1, generator=gen)
    return x, y


def make_model(cfg: SmokeConfig) -> nn.Module:
    """A two-layer MLP, initialised from cfg.seed so every rank (and every rerun) starts identical."""
    torch.manual_seed(cfg.seed)
    return nn.Sequential(nn.Linear(cfg.in_dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1))


class ShardedBatches:
    """Endless micro-batches of one rank: each epoch is a seeded permutation cut into global batches.

    A global batch (batch_size x world_size samples) is split into contiguous per-rank slices, like
    DistributedSampler; a tail shorter than a global batch is dropped. The state counts samples consumed
    globally, so a resume on a different world size continues from the same place in the same permutation.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, rank: int, world_size: int, seed: int):
        if batch_size * world_size > len(x):
            raise ValueError(
                f"global batch {batch_size}x{world_size} ranks exceeds the {len(x)} samples: an epoch would be empty"
            )
        self.x, self.y = x, y
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.epoch = 0
        self.cursor = 0  # samples of this epoch consumed by all ranks together
        self._order: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        if self._order is None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(len(self.x), generator=gen)
        return self._order

    def __iter__(self) -> "ShardedBatches":
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        global_batch = self.batch_size * self.world_size
        if self.cursor + global_batch > len(self.x):
            self.epoch, self.cursor, self._order = self.epoch + 1, 0, None
        start = self.cursor + self.rank * self.batch_size
        idx = self._permutation()[start:start + self.batch_size]
        self.cursor += global_batch
        return self.x[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this run uses seed {self.seed}")
        self.epoch, self.cursor, self._order = int(state["epoch"]), int(state["cursor"]), None


@stage("train.smoke", config=SmokeConfig, output="train/smoke")
def train_smoke(ctx: StageContext) -> dict[str, float]:
    """Train a small MLP on a synthetic regression with the shared Trainer (DDP or DeepSpeed ZeRO-2)."""
    cfg: SmokeConfig = ctx.cfg
    info = DistInfo(rank=ctx.rank, world_size=ctx.world_size, local_rank=ctx.local_rank)
    x, y = make_data(cfg)
    model = make_model(cfg)
    data = ShardedBatches(x, y, cfg.batch_size, ctx.rank, ctx.world_size, cfg.seed)
    engine = build_engine(cfg, model, info)
    checkpointer = Checkpointer(ctx.checkpoint_dir, cfg.keep_checkpoints, ctx.rank, ctx.world_size)
    trainer = Trainer(cfg, model, data, engine, checkpointer, ctx.tracker or NoopTracker(), info)
    try:
        result = trainer.train()
        if ctx.is_main:
            meta = {"stage": "train.smoke", "step": str(result["step"]), "strategy": cfg.strategy}
            export_safetensors(engine.module_state_dict(), ctx.out / "model.safetensors", meta)
            if trainer.ema is not None:
                export_safetensors(trainer.ema.state_dict(), ctx.out / "ema.safetensors", meta)
            (ctx.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        engine.close()
    return {"loss_first": result["loss_first"], "loss_last": result["loss_last"], "step": result["step"]}
