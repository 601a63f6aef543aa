"""DiTTrainer: the shared Trainer with the diffusion loss (frame masks included), validation loss and samples."""
from __future__ import annotations

from typing import Any

import torch

from components.dit.config import DiTStageConfig
from components.dit.objective import Objective
from components.dit.samples import SampleWriter
from components.training.trainer import Trainer, mean_over_ranks
from models.diffusion import MaskRatios, generate_masks

VAL_SEED_OFFSET = 7_919  # the validation noise is its own stream, apart from the training seed's


class DiTTrainer(Trainer):
    """Overrides forward_backward_step (diffusion loss on one bucket micro-batch) and train_step (val + samples)."""

    def __init__(self, *args: Any, objective: Objective, mask_ratios: MaskRatios | None,
                 eval_batches: list[dict[str, Any]], samples: SampleWriter | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cfg: DiTStageConfig
        self.objective = objective
        self.mask_ratios = mask_ratios
        self.eval_batches = eval_batches
        self.samples = samples
        self.tracker = self.metrics.tracker

    # ---- override points --------------------------------------------------------------------------------
    def forward_backward_step(self, batch: dict[str, Any], last: bool) -> torch.Tensor:
        """Noise the latents at random t (frame masks on videos), regress, backward; gradients sync when `last`."""
        batch = self.engine.to_device(batch)
        x_mask = self.frame_mask(batch["x0"])
        with self.engine.accumulate(last):
            with self.engine.autocast():
                loss = self.objective.losses(self.engine.model, batch, x_mask).mean()
            self.engine.backward(loss)
        return loss.detach()

    def train_step(self, step: int) -> dict[str, Any]:
        if step == 1 and "val_first" not in self.history:
            self.history["val_first"] = self.validate(0)  # the loaded weights, before any update
        out = super().train_step(step)
        if self.metrics.should_log(step, (self.resumed_from or 0) + 1):
            # the same collective the base loop makes on log steps: every rank reaches it
            self.history.setdefault("loss_curve", []).append([step, mean_over_ranks(out["loss"])])
        last = step == self.cfg.steps
        val_every, sample_every = self.cfg.val_every, self.cfg.sample.every
        if last or (val_every and step % val_every == 0):
            self.history["val_last"] = self.validate(step)
        if self.samples is not None and (last or (sample_every and step % sample_every == 0)):
            self.samples.write(self.engine.module, step, self.engine.to_device, self.engine.autocast)
        return out

    # ---- DiT additions ----------------------------------------------------------------------------------
    def frame_mask(self, x0: torch.Tensor) -> torch.Tensor | None:
        """x_mask (B, T) of the stage's mask preset for video latents; None for images or without masking."""
        if self.mask_ratios is None or x0.shape[2] == 1:
            return None
        # seeded from the global generator, which checkpoints save per rank: a resumed run draws the same masks
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        return generate_masks(x0.shape[0], x0.shape[2], self.mask_ratios, gen).to(x0.device)

    def validate(self, step: int) -> float | None:
        """Rank 0: the fixed batches' loss at equidistant timesteps, fixed noise, plain module (no collectives)."""
        if self.info.rank != 0:
            return None
        module = self.engine.module
        was_training = module.training
        module.eval()
        try:
            with self.engine.autocast():
                loss = self.objective.eval_loss(module, self.engine.to_device(self.eval_batches),
                                                self.cfg.seed + VAL_SEED_OFFSET)
        finally:
            module.train(was_training)
        self.tracker.log_metrics({"val/loss": loss}, step=step)
        self.history.setdefault("val_curve", []).append([step, loss])
        return loss
