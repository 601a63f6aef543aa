"""VAETrainer: the shared Trainer with the VAE's loss (mixed lengths), per-term metrics and validation media."""
from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.distributed as dist

from components.training.perceptual import Perceptual
from components.training.trainer import Trainer
from components.training.vae_config import VAEStageConfig
from components.training.vae_loss import STAGE_TERMS, micro_batch_loss
from components.training.vae_validation import Validator

log = logging.getLogger(__name__)


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of a tensor over ranks (a collective: every rank calls it at the same step)."""
    values = values.detach().double().cpu()
    if dist.is_initialized() and dist.get_world_size() > 1:
        backend_device = torch.device("cuda", torch.cuda.current_device()) \
            if dist.get_backend() == "nccl" else torch.device("cpu")
        moved = values.to(backend_device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        values = moved.cpu()
    return values


class VAETrainer(Trainer):
    """Overrides compute_loss (mixed-length micro-batches), train_step (term metrics, validation) and adds validate."""

    def __init__(self, *args: Any, stage: int, perceptual: Perceptual, validator: Validator | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cfg: VAEStageConfig
        self.stage = stage
        self.perceptual = perceptual
        self.validator = validator
        self.tracker = self.metrics.tracker
        self.terms = STAGE_TERMS[stage]
        self._step_terms: list[dict[str, torch.Tensor]] = []
        self.val_metrics: dict[str, float] = {}

    # ---- override points --------------------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The stage's loss over the real frames of every sample (see vae_loss.py)."""
        cfg = self.cfg
        terms = micro_batch_loss(self.stage, self.engine.model, batch, self.perceptual.module,
                                 cfg.perceptual_weight, cfg.kl_weight, cfg.mse_weight)
        self._step_terms.append({k: v.detach() for k, v in terms.items()})
        return terms["loss"]

    def train_step(self, step: int) -> dict[str, Any]:
        self._step_terms = []
        out = super().train_step(step)
        if self.metrics.should_log(step, (self.resumed_from or 0) + 1):
            self._log_terms(step)
        if self.validator is not None and (step % self.cfg.val_every == 0 or step == self.cfg.steps):
            self.validate(step)
        return out

    # ---- VAE additions ----------------------------------------------------------------------------------
    def _log_terms(self, step: int) -> None:
        """Mean of each loss term over this step's micro-batches and ranks, the log-variance, corrupt clips."""
        rows = []
        for key in self.terms:  # a term a rank did not see this step (identity without images) counts 0 times
            values = [t[key].float().cpu() for t in self._step_terms if key in t]
            rows.append([float(sum(values)) if values else 0.0, float(len(values))])
        corrupt = len(self.data.take_corrupt()) if hasattr(self.data, "take_corrupt") else 0
        rows.append([float(corrupt), 1.0])
        totals = sum_over_ranks(torch.tensor(rows))
        self.history["corrupt_skipped"] = int(self.history.get("corrupt_skipped", 0) + totals[-1, 0].item())
        metrics = {f"train/{k}": totals[i, 0].item() / totals[i, 1].item()
                   for i, k in enumerate(self.terms) if totals[i, 1] > 0}
        metrics["train/logvar"] = float(self.engine.module.logvar().detach().float())
        metrics["data/corrupt_skipped"] = float(self.history["corrupt_skipped"])
        if self.info.rank == 0:
            self.tracker.log_metrics(metrics, step=step)
        self.history["terms_last"] = {k: v for k, v in metrics.items() if math.isfinite(v)}

    def validate(self, step: int) -> dict[str, float]:
        """Rank 0 reconstructs the fixed batch with the plain module (no collectives: other ranks go on)."""
        if self.info.rank != 0:
            return {}
        module = self.engine.module
        was_training = module.training
        module.eval()
        try:
            self.val_metrics = self.validator.run(module.vae, step, self.engine.to_device, self.engine.autocast)
        finally:
            module.train(was_training)
        self.tracker.log_metrics(self.val_metrics, step=step)
        log.info("step %d validation: %s", step, " ".join(f"{k} {v:.4g}" for k, v in self.val_metrics.items()))
        self.history.setdefault("val_first", self.val_metrics)
        self.history["val_last"] = self.val_metrics
        return self.val_metrics
