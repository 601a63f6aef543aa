"""DeepSpeed ZeRO-2 behind the Engine interface, and the DeepSpeed JSON our typed TrainConfig stands for."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from components.training.config import TrainConfig
from components.training.engine import DistInfo, Engine, map_tensors, pick_device, use_bf16

DEEPSPEED_TAG = "deepspeed"  # sub-folder of our checkpoint that holds DeepSpeed's own (partitioned) files
UNIVERSAL_DIR = "deepspeed_universal"  # cached universal conversion, made when the world size changed


def deepspeed_config(cfg: TrainConfig, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed JSON our typed config stands for (infra/deepspeed/zero2.json is the full-profile copy)."""
    ds = cfg.deepspeed
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.grad_clip,
        "steps_per_print": 2**31 - 1,  # our MetricLogger reports; DeepSpeed's own prints would interleave
        "wall_clock_breakdown": ds.wall_clock_breakdown,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": list(cfg.betas),
                "eps": cfg.eps,
                "weight_decay": cfg.weight_decay,
                "torch_adam": ds.torch_adam,
                "adam_w_mode": True,
            },
        },
        "bf16": {"enabled": bf16},
        "zero_optimization": {
            "stage": 2,
            "overlap_comm": ds.overlap_comm,
            "contiguous_gradients": ds.contiguous_gradients,
            "reduce_bucket_size": ds.reduce_bucket_size,
            "allgather_bucket_size": ds.allgather_bucket_size,
        },
    }


class DeepSpeedEngine(Engine):
    """DeepSpeed ZeRO-2 (optimizer states and gradients partitioned, weights replicated)."""

    strategy = "deepspeed"

    def __init__(self, cfg: TrainConfig, model: nn.Module, info: DistInfo):
        import deepspeed

        self.cfg = cfg
        self.device = pick_device(info.local_rank)
        self.bf16 = use_bf16(cfg, self.device, self.strategy)
        if not dist.is_initialized():
            # in-process (world 1) runs have no process group; DeepSpeed needs one, a local store is enough.
            # It stays for the life of the process: DeepSpeed caches its groups module-wide, so a destroyed
            # and re-created group would break the next engine built in this process.
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        # DeepSpeed reads LOCAL_RANK from the environment (torchrun sets it; in-process runs do not)
        os.environ.setdefault("LOCAL_RANK", str(info.local_rank))
        self.config = deepspeed_config(cfg, self.bf16)
        # DeepSpeed broadcasts and flattens parameters as plain row-major buffers: NHWC (channels-last) weights,
        # such as the VAE's 2D convolutions, fail its byte views, so they go back to the default layout here
        model = model.to(self.device, memory_format=torch.contiguous_format)
        self.model, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=self.config)
        self.module = self.model.module

    def accumulate(self, last: bool) -> contextlib.AbstractContextManager:
        # ZeRO-2 partitions gradients as they arrive, so there is no no_sync; the boundary flag tells it when to step
        self.model.set_gradient_accumulation_boundary(last)
        return contextlib.nullcontext()

    def to_device(self, batch: Any) -> Any:
        # DeepSpeed's bf16 mode casts the module itself, so floating inputs must match it
        dtype = torch.bfloat16 if self.bf16 else None

        def move(t: torch.Tensor) -> torch.Tensor:
            t = t.to(self.device, non_blocking=True)
            return t.to(dtype) if dtype is not None and t.is_floating_point() else t

        return map_tensors(batch, move)

    def backward(self, loss: torch.Tensor) -> None:
        self.model.backward(loss)  # scales by 1/gradient_accumulation_steps itself

    def step(self) -> float:
        self.model.step()
        self.model.zero_grad()
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def set_lr(self, lr: float) -> None:
        for group in self.model.optimizer.param_groups:
            group["lr"] = lr

    def lr(self) -> float:
        return float(self.model.optimizer.param_groups[0]["lr"])

    def save_optimizer(self, folder: Path, rank: int) -> None:
        # every rank writes its own ZeRO partition; DeepSpeed also stores the module copy (small next to Adam state)
        self.model.save_checkpoint(str(folder), tag=DEEPSPEED_TAG, client_state={}, save_latest=False)

    def load_optimizer(self, folder: Path, saved_world_size: int) -> None:
        if not (folder / DEEPSPEED_TAG).is_dir():
            raise FileNotFoundError(f"checkpoint {folder}: no {DEEPSPEED_TAG}/ (was it written by strategy ddp?)")
        load_dir = folder
        world_size = dist.get_world_size()
        if saved_world_size != world_size:
            # DeepSpeed 0.19 refuses partitioned optimizer state from another DP size; its universal format
            # (one file per parameter and state) re-partitions on load
            load_dir = universal_checkpoint(folder)
            # the flag behind `checkpoint.load_universal` in the JSON, set for this one load only
            self.model._config.load_universal_checkpoint = True
        try:
            path, _ = self.model.load_checkpoint(
                str(load_dir), tag=DEEPSPEED_TAG, load_optimizer_states=True, load_lr_scheduler_states=False
            )
        finally:
            self.model._config.load_universal_checkpoint = False
        if path is None:
            raise RuntimeError(f"DeepSpeed could not load {load_dir / DEEPSPEED_TAG}")

    def close(self) -> None:
        # free DeepSpeed's buffers (ZeRO partitions, hooks) before another engine is built in this process
        self.model.destroy()


def universal_checkpoint(folder: Path) -> Path:
    """DeepSpeed's universal form of the ZeRO files in folder/deepspeed, converted once by rank 0 and cached."""
    target = folder / UNIVERSAL_DIR
    if dist.get_rank() == 0 and not (target / DEEPSPEED_TAG).is_dir():
        tmp = folder / f".tmp-{UNIVERSAL_DIR}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder",
               str(folder / DEEPSPEED_TAG), "--output_folder", str(tmp / DEEPSPEED_TAG),
               "--num_extract_workers", "1", "--num_merge_workers", "1",
               "--inject_missing_state"]  # plain (non-Megatron) models carry no universal_checkpoint_info
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"converting {folder / DEEPSPEED_TAG} to a universal checkpoint failed:\n"
                               f"{done.stderr[-2000:]}")
        os.replace(tmp, target)
    dist.barrier()
    return target
