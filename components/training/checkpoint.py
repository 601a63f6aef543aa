"""Checkpointer: atomic, resumable training checkpoints (model, EMA, optimiser, schedule, sampler, RNG per rank).

Layout of ctx.checkpoint_dir:
    latest                      text file naming the newest complete checkpoint; replaced only after a full save
    step_00000200/
        meta.json               step, world size, strategy; written last, so its presence marks a complete save
        model.pt  ema.pt        full weights (replicated under DDP and ZeRO-2, so rank 0's copy is the whole model)
        state.pt                trainer state: step, LR schedule, sampler state, history
        optimizer.pt            DDP: the (replicated) AdamW state
        deepspeed/              DeepSpeed: its own files, one ZeRO optimizer partition per rank
        rng/rank_00000.pt       python, numpy, torch CPU and CUDA generator states of each rank
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from components.training.engine import Engine

log = logging.getLogger(__name__)

LATEST = "latest"
META = "meta.json"
TMP_PREFIX = ".tmp-"


def step_name(step: int) -> str:
    return f"step_{step:08d}"


def rng_state() -> dict[str, Any]:
    """Generator states of python, numpy, torch CPU and (when present) every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured, so the next random numbers repeat."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_safetensors(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write consolidated weights as safetensors (contiguous CPU copies; shared storage is split)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read weights written by export_safetensors."""
    from safetensors.torch import load_file

    return load_file(str(path))


@dataclass
class Loaded:
    """What Checkpointer.load restored into the engine, and what it hands back to the trainer."""

    path: Path
    step: int
    state: dict[str, Any]  # trainer state: schedule, sampler, history …
    ema: dict[str, torch.Tensor] | None
    world_size: int  # world size the checkpoint was written with


class Checkpointer:
    """Saves and restores training checkpoints under one folder; every rank calls save and load."""

    def __init__(self, folder: Path, keep: int = 2, rank: int = 0, world_size: int = 1):
        self.folder = Path(folder)
        self.keep = keep
        self.rank = rank
        self.world_size = world_size

    # ---- save -------------------------------------------------------------------------------------------
    def save(
        self,
        step: int,
        engine: Engine,
        state: dict[str, Any],
        ema: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Write checkpoint `step` atomically; `latest` moves to it only once every rank has finished."""
        final = self.folder / step_name(step)
        tmp = self.folder / f"{TMP_PREFIX}{step_name(step)}"
        if self.rank == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(f"{TMP_PREFIX}*"):  # leftovers of a save that died
                shutil.rmtree(stale, ignore_errors=True)
            (tmp / "rng").mkdir(parents=True)
        _barrier()
        torch.save(rng_state(), tmp / "rng" / f"rank_{self.rank:05d}.pt")
        engine.save_optimizer(tmp, self.rank)
        if self.rank == 0:
            torch.save(engine.module_state_dict(), tmp / "model.pt")
            if ema is not None:
                torch.save(ema, tmp / "ema.pt")
            torch.save({"step": step, **state}, tmp / "state.pt")
        _barrier()
        if self.rank == 0:
            meta = {"step": step, "world_size": self.world_size, "strategy": engine.strategy, "time": time.time()}
            (tmp / META).write_text(json.dumps(meta, indent=2))
            if final.exists():  # the same step saved again (a resumed run that re-saves its last step)
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._point_latest(final.name)
            self._prune()
        _barrier()
        return final

    def _point_latest(self, name: str) -> None:
        tmp = self.folder / f"{TMP_PREFIX}{LATEST}"
        with open(tmp, "w") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / LATEST)

    def _prune(self) -> None:
        complete = sorted(p for p in self.folder.glob("step_*") if (p / META).exists())
        for old in complete[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    # ---- load -------------------------------------------------------------------------------------------
    def latest(self) -> Path | None:
        """The checkpoint `latest` names, or None when there is none yet."""
        pointer = self.folder / LATEST
        if not pointer.exists():
            return None
        path = self.folder / pointer.read_text().strip()
        if not (path / META).exists():
            raise FileNotFoundError(f"{pointer} names {path.name}, but {path / META} is missing (incomplete save?)")
        return path

    def load(self, engine: Engine, path: Path | None = None) -> Loaded | None:
        """Restore weights, optimiser and this rank's RNG from `path` (default: latest); None when nothing saved."""
        path = path or self.latest()
        if path is None:
            return None
        meta = json.loads((path / META).read_text())
        if meta["strategy"] != engine.strategy:
            raise ValueError(
                f"checkpoint {path} was written by strategy {meta['strategy']!r}; this run uses {engine.strategy!r}"
            )
        weights = torch.load(path / "model.pt", map_location=engine.device, weights_only=True)
        engine.module.load_state_dict(weights)
        engine.load_optimizer(path, saved_world_size=meta["world_size"])
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        ema_path = path / "ema.pt"
        ema = torch.load(ema_path, map_location="cpu", weights_only=True) if ema_path.exists() else None
        rng_path = path / "rng" / f"rank_{self.rank:05d}.pt"
        if rng_path.exists():
            set_rng_state(torch.load(rng_path, map_location="cpu", weights_only=False))
        else:  # a rank that did not exist when the checkpoint was written keeps its seeded generators
            log.warning("checkpoint %s has no RNG state for rank %d (saved with world size %d)",
                        path, self.rank, meta["world_size"])
        return Loaded(path=path, step=int(state.pop("step")), state=state, ema=ema, world_size=meta["world_size"])


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
