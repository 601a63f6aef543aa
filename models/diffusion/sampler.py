"""Sampling loops: Euler for rectified flow, DDIM and ancestral DDPM; classifier-free guidance; given frames.

A denoiser is `fn(x, timestep, x_mask) -> output`, timestep (B,) in model units (0…1000). With x_mask (B, T)
over the frames of (B, C, T, H, W) latents, frames marked False are given: they start as, and after every step
are reset to, x_given, and the model is told which they are.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.diffusion.ddpm import GaussianDiffusion
from models.diffusion.rectified_flow import take_velocity
from models.diffusion.timesteps import shift_timesteps

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class EulerSamplerConfig:
    """Rectified-flow sampling (RECIPE §4): 30 Euler steps, CFG 7.0, shifted time grid."""

    num_steps: int = 30
    cfg_scale: float = 7.0
    num_timesteps: int = 1000
    use_shift: bool = True


@dataclass(frozen=True)
class DDIMSamplerConfig:
    """DDIM over a respaced DDPM schedule; eta = 0 is deterministic. PixArt samples with CFG 4.5."""

    num_steps: int = 100
    eta: float = 0.0
    cfg_scale: float = 4.5


def guided_denoiser(
    model: Callable[..., torch.Tensor],
    y: torch.Tensor,
    y_null: torch.Tensor,
    cfg_scale: float,
    text_mask: torch.Tensor | None = None,
    **model_kwargs: torch.Tensor | float | None,
) -> Denoiser:
    """Classifier-free guidance: one batched call on [cond; uncond], then out_u + s·(out_c − out_u).

    Guidance applies to the first C channels (velocity or eps); a learned variance half comes from the
    conditional pass (PixArt). Per-sample tensors in model_kwargs (fps, …) are repeated for the doubled batch.
    """

    def twice(v: torch.Tensor | float | None) -> torch.Tensor | float | None:
        return torch.cat([v, v]) if isinstance(v, torch.Tensor) and v.dim() > 0 else v

    def fn(x: torch.Tensor, timestep: torch.Tensor, x_mask: torch.Tensor | None) -> torch.Tensor:
        kwargs = {k: twice(v) for k, v in model_kwargs.items()}
        if x_mask is not None:
            kwargs["x_mask"] = twice(x_mask)
        out = model(
            torch.cat([x, x]), twice(timestep), torch.cat([y, y_null.to(y.dtype)]), mask=twice(text_mask), **kwargs
        )
        cond, uncond = out.chunk(2)
        c = x.shape[1]
        guided = uncond[:, :c] + cfg_scale * (cond[:, :c] - uncond[:, :c])
        return torch.cat([guided, cond[:, c:]], dim=1)

    return fn


def _keep_given(x: torch.Tensor, x_given: torch.Tensor | None, x_mask: torch.Tensor | None) -> torch.Tensor:
    """Reset the given frames (x_mask False) of x to x_given."""
    if x_mask is None:
        return x
    if x_given is None:
        raise ValueError("x_mask marks given frames but x_given is None")
    return torch.where(x_mask[:, None, :, None, None], x, x_given)


def rf_time_grid(num_steps: int, ratio: float | torch.Tensor = 1.0, use_shift: bool = True) -> torch.Tensor:
    """Times 1 = t_0 > … > t_N = 0 (N + 1,) or (B, N + 1) for per-sample ratios: uniform, then shifted."""
    t = 1.0 - torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    if not use_shift:
        return t
    r = torch.as_tensor(ratio, dtype=torch.float64)
    return shift_timesteps(t, r) if r.dim() == 0 else shift_timesteps(t[None], r[:, None])


@torch.no_grad()
def euler_sample(
    fn: Denoiser,
    noise: torch.Tensor,
    cfg: EulerSamplerConfig = EulerSamplerConfig(),
    ratio: float | torch.Tensor = 1.0,
    x_given: torch.Tensor | None = None,
    x_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = −v from t = 1 (noise) to 0 with Euler steps x ← x + v·(t_i − t_{i+1})."""
    b = noise.shape[0]
    grid = rf_time_grid(cfg.num_steps, ratio, cfg.use_shift).to(noise.device)
    grid = grid.expand(b, -1) if grid.dim() == 1 else grid  # (B, N + 1)
    x = _keep_given(noise, x_given, x_mask)
    for i in range(cfg.num_steps):
        t, t_next = grid[:, i], grid[:, i + 1]
        v = take_velocity(fn(x, (t * cfg.num_timesteps).to(noise.dtype), x_mask), x.shape[1])
        dt = (t - t_next).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))  # (B,) → (B, 1, …)
        x = _keep_given(x + v * dt, x_given, x_mask)
    return x


@torch.no_grad()
def ddim_sample(
    fn: Denoiser,
    noise: torch.Tensor,
    diffusion: GaussianDiffusion,
    cfg: DDIMSamplerConfig = DDIMSamplerConfig(),
    x_given: torch.Tensor | None = None,
    x_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDIM from pure noise over cfg.num_steps respaced steps of `diffusion` (the 1000-step training one)."""
    spaced = diffusion.respaced(cfg.num_steps)
    x = _keep_given(noise, x_given, x_mask)
    for i in reversed(range(spaced.num_timesteps)):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        out = fn(x, spaced.timestep_map.to(x.device)[t].to(x.dtype), x_mask)
        step_noise = None
        if cfg.eta > 0:
            step_noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = _keep_given(spaced.ddim_step(out, x, t, cfg.eta, step_noise), x_given, x_mask)
    return x


@torch.no_grad()
def ddpm_sample(
    fn: Denoiser,
    noise: torch.Tensor,
    diffusion: GaussianDiffusion,
    num_steps: int | None = None,
    x_given: torch.Tensor | None = None,
    x_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ancestral DDPM sampling with the model's variance, over num_steps respaced steps (all if None)."""
    spaced = diffusion.respaced(num_steps or diffusion.num_timesteps)
    x = _keep_given(noise, x_given, x_mask)
    for i in reversed(range(spaced.num_timesteps)):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        out = fn(x, spaced.timestep_map.to(x.device)[t].to(x.dtype), x_mask)
        step_noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = _keep_given(spaced.ddpm_step(out, x, t, step_noise), x_given, x_mask)
    return x
