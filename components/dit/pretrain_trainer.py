"""PretrainTrainer: the DiT trainer plus the validation-loss grid as curves (val/loss/<res>x<frames>, val/loss/mean).

The grid is evaluated on the EMA weights when the stage keeps an EMA: those are what the tier exports and what
eval.loss scores, so the curves and eval.loss are one series; the raw weights under a constant learning rate swing
by up to 0.1 between two evaluations (bench/RESULTS.md, session 19).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from components.dit.objective import Objective
from components.dit.trainer import DiTTrainer
from components.dit.val_grid import GridBatches, GridResult, evaluate_grid


class PretrainTrainer(DiTTrainer):
    """Evaluates the grid at step 0 (the loaded weights), every `grid_every` steps and at the last step."""

    @property
    def grid_weights(self) -> str:
        return "ema" if self.ema is not None else "model"

    def __init__(self, *args: Any, grid: GridBatches | None, grid_objective: Objective, grid_seed: int,
                 grid_every: int | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.grid = grid
        self.grid_objective = grid_objective
        self.grid_seed = grid_seed
        self.grid_every = grid_every

    def train_step(self, step: int) -> dict[str, Any]:
        if step == 1 and "val_grid" not in self.history:
            self.validate_grid(0)
        out = super().train_step(step)
        if step == self.cfg.steps or (self.grid_every and step % self.grid_every == 0):
            self.validate_grid(step)
        return out

    def validate_grid(self, step: int) -> GridResult | None:
        """Rank 0: the grid with the plain module (no collectives), logged at `step` and kept in the history."""
        if self.info.rank != 0 or self.grid is None:
            return None
        module = self.engine.module
        with swapped_in(module, self.ema.state_dict() if self.ema is not None else None), self.engine.autocast():
            result = evaluate_grid(self.grid_objective, module, self.grid, self.grid_seed, self.engine.to_device)
        self.tracker.log_metrics(result.metrics(), step=step)
        self.history.setdefault("val_grid", []).append({"step": step, "loss": result.loss, "mean": result.mean})
        self.history["val_grid_t"] = result.t
        return result


@contextmanager
def swapped_in(module: torch.nn.Module, state: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """The module with `state`'s weights for the block, its own (bit for bit) after it; None leaves it alone."""
    if state is None:
        yield
        return
    own = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    try:
        yield
    finally:
        module.load_state_dict(own)
