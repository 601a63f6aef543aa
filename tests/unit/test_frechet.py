"""Fréchet distance against closed forms for two Gaussians, and its behaviour on samples."""
import math

import numpy as np
import pytest

from components.evaluation.frechet import (feature_stats, frechet_distance, frechet_distance_features, sqrt_psd,
                                           trace_sqrt_product)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.5 * np.eye(d)


def test_diagonal_gaussians_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # 5 + (1 + 1 + 6.25)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert want == 13.25
    assert abs(got - want) <= 1e-6 * want


def test_commuting_random_spd_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    d1, d2 = rng.uniform(0.1, 5, d), rng.uniform(0.1, 5, d)
    s1, s2 = (q * d1) @ q.T, (q * d2) @ q.T  # same eigenvectors: tr sqrt(S1 S2) = sum sqrt(d1 d2)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    want = np.sum((mu1 - mu2) ** 2) + np.sum(d1) + np.sum(d2) - 2 * np.sum(np.sqrt(d1 * d2))
    assert abs(frechet_distance(mu1, s1, mu2, s2) - want) <= 1e-6 * want


@pytest.mark.parametrize("seed", range(3))
def test_non_commuting_2x2_closed_form(seed):
    # for 2x2 M = S1 S2 with non-negative eigenvalues, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M))
    rng = np.random.default_rng(seed)
    s1, s2 = _spd(rng, 2), _spd(rng, 2)
    m = s1 @ s2
    want_trace = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    assert abs(trace_sqrt_product(s1, s2) - want_trace) <= 1e-9 * want_trace
    mu1, mu2 = rng.standard_normal(2), rng.standard_normal(2)
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * want_trace
    assert abs(frechet_distance(mu1, s1, mu2, s2) - want) <= 1e-6 * abs(want)


def test_same_gaussian_is_zero_and_sqrt_is_exact():
    rng = np.random.default_rng(1)
    s = _spd(rng, 8)
    mu = rng.standard_normal(8)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9 * np.trace(s)
    r = sqrt_psd(s)
    assert np.allclose(r @ r, s, atol=1e-10) and np.allclose(r, r.T)


def test_samples_of_one_distribution_are_close_relative_to_another():
    rng = np.random.default_rng(2)
    d, n = 8, 4000
    cov = _spd(rng, d) / d
    chol = np.linalg.cholesky(cov)
    a = rng.standard_normal((n, d)) @ chol.T
    b = rng.standard_normal((n, d)) @ chol.T
    c = rng.standard_normal((n, d)) @ chol.T * 1.5 + 1.0
    same, other = frechet_distance_features(a, b), frechet_distance_features(a, c)
    assert other > 5.0  # at least the mean shift |1|^2 * d = 8, minus sampling noise
    assert same < 0.01 * other


def test_feature_stats_uses_the_unbiased_covariance():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    st = feature_stats(x)
    assert st.n == 4
    assert np.allclose(st.mu, [1.0, 1.0])
    assert np.allclose(st.sigma, np.eye(2) * 4 / 3)  # sum of squared deviations 4, over N - 1 = 3


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 2 samples"):
        feature_stats(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="do not describe two Gaussians"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
