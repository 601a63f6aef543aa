"""Fréchet distance between two feature sets (FVD, rFVD), in float64 from eigenvalues (EVAL.md).

    FD = |μ1 − μ2|² + tr Σ1 + tr Σ2 − 2·tr((Σ1 Σ2)^½)
The trace term is computed as Σ √max(λ, 0) over λ = eigvalsh(S1 Σ2 S1) with S1 = Σ1^½ from eigh: S1 Σ2 S1 is
symmetric PSD and similar to Σ1 Σ2, so its eigenvalues are those of Σ1 Σ2. No scipy.linalg.sqrtm (it returned
wrong results in scipy 1.11.2–1.12 and its `disp` argument is gone in 1.18).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set, with the sample count they came from."""

    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    n: int


def feature_stats(features: np.ndarray) -> GaussianStats:
    """μ and the unbiased (N − 1) covariance of (N, D) features, pooled over all clips, in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"feature_stats: expected (N, D) features, got shape {feats.shape}")
    if feats.shape[0] < 2:
        raise ValueError(f"feature_stats: a covariance needs at least 2 samples, got {feats.shape[0]}")
    if not np.isfinite(feats).all():
        raise ValueError("feature_stats: features contain NaN or inf")
    return GaussianStats(feats.mean(axis=0), np.cov(feats, rowvar=False), feats.shape[0])


def sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative round-off eigenvalues clipped to 0)."""
    sym = (matrix + matrix.T) / 2
    w, v = np.linalg.eigh(sym)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((Σ1 Σ2)^½) = Σ √max(λ, 0), λ = eigvalsh(S1 Σ2 S1), S1 = Σ1^½."""
    s1 = sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    m = s1 @ np.asarray(sigma2, dtype=np.float64) @ s1
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes μ1 {mu1.shape}, Σ1 {sigma1.shape}, μ2 {mu2.shape}, "
                         f"Σ2 {sigma2.shape} do not describe two Gaussians of one dimension")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between two pooled (N, D) feature sets (never average per-batch distances)."""
    a, b = feature_stats(features1), feature_stats(features2)
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"frechet_distance_features: feature dims differ ({a.mu.shape[0]} vs {b.mu.shape[0]})")
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
