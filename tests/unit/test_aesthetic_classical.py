"""aesthetic_classical: closed forms of its measures, and each degradation lowering its sub-score and the total."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from components.curation.scorer import ClipFrames
from components.curation.scorers.aesthetic_classical import (SUBSCORES, ClassicalAestheticScorer, ClassicalConfig,
                                                             classical_score, colourfulness, immerkaer_sigma,
                                                             subscores)
from components.data.synth_shapes import background, degrade, draw_shape

CFG = ClassicalConfig()
STRENGTH = {"blur_sigma": 2.5, "noise_std": 40.0, "overexpose_gain": 1.8, "overexpose_offset": 70.0}


def scene(seed: int = 0) -> np.ndarray:
    """A 128x128 frame like the synthetic corpus: gradient background, two shapes."""
    img = background("sunset", 128, 128, seed)
    draw_shape(img, "star", "yellow", 45, 50, 40)
    draw_shape(img, "square", "cyan", 90, 85, 30)
    return img


def test_immerkaer_recovers_the_noise_sigma_of_a_flat_image():
    noise = np.random.default_rng(0).normal(0.0, 0.05, (256, 256)).astype(np.float32)
    assert immerkaer_sigma(0.5 + noise) == pytest.approx(0.05, rel=0.05)
    assert immerkaer_sigma(np.full((64, 64), 0.3, np.float32)) == 0.0


def test_immerkaer_ignores_edges_below_the_gradient_quantile():
    squares = np.kron(np.indices((8, 8)).sum(axis=0) % 2, np.ones((16, 16))).astype(np.float32)  # 128x128 checker
    assert immerkaer_sigma(squares) > 0.003  # every edge reads as noise
    assert immerkaer_sigma(squares, edge_quantile=0.5) == 0.0  # the flat half has none


def test_colourfulness_closed_forms():
    assert colourfulness(np.full((8, 8, 3), 120, np.uint8)) == 0.0
    half = np.zeros((8, 8, 3), np.uint8)
    half[:4, :, 0], half[4:, :, 1] = 255, 255  # pure red over pure green
    # rg = +-255 (std 255, mean 0); yb = 127.5 everywhere (std 0): M = 255 + 0.3 * 127.5
    assert colourfulness(half) == pytest.approx((255 + 0.3 * 127.5) / 255)


@pytest.mark.parametrize("kind, part", [("blur", "sharpness"), ("noise", "noise"), ("overexposed", "exposure")])
def test_each_degradation_lowers_its_subscore_and_the_score(kind, part):
    clean = scene()
    bad = degrade(clean, kind, STRENGTH, seed=1)
    assert subscores(bad, CFG)[part] < 0.6 * subscores(clean, CFG)[part]
    assert classical_score(bad, CFG) < classical_score(clean, CFG) - 1.0


def test_scores_lie_in_range_and_floors_hold():
    white = np.full((64, 64, 3), 255, np.uint8)
    parts = subscores(white, CFG)
    assert set(parts) == set(SUBSCORES) and min(parts.values()) == CFG.floor
    # only the noise sub-score is perfect (a flat frame has none); every other part sits at the floor
    assert parts["noise"] == 1.0
    assert classical_score(white, CFG) == pytest.approx(10 * CFG.floor ** (1 - CFG.weights["noise"]))
    assert 0 < classical_score(scene(), CFG) <= 10


def test_analysis_size_makes_the_score_resolution_independent():
    small = scene()
    large = cv2.resize(small, (256, 256), interpolation=cv2.INTER_NEAREST)
    assert classical_score(large, CFG) == pytest.approx(classical_score(small, CFG), abs=0.5)


def test_weights_must_name_every_subscore():
    with pytest.raises(ValidationError, match="weights must name exactly"):
        ClassicalConfig(weights={"sharpness": 1.0})


def test_scorer_averages_its_frames_under_its_own_column():
    scorer = ClassicalAestheticScorer()
    frames = np.stack([scene(), degrade(scene(), "blur", STRENGTH, 0)])
    row = scorer.score([ClipFrames("v-000000-000002", frames, [0, 1], 24.0)])[0]
    assert list(row) == ["aes_classical"]
    assert row["aes_classical"] == pytest.approx(np.mean([classical_score(f, CFG) for f in frames]))
    assert scorer.provenance()["weights"] == "none" and scorer.name == "aesthetic_classical"
