"""Diagonal Gaussian posterior of a VAE latent: mean and log-variance over (B, C, T, H, W)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DiagonalGaussian:
    """q(z|x) = N(mean, exp(logvar)); logvar is clamped so exp() stays finite in bf16 and fp32."""

    mean: torch.Tensor
    logvar: torch.Tensor

    LOGVAR_MIN = -30.0
    LOGVAR_MAX = 20.0

    def __post_init__(self) -> None:
        if self.mean.shape != self.logvar.shape:
            raise ValueError(f"DiagonalGaussian: mean {tuple(self.mean.shape)} != logvar {tuple(self.logvar.shape)}")
        self.logvar = self.logvar.clamp(self.LOGVAR_MIN, self.LOGVAR_MAX)

    @classmethod
    def from_moments(cls, moments: torch.Tensor) -> "DiagonalGaussian":
        """Split (B, 2C, ...) encoder moments into mean (first C channels) and logvar (last C)."""
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, ...) each
        return cls(mean, logvar)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def mode(self) -> torch.Tensor:
        """The most likely latent: the mean."""
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw mean + std * eps, differentiable in mean and logvar."""
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per sample: 0.5 * sum(mean^2 + var - 1 - logvar) over all but the batch dim, (B,)."""
        terms = self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar
        return 0.5 * terms.flatten(1).sum(dim=1)
