"""The DiT's diffusion objective behind one interface: PixArt's DDPM (stage0-2) or rectified flow (adapt3+).

Training loss, the fixed-batch validation loss (averaged over equidistant timesteps, RECIPE §8) and sampling,
so the trainer and the sample writer never branch on the diffusion kind.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from components.dit.config import DiffusionConfig
from models.diffusion import (DDIMSamplerConfig, DDPMConfig, EulerSamplerConfig, GaussianDiffusion, RectifiedFlow,
                              RectifiedFlowConfig, ShiftConfig, TimestepSamplerConfig, ddim_sample, euler_sample,
                              frame_noise, guided_denoiser, shift_ratio)

Model = Callable[..., torch.Tensor]
CONDITIONS = ("y", "mask", "fps", "height", "width")  # batch keys the model reads besides x and the timestep


def model_kwargs(batch: dict[str, Any]) -> dict[str, Any]:
    """The conditioning arguments of STDiT.forward taken from a batch."""
    return {key: batch[key] for key in CONDITIONS}


class Objective:
    """Loss, validation loss and sampler of one diffusion kind, built from the stage's DiffusionConfig."""

    def __init__(self, cfg: DiffusionConfig, learn_sigma: bool):
        self.cfg = cfg
        self.shift = ShiftConfig(base_resolution=cfg.shift_base_resolution)
        self.ddpm: GaussianDiffusion | None = None
        self.rflow: RectifiedFlow | None = None
        if cfg.kind == "ddpm":
            self.ddpm = GaussianDiffusion.from_config(
                DDPMConfig(cfg.num_timesteps, cfg.beta_start, cfg.beta_end, learn_sigma=learn_sigma))
        else:
            sampler = TimestepSamplerConfig(cfg.timesteps, cfg.logit_mean, cfg.logit_std)
            self.rflow = RectifiedFlow(RectifiedFlowConfig(cfg.num_timesteps, sampler, cfg.shift, self.shift,
                                                           cfg.shared_noise, cfg.motion_weight))

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """Starting / validation noise of `shape` (CPU), drawn as training draws it (diffusion.shared_noise; the
        config refuses a share for DDPM, so DDPM draws i.i.d. noise)."""
        return frame_noise(tuple(shape), self.cfg.shared_noise, generator)

    def ratio(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Per-sample resolution/length shift ratio (B,) when the shift is on, else None."""
        if self.rflow is None or not self.cfg.shift:
            return None
        ratio = shift_ratio(batch["height"].cpu(), batch["width"].cpu(), batch["num_frames"].cpu(), self.shift)
        return ratio.to(device=batch["x0"].device, dtype=torch.float32)

    def losses(self, model: Model, batch: dict[str, Any], x_mask: torch.Tensor | None = None,
               t: torch.Tensor | None = None, noise: torch.Tensor | None = None, eval_terms: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample loss (B,); eval_terms: the plain MSE alone (DDPM's eps MSE without the variance bound,
        rectified flow's velocity MSE without the motion term), the validation loss of RECIPE §8."""
        x0, kwargs = batch["x0"], model_kwargs(batch)
        if self.ddpm is not None:
            terms = self.ddpm.training_losses(model, x0, kwargs, x_mask, t=t, noise=noise, generator=generator)
            return terms["mse"] if eval_terms else terms["loss"]
        terms = self.rflow.training_losses(model, x0, kwargs, x_mask, ratio=self.ratio(batch), t=t, noise=noise,
                                           generator=generator)
        return terms["mse"] if eval_terms else terms["loss"]

    def eval_timesteps(self, batch_size: int, device: torch.device) -> list[torch.Tensor]:
        """cfg.eval_points equidistant timesteps (bin centres), each as a (B,) tensor."""
        n = self.cfg.eval_points
        centres = [(i + 0.5) / n for i in range(n)]
        if self.ddpm is not None:
            steps = self.ddpm.num_timesteps
            return [torch.full((batch_size,), min(steps - 1, int(c * steps)), dtype=torch.long, device=device)
                    for c in centres]
        return [torch.full((batch_size,), c, dtype=torch.float32, device=device) for c in centres]

    @torch.no_grad()
    def eval_loss(self, model: Model, batches: list[dict[str, Any]], seed: int) -> float:
        """Per-sample loss averaged over the equidistant timesteps and every sample, with fixed noise per batch."""
        gen = torch.Generator().manual_seed(seed)
        total, count = 0.0, 0
        for batch in batches:
            x0 = batch["x0"]
            noise = self.noise(x0.shape, gen).to(x0.device, x0.dtype)
            per_t = [self.losses(model, batch, t=t, noise=noise, eval_terms=True).float()
                     for t in self.eval_timesteps(x0.shape[0], x0.device)]
            total += float(torch.stack(per_t).mean(0).sum())  # (points, B) -> (B,) -> summed over samples
            count += x0.shape[0]
        return total / count

    @torch.no_grad()
    def sample(self, model: Model, noise: torch.Tensor, cond: dict[str, Any], y_null: torch.Tensor, steps: int,
               cfg_scale: float) -> torch.Tensor:
        """Latents from noise (B, C, t, h, w) with classifier-free guidance; cond holds y, mask, fps, height, width."""
        extra = {k: cond[k] for k in ("fps", "height", "width")}
        fn = guided_denoiser(model, cond["y"], y_null, cfg_scale, cond["mask"], **extra)
        if self.ddpm is not None:
            return ddim_sample(fn, noise, self.ddpm, DDIMSamplerConfig(num_steps=steps, eta=0.0, cfg_scale=cfg_scale))
        sampler = EulerSamplerConfig(num_steps=steps, cfg_scale=cfg_scale, num_timesteps=self.cfg.num_timesteps,
                                     use_shift=self.cfg.shift)
        ratio = self.ratio({**cond, "x0": noise}) if self.cfg.shift else 1.0
        return euler_sample(fn, noise, sampler, ratio=ratio)
