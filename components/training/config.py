"""Typed training config shared by every training stage (smoke, VAE, DiT): strategy, optimiser, schedule, cadence."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.config import StageConfig


class DeepSpeedOptions(BaseModel):
    """ZeRO-2 knobs that have no DDP counterpart; the rest of the DeepSpeed JSON comes from TrainConfig."""

    model_config = ConfigDict(extra="forbid")
    overlap_comm: bool = True
    contiguous_gradients: bool = True
    reduce_bucket_size: int = Field(50_000_000, ge=1)
    allgather_bucket_size: int = Field(50_000_000, ge=1)
    # torch's AdamW instead of DeepSpeed's fused op: skips the C++ build and matches the DDP path bit for bit
    torch_adam: bool = False
    # log DeepSpeed's own step timings (wall_clock_breakdown) to each rank's log
    wall_clock_breakdown: bool = False


class TrainConfig(StageConfig):
    """Every hyperparameter the shared Trainer reads; training stages subclass this and add model/data fields."""

    strategy: Literal["ddp", "deepspeed"] = "ddp"
    steps: int = Field(100, ge=1)  # optimiser steps (each is grad_accum_steps micro-batches per rank)
    batch_size: int = Field(8, ge=1)  # micro-batch per rank
    grad_accum_steps: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)  # linear warmup from 0 to lr, then constant (RECIPE §4)
    decay: Literal["constant", "cosine"] = "constant"  # after warmup; cosine ends at lr * min_lr_ratio at `steps`
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0)  # max global grad norm; 0 disables clipping (the norm is still logged)
    ema_decay: float | None = Field(None, ge=0, lt=1)  # None: no EMA copy of the weights
    # "auto": bf16 on CUDA, fp32 on CPU. "bf16": bf16 on CUDA, and on a CPU with bf16 arithmetic (AVX512-BF16 or
    # AMX) under DDP as autocast over fp32 weights; fp32 elsewhere (DeepSpeed's bf16 mode is GPU only here)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)  # the last K complete checkpoints stay on disk
    # simulate a kill: raise right after this step's checkpoint is written (tests use it for resume)
    stop_after: int | None = Field(None, ge=1)
    progress: bool = True  # rich progress bar on rank 0
    deepspeed: DeepSpeedOptions = DeepSpeedOptions()

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.stop_after is not None and self.stop_after >= self.steps:
            raise ValueError(f"stop_after ({self.stop_after}) must be below steps ({self.steps})")
        return self
