"""Rectified flow (Open-Sora 1.2): straight paths between data and noise, velocity prediction.

Convention, shared with sampler.euler_sample: x_t = (1 − t)·x0 + t·ε with t in [0, 1] (t = 1 is noise), and the
model predicts v = x0 − ε = −dx_t/dt, so one Euler step from t to t − dt is x ← x + v·dt. Open-Sora writes the
same path with its timepoint 1 − t; the model sees timestep t·num_timesteps (0…1000) like DDPM's integer steps,
so PixArt's timestep embedder carries over unchanged.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from models.diffusion.masks import masked_mean_flat
from models.diffusion.timesteps import ShiftConfig, TimestepSamplerConfig, sample_timesteps, shift_timesteps


@dataclass(frozen=True)
class RectifiedFlowConfig:
    """Training-time settings of rectified flow."""

    num_timesteps: int = 1000  # model timestep = t · num_timesteps
    timesteps: TimestepSamplerConfig = field(default_factory=TimestepSamplerConfig)
    use_shift: bool = True  # resolution/length-aware shift of training t (RECIPE §4)
    shift: ShiftConfig = field(default_factory=ShiftConfig)
    shared_noise: float = 0.0  # share of the noise variance common to all frames (frame_noise); 0: i.i.d. noise
    motion_weight: float = 0.0  # weight of motion_loss added to the training loss; 0: the plain velocity MSE


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, 1, …) to broadcast against `like`."""
    return t.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x0 + t·noise for per-sample t (B,) in [0, 1]."""
    tb = _per_sample(t, x0)
    return (1 - tb) * x0 + tb * noise


def frame_noise(
    shape: tuple[int, ...],
    shared: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard normal noise of `shape`; for videos (B, C, T, H, W) optionally correlated across frames.

    shared = s > 0 mixes one (B, C, 1, H, W) draw into every frame: ε_f = √s·ε_common + √(1 − s)·ε_f, still
    N(0, 1) per element (PYoCo's mixed noise prior, Ge et al. 2023). Frames then start from the same layout, so a
    small model places an object once and moves it instead of drawing it anew in every latent frame. The i.i.d.
    draw comes first, so shared = 0 gives exactly torch.randn(shape, generator=generator).
    """
    if not 0.0 <= shared < 1.0:
        raise ValueError(f"frame_noise: shared must be in [0, 1), got {shared}")
    noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if shared == 0.0 or len(shape) != 5 or shape[2] == 1:
        return noise
    common = torch.randn((*shape[:2], 1, *shape[3:]), generator=generator, device=device, dtype=dtype)
    return shared**0.5 * common + (1.0 - shared) ** 0.5 * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target v = x0 − noise."""
    return x0 - noise


def take_velocity(output: torch.Tensor, channels: int) -> torch.Tensor:
    """The velocity part of a model output: the first `channels` of a learn_sigma (2·C) output, else all of it."""
    if output.shape[1] == 2 * channels:
        return output[:, :channels]
    if output.shape[1] != channels:
        raise ValueError(f"model output has {output.shape[1]} channels, expected {channels} or {2 * channels}")
    return output


def velocity_loss(
    pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, x_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample MSE (B,) between predicted and true velocity, averaged over noised frames only."""
    return masked_mean_flat((pred.float() - velocity_target(x0, noise).float()) ** 2, x_mask)


def motion_loss(
    pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, x_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample MSE (B,) of the frame-to-frame change of the velocity error, over pairs of noised frames.

    With e = pred − target per latent frame, the mean of (e_{f+1} − e_f)²: an error shared by all frames costs
    nothing, one independent between frames (an object drawn anew in every frame) twice the plain MSE, one that
    flips sign from frame to frame four times. Added to the velocity MSE it weights the temporal
    high-frequency part of the error by 1 + w·4·sin²(ω/2), ω the temporal frequency. Images and one-frame
    latents give 0.
    """
    if x0.dim() != 5 or x0.shape[2] < 2:
        return torch.zeros(x0.shape[0], device=x0.device, dtype=torch.float32)
    error = pred.float() - velocity_target(x0, noise).float()
    change = (error[:, :, 1:] - error[:, :, :-1]) ** 2  # (B, C, T-1, H, W)
    pairs = None if x_mask is None else x_mask[:, 1:] & x_mask[:, :-1]
    return masked_mean_flat(change, pairs)


class RectifiedFlow:
    """Draws t, noises latents and computes the rectified-flow loss of a model."""

    def __init__(self, cfg: RectifiedFlowConfig = RectifiedFlowConfig()) -> None:
        self.cfg = cfg

    def sample_t(
        self,
        n: int,
        ratio: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Training times (n,) in (0, 1), shifted by `ratio` (scalar or (n,)) when use_shift is on."""
        t = sample_timesteps(n, self.cfg.timesteps, generator=generator, device=device)
        if self.cfg.use_shift and ratio is not None:
            t = shift_timesteps(t, torch.as_tensor(ratio, device=t.device, dtype=t.dtype))
        return t

    def training_losses(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        model_kwargs: dict | None = None,
        x_mask: torch.Tensor | None = None,
        ratio: float | torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per sample: {"loss": (B,), "mse": (B,), "t": (B,)}; model(x_t, timestep, **model_kwargs[, x_mask=...]).

        "loss" is what training minimises (the velocity MSE plus motion_weight · motion_loss), "mse" the plain
        velocity MSE (the validation loss).

        x0 (B, C, …); with x_mask (B, T) over the frames of a (B, C, T, H, W) x0, given frames (False) stay clean
        and the model is told which they are; the loss averages over noised frames only.
        """
        b = x0.shape[0]
        if t is None:
            t = self.sample_t(b, ratio=ratio, generator=generator, device=x0.device)
        if noise is None:
            noise = frame_noise(x0.shape, self.cfg.shared_noise, generator, x0.device, x0.dtype)
        x_t = add_noise(x0, noise, t)
        kwargs = dict(model_kwargs or {})
        if x_mask is not None:
            if x0.dim() != 5 or x_mask.shape != (b, x0.shape[2]):
                raise ValueError(
                    f"x_mask must be (B, T) for x0 (B, C, T, H, W); got {tuple(x_mask.shape)} for {tuple(x0.shape)}"
                )
            x_t = torch.where(x_mask[:, None, :, None, None], x_t, x0)
            kwargs["x_mask"] = x_mask
        out = model(x_t, t * self.cfg.num_timesteps, **kwargs)
        pred = take_velocity(out, x0.shape[1])
        mse = velocity_loss(pred, x0, noise, x_mask)
        if not self.cfg.motion_weight:
            return {"loss": mse, "mse": mse, "t": t}
        return {"loss": mse + self.cfg.motion_weight * motion_loss(pred, x0, noise, x_mask), "mse": mse, "t": t}
