"""One interface over DDP and DeepSpeed ZeRO-2 (deepspeed_engine.py), so the Trainer never branches on strategy."""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from components.training.config import TrainConfig

OPTIMIZER_FILE = "optimizer.pt"

log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process sits: rank, world size, local rank (from the StageContext)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def pick_device(local_rank: int) -> torch.device:
    """cuda:<local_rank> when CUDA is present, else cpu."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): oneDNN then runs bf16 convolutions and
    matmuls about twice as fast as fp32; elsewhere it converts to fp32 and bf16 only costs time."""
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


def use_bf16(cfg: TrainConfig, device: torch.device, strategy: str = "ddp") -> bool:
    """Whether to train in bf16 mixed precision.

    CUDA: for precision auto and bf16. CPU: only for precision bf16, under DDP (autocast with fp32 weights; DeepSpeed's
    CPU bf16 path is not ours), and only where the CPU has bf16 arithmetic; anywhere else fp32, with a log line.
    """
    if cfg.precision == "fp32":
        return False
    if device.type == "cuda":
        return True
    if cfg.precision != "bf16":
        return False
    if strategy != "ddp":
        log.info("precision bf16 asked for, training in fp32: DeepSpeed on CPU")
        return False
    if not cpu_has_native_bf16():
        log.info("precision bf16 asked for, training in fp32: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX)")
        return False
    return True


class Engine:
    """What the Trainer sees: the callable model, the unwrapped module, and backward/step/checkpoint hooks."""

    model: nn.Module  # call this for forward (DDP wrapper or DeepSpeed engine)
    module: nn.Module  # the plain module: EMA, export, evaluation
    device: torch.device
    bf16: bool
    strategy: str

    def accumulate(self, last: bool) -> contextlib.AbstractContextManager:
        """Context for one micro-batch's forward+backward; gradients sync only on the last one."""
        raise NotImplementedError

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for the forward pass."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        raise NotImplementedError

    def step(self) -> float:
        """Clip, apply the optimiser, zero the grads; returns the global grad norm before clipping."""
        raise NotImplementedError

    def set_lr(self, lr: float) -> None:
        raise NotImplementedError

    def lr(self) -> float:
        raise NotImplementedError

    def to_device(self, batch: Any) -> Any:
        """Move a batch (tensor, tuple, list or dict of them) to the engine's device."""
        return map_tensors(batch, lambda t: t.to(self.device, non_blocking=True))

    def module_state_dict(self) -> dict[str, torch.Tensor]:
        """Full weights of the plain module (replicated on every rank under DDP and ZeRO-2)."""
        return self.module.state_dict()

    def save_optimizer(self, folder: Path, rank: int) -> None:
        """Write the optimiser state into `folder`; every rank calls it."""
        raise NotImplementedError

    def load_optimizer(self, folder: Path, saved_world_size: int) -> None:
        """Read what save_optimizer wrote (by `saved_world_size` ranks); every rank calls it after the weights."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine created (a process group it had to start)."""


class DDPEngine(Engine):
    """torch DDP (plain module when world size is 1) with a torch AdamW."""

    strategy = "ddp"

    def __init__(self, cfg: TrainConfig, model: nn.Module, info: DistInfo):
        self.cfg = cfg
        self.device = pick_device(info.local_rank)
        self.bf16 = use_bf16(cfg, self.device)
        self.module = model.to(self.device)
        distributed = dist.is_initialized() and info.world_size > 1
        if distributed:
            ids = [info.local_rank] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        else:
            self.model = self.module
        self.optimizer = torch.optim.AdamW(
            self.module.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )

    def accumulate(self, last: bool) -> contextlib.AbstractContextManager:
        if last or not isinstance(self.model, nn.parallel.DistributedDataParallel):
            return contextlib.nullcontext()
        return self.model.no_sync()

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def backward(self, loss: torch.Tensor) -> None:
        # DDP averages over ranks; dividing by the accumulation count averages over micro-batches too
        (loss / self.cfg.grad_accum_steps).backward()

    def step(self) -> float:
        params = [p for p in self.module.parameters() if p.grad is not None]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def save_optimizer(self, folder: Path, rank: int) -> None:
        if rank == 0:  # replicated under DDP: one copy is the whole state
            torch.save(self.optimizer.state_dict(), folder / OPTIMIZER_FILE)

    def load_optimizer(self, folder: Path, saved_world_size: int) -> None:
        path = folder / OPTIMIZER_FILE  # replicated state: any world size can read it
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {folder}: no {OPTIMIZER_FILE} (was it written by strategy ddp?)")
        self.optimizer.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))


def build_engine(cfg: TrainConfig, model: nn.Module, info: DistInfo) -> Engine:
    """The engine for cfg.strategy around `model`."""
    if cfg.strategy == "deepspeed":
        from components.training.deepspeed_engine import DeepSpeedEngine  # imports deepspeed: only when asked

        return DeepSpeedEngine(cfg, model, info)
    return DDPEngine(cfg, model, info)


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply `fn` to every tensor of a batch (tensor, tuple, list or dict of them), keeping the structure."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, dict):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_tensors(v, fn) for v in batch)
    return batch


