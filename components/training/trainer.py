"""The shared Trainer (torchtitan style): subclasses override compute_loss, forward_backward_step or train_step."""
from __future__ import annotations

import logging
import math
import random
import time
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from components.training.checkpoint import Checkpointer
from components.training.config import TrainConfig
from components.training.engine import DistInfo, Engine
from components.training.metrics import MetricLogger

log = logging.getLogger(__name__)


class SimulatedKill(RuntimeError):
    """Raised right after the checkpoint of cfg.stop_after, so tests can interrupt a run and resume it."""


class StatefulData(Protocol):
    """An endless iterator of this rank's micro-batches whose position can be saved and restored."""

    def __next__(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class WarmupSchedule:
    """Linear warmup from 0 to lr over warmup_steps, then constant (RECIPE §4) or a cosine decay to min_lr_ratio."""

    def __init__(self, lr: float, warmup_steps: int, decay: str = "constant", total_steps: int = 1,
                 min_lr_ratio: float = 0.0):
        self.base_lr = lr
        self.warmup_steps = warmup_steps
        self.decay, self.total_steps, self.min_lr_ratio = decay, total_steps, min_lr_ratio

    def __call__(self, step: int) -> float:
        """The lr of optimiser step `step` (1-based): step 1 of 1000 warmup steps gets lr/1000."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        if self.decay == "constant":
            return self.base_lr
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, max(0, step - self.warmup_steps) / span)
        floor = self.base_lr * self.min_lr_ratio
        return floor + (self.base_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def state_dict(self) -> dict[str, Any]:
        state = {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps}
        if self.decay != "constant":  # constant schedules keep the state older checkpoints recorded
            state |= {"decay": self.decay, "total_steps": self.total_steps, "min_lr_ratio": self.min_lr_ratio}
        return state


class EMA:
    """Exponential moving average of a module's floating-point weights, kept in fp32."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value.float(), 1.0 - self.decay)  # ema += (1-d)(w - ema)
            else:  # integer buffers (counters) follow the model
                self.shadow[key].copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            self.shadow[key].copy_(value)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar across ranks (a collective: every rank must call it at the same step)."""
    value = value.detach().float().reshape(1)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return float(value.item())


class Trainer:
    """Runs cfg.steps optimiser steps with accumulation, clipping, EMA, metrics, checkpoints and auto-resume."""

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        data: StatefulData,
        engine: Engine,
        checkpointer: Checkpointer,
        tracker: Any,
        info: DistInfo | None = None,
    ):
        if engine.module is not model:
            raise ValueError("Trainer: `engine` must wrap `model` (build it with build_engine(cfg, model, info))")
        self.cfg = cfg
        self.model = model
        self.data = data
        self.engine = engine
        self.checkpointer = checkpointer
        self.info = info or DistInfo(rank=checkpointer.rank, world_size=checkpointer.world_size)
        self.schedule = WarmupSchedule(cfg.lr, cfg.warmup_steps, cfg.decay, cfg.steps, cfg.min_lr_ratio)
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        self.metrics = MetricLogger(tracker, cfg.log_every, cfg.steps, self.info.rank == 0, cfg.progress,
                                    engine.device)
        if self.info.rank == 0 and tracker is not None:  # what cfg.precision came to on this device
            tracker.set_tags({"reelforge.precision": "bf16" if engine.bf16 else "fp32"})
        self.step = 0
        self.resumed_from: int | None = None
        self.history: dict[str, Any] = {}  # survives resumes: loss_first, loss_last
        self.losses: dict[int, float] = {}  # global-mean loss of each logged step in this process

    # ---- override points --------------------------------------------------------------------------------
    def compute_loss(self, batch: Any) -> torch.Tensor:
        """Loss of one micro-batch; the default regresses `targets` from `inputs` with MSE."""
        inputs, targets = batch
        return F.mse_loss(self.engine.model(inputs).float(), targets.float())

    def forward_backward_step(self, batch: Any, last: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch; gradients are synchronised only when `last`."""
        batch = self.engine.to_device(batch)
        with self.engine.accumulate(last):
            with self.engine.autocast():
                loss = self.compute_loss(batch)
            self.engine.backward(loss)
        return loss.detach()

    def train_step(self, step: int) -> dict[str, Any]:
        """One optimiser step over grad_accum_steps micro-batches; returns loss (tensor), grad_norm, lr."""
        lr = self.schedule(step)
        self.engine.set_lr(lr)
        accum = self.cfg.grad_accum_steps
        losses = [self.forward_backward_step(next(self.data), last=i == accum - 1) for i in range(accum)]
        grad_norm = self.engine.step()
        if self.ema is not None:
            self.ema.update(self.engine.module)
        return {"loss": torch.stack(losses).mean(), "grad_norm": grad_norm, "lr": lr}

    # ---- loop --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Trainer state beside the weights: LR schedule, sampler position, history."""
        return {"schedule": self.schedule.state_dict(), "sampler": self.data.state_dict(), "history": self.history}

    def resume(self) -> int | None:
        """Load the latest checkpoint if there is one; returns its step."""
        loaded = self.checkpointer.load(self.engine)
        if loaded is None:
            return None
        if loaded.state["schedule"] != self.schedule.state_dict():
            log.warning("LR schedule changed since %s: %s -> %s", loaded.path, loaded.state["schedule"],
                        self.schedule.state_dict())
        self.data.load_state_dict(loaded.state["sampler"])
        self.history = dict(loaded.state.get("history") or {})
        if self.ema is not None:
            if loaded.ema is None:
                raise ValueError(f"checkpoint {loaded.path} has no ema.pt but ema_decay is set")
            self.ema.load_state_dict(loaded.ema)
        self.step = self.resumed_from = loaded.step
        log.info("resumed from %s (step %d, saved by %d ranks)", loaded.path, loaded.step, loaded.world_size)
        return loaded.step

    def save(self) -> None:
        ema = self.ema.state_dict() if self.ema is not None else None
        self.checkpointer.save(self.step, self.engine, self.state_dict(), ema)

    def train(self) -> dict[str, Any]:
        """Resume if possible, train to cfg.steps; returns loss_first, loss_last, step, steps_run, resumed_from."""
        # model init already used cfg.seed; per-rank seeds make random ops (dropout, noise) differ across ranks
        seed_everything(self.cfg.seed + 1 + self.info.rank)
        self.resume()
        first = self.step + 1
        samples = self.cfg.batch_size * self.cfg.grad_accum_steps * self.info.world_size
        self.metrics.start(self.step)
        try:
            while self.step < self.cfg.steps:
                self.step += 1
                start = time.perf_counter()
                out = self.train_step(self.step)
                self.metrics.step_done(samples, time.perf_counter() - start)
                if self.metrics.should_log(self.step, first):
                    loss = mean_over_ranks(out["loss"])
                    self.losses[self.step] = loss
                    self.history.setdefault("loss_first", loss)  # step 1's loss, kept across resumes
                    self.history["loss_last"] = loss
                    self.metrics.log(self.step, loss, out["lr"], out["grad_norm"])
                stop = self.step == self.cfg.stop_after
                if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps or stop:
                    self.save()
                if stop:
                    raise SimulatedKill(f"stop_after={self.cfg.stop_after}: stopped after checkpoint {self.step}")
        finally:
            self.metrics.close()
        return {
            "loss_first": self.history.get("loss_first"),
            "loss_last": self.history.get("loss_last"),
            "step": self.step,
            "steps_run": self.step - first + 1,
            "resumed_from": self.resumed_from,
        }
