"""DDPM as PixArt trains it (IDDPM): linear betas, eps prediction, learned-range variance, hybrid loss.

Integer timesteps 0 … N−1, t = N−1 is (almost) pure noise. With learn_sigma the model outputs 2·C channels:
eps and v in [−1, 1], the log-variance log σ² = frac·log β_t + (1 − frac)·log β̃_t with frac = (v + 1)/2.
The loss is the eps MSE plus the variational bound term, whose mean is computed from a frozen eps so the
bound trains the variance only (Nichol & Dhariwal 2021). Schedules are float64; results are cast to x's dtype.
Given frames (x_mask False) stay exactly x0; Open-Sora's IDDPM noises them to step 0 (a 1% noise), a
difference we drop so DDPM and rectified flow treat given frames alike.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.diffusion.masks import masked_mean_flat


@dataclass(frozen=True)
class DDPMConfig:
    """PixArt's diffusion: 1000 linear steps β from 1e-4 to 0.02, eps prediction, learned-range variance."""

    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    learn_sigma: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"DDPMConfig needs 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if self.num_timesteps < 2:
            raise ValueError(f"DDPMConfig.num_timesteps must be >= 2, got {self.num_timesteps}")


def linear_betas(cfg: DDPMConfig) -> torch.Tensor:
    """IDDPM's linear schedule; the 1000/N factor keeps the total noise level when N differs from 1000."""
    scale = 1000.0 / cfg.num_timesteps
    return torch.linspace(scale * cfg.beta_start, scale * cfg.beta_end, cfg.num_timesteps, dtype=torch.float64)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of Φ used by IDDPM's decoder likelihood."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of x in [−1, 1] under a Gaussian discretised into 256 bins (IDDPM's decoder at t = 0)."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


class GaussianDiffusion:
    """Schedule-derived quantities and the per-step math of DDPM (q_sample, posterior, p(x_{t−1}|x_t), loss)."""

    def __init__(self, betas: torch.Tensor, learn_sigma: bool = True, timestep_map: torch.Tensor | None = None) -> None:
        self.betas = betas.double()
        self.num_timesteps = len(betas)
        self.learn_sigma = learn_sigma
        # Model timesteps of each step: identity, or the original steps a respaced schedule kept.
        self.timestep_map = torch.arange(self.num_timesteps) if timestep_map is None else timestep_map
        alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        ac, ac_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.posterior_variance = self.betas * (1.0 - ac_prev) / (1.0 - ac)
        # β̃_0 = 0, so the log is clipped to β̃_1 at t = 0 (IDDPM).
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = self.betas * torch.sqrt(ac_prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - ac_prev) * torch.sqrt(alphas) / (1.0 - ac)

    @classmethod
    def from_config(cls, cfg: DDPMConfig = DDPMConfig()) -> GaussianDiffusion:
        """The training diffusion of a config."""
        return cls(linear_betas(cfg), learn_sigma=cfg.learn_sigma)

    def respaced(self, num_steps: int) -> GaussianDiffusion:
        """A diffusion over num_steps evenly spaced original steps (IDDPM respacing), for faster sampling."""
        if not 1 <= num_steps <= self.num_timesteps:
            raise ValueError(f"respaced: num_steps must be in [1, {self.num_timesteps}], got {num_steps}")
        stride = (self.num_timesteps - 1) / max(num_steps - 1, 1)
        keep = sorted({round(i * stride) for i in range(num_steps)})
        kept_ac = self.alphas_cumprod[keep]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), kept_ac[:-1]])
        return GaussianDiffusion(1.0 - kept_ac / prev, self.learn_sigma, self.timestep_map[keep])

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] for (B,) integer t, shaped (B, 1, 1, …) in like's dtype and device."""
        out = values.to(t.device)[t.long()].to(like.dtype)
        return out.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise."""
        ac = self.alphas_cumprod
        return self._at(ac.sqrt(), t, x0) * x0 + self._at((1 - ac).sqrt(), t, x0) * noise

    def q_posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t−1} | x_t, x0)."""
        mean = self._at(self.posterior_mean_coef1, t, x_t) * x0 + self._at(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, self._at(self.posterior_variance, t, x_t), self._at(self.posterior_log_variance_clipped, t, x_t)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x0 implied by eps: (x_t − sqrt(1 − ᾱ_t)·eps) / sqrt(ᾱ_t)."""
        ac = self.alphas_cumprod
        return self._at((1.0 / ac).sqrt(), t, x_t) * x_t - self._at((1.0 / ac - 1).sqrt(), t, x_t) * eps

    def split_output(self, output: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps, variance values or None) from a model output of C or 2·C channels."""
        if self.learn_sigma:
            if output.shape[1] != 2 * channels:
                raise ValueError(f"learn_sigma DDPM needs {2 * channels} output channels, got {output.shape[1]}")
            return output[:, :channels], output[:, channels:]
        if output.shape[1] != channels:
            raise ValueError(f"DDPM without learn_sigma needs {channels} output channels, got {output.shape[1]}")
        return output, None

    def p_mean_variance(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean, variance, log-variance of p(x_{t−1} | x_t) and the predicted x0, from the model output."""
        eps, var_values = self.split_output(output, x_t.shape[1])
        if var_values is None:
            # Fixed "large" variance β_t (β̃_1 at t = 0), IDDPM's choice when the variance is not learned.
            fixed = torch.cat([self.posterior_variance[1:2], self.betas[1:]])
            log_var = self._at(fixed.log(), t, x_t).expand_as(x_t)
        else:
            min_log = self._at(self.posterior_log_variance_clipped, t, x_t)
            max_log = self._at(self.betas.log(), t, x_t)
            frac = (var_values + 1) / 2
            log_var = frac * max_log + (1 - frac) * min_log
        pred_x0 = self.predict_x0(x_t, t, eps)
        mean, _, _ = self.q_posterior(pred_x0, x_t, t)
        return {"mean": mean, "variance": log_var.exp(), "log_variance": log_var, "pred_x0": pred_x0, "eps": eps}

    def vb_terms_bpd(
        self, output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, x_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Per-sample variational-bound term (B,) in bits: KL to the true posterior, decoder NLL at t = 0."""
        true_mean, _, true_log_var = self.q_posterior(x0, x_t, t)
        out = self.p_mean_variance(output, x_t, t)
        kl = normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"])
        kl = masked_mean_flat(kl, x_mask) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, out["mean"], 0.5 * out["log_variance"])
        nll = masked_mean_flat(nll, x_mask) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        model_kwargs: dict | None = None,
        x_mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"loss", "mse", "vb"} per sample (B,); t uniform over steps; given frames (x_mask False) stay clean."""
        b = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.num_timesteps, (b,), generator=generator, device=x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        kwargs = dict(model_kwargs or {})
        if x_mask is not None:
            x_t = torch.where(x_mask[:, None, :, None, None], x_t, x0)
            kwargs["x_mask"] = x_mask
        output = model(x_t, self.timestep_map.to(t.device)[t.long()], **kwargs)
        eps, var_values = self.split_output(output, x0.shape[1])
        mse = masked_mean_flat((eps.float() - noise.float()) ** 2, x_mask)
        terms = {"mse": mse}
        if var_values is not None:
            # The bound sees a frozen eps so it only trains the variance; scaled as IDDPM's RESCALED_MSE.
            frozen = torch.cat([eps.detach(), var_values], dim=1)
            vb = self.vb_terms_bpd(frozen.float(), x0.float(), x_t.float(), t, x_mask)
            terms["vb"] = vb * (self.num_timesteps / 1000.0)
            terms["loss"] = mse + terms["vb"]
        else:
            terms["loss"] = mse
        return terms

    def ddim_step(
        self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eta: float, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """One DDIM update x_t → x_{t−1} (eta = 0 deterministic, eta = 1 DDPM-like noise)."""
        eps, _ = self.split_output(output, x_t.shape[1])
        pred_x0 = self.predict_x0(x_t, t, eps)
        ac = self._at(self.alphas_cumprod, t, x_t)
        ac_prev = self._at(self.alphas_cumprod_prev, t, x_t)
        sigma = eta * torch.sqrt((1 - ac_prev) / (1 - ac)) * torch.sqrt(1 - ac / ac_prev)
        x_prev = ac_prev.sqrt() * pred_x0 + torch.sqrt((1 - ac_prev - sigma**2).clamp(min=0)) * eps
        if noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev

    def ddpm_step(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One ancestral update x_t → x_{t−1} with the model's (learned or fixed) variance; no noise at t = 0."""
        out = self.p_mean_variance(output, x_t, t)
        nonzero = (t != 0).to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))  # (B,) → (B, 1, …)
        return out["mean"] + nonzero * torch.exp(0.5 * out["log_variance"]) * noise
