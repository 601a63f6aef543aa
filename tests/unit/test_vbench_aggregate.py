"""VBench aggregation: the official Min/Max, weights and group sizes, checked on hand-computed vectors."""
from __future__ import annotations

import pytest

from components.evaluation.vbench.aggregate import DIMENSIONS, QUALITY, SEMANTIC, aggregate, normalized

# Raw scores chosen so each normalised value is a round number (Min/Max of EVAL.md worked by hand):
RAW = {
    "subject_consistency": 0.5731,  # (0.5731 - 0.1462) / (1 - 0.1462) = 0.4269 / 0.8538 = 0.5
    "background_consistency": 0.63075,  # (0.63075 - 0.2615) / 0.7385 = 0.5
    "temporal_flickering": 0.81465,  # (0.81465 - 0.6293) / 0.3707 = 0.5
    "motion_smoothness": 0.85175,  # (0.85175 - 0.706) / (0.9975 - 0.706) = 0.14575 / 0.2915 = 0.5
    "aesthetic_quality": 0.6,  # Min 0, Max 1
    "imaging_quality": 0.7,
    "dynamic_degree": 0.4,  # weight 0.5 -> 0.2
    "object_class": 0.9,
    "multiple_objects": 0.3,
    "human_action": 0.8,
    "color": 0.7,
    "spatial_relationship": 0.4,
    "scene": 0.4111,  # / 0.8222 = 0.5
    "appearance_style": 0.1432,  # (0.1432 - 0.0009) / (0.2855 - 0.0009) = 0.1423 / 0.2846 = 0.5
    "temporal_style": 0.273,  # / 0.364 = 0.75
    "overall_consistency": 0.091,  # / 0.364 = 0.25
}
# Quality  = (4 x 0.5 + 0.6 + 0.7 + 0.2) / 6.5 = 3.5 / 6.5 = 7/13
# Semantic = (0.9 + 0.3 + 0.8 + 0.7 + 0.4 + 0.5 + 0.5 + 0.75 + 0.25) / 9 = 5.1 / 9 = 17/30
# Total    = (4 x 7/13 + 17/30) / 5 = (840 + 221) / 390 / 5 = 1061/1950
QUALITY_BY_HAND, SEMANTIC_BY_HAND, TOTAL_BY_HAND = 7 / 13, 17 / 30, 1061 / 1950


def test_total_quality_semantic_match_the_hand_computation():
    agg = aggregate(RAW)
    assert agg.complete and agg.missing == []
    assert agg.quality == pytest.approx(QUALITY_BY_HAND, abs=1e-12)
    assert agg.semantic == pytest.approx(SEMANTIC_BY_HAND, abs=1e-12)
    assert agg.total == pytest.approx(TOTAL_BY_HAND, abs=1e-12)
    assert agg.total == pytest.approx(0.5441025641, abs=1e-10)


def test_groups_and_normalisation_constants():
    assert len(QUALITY) == 7 and len(SEMANTIC) == 9 and len(set(DIMENSIONS)) == 16
    assert normalized("dynamic_degree", 1.0) == 0.5  # weight 0.5
    assert normalized("subject_consistency", 1.0) == pytest.approx(1.0)
    assert normalized("scene", 0.8222) == pytest.approx(1.0)
    # no clipping: below Min is negative, above Max exceeds 1
    assert normalized("temporal_flickering", 0.6293 - 0.3707) == pytest.approx(-1.0)
    assert normalized("temporal_style", 0.728) == pytest.approx(2.0)


def test_partial_scores_use_the_weights_present():
    raw = {k: RAW[k] for k in ("subject_consistency", "dynamic_degree", "appearance_style")}
    agg = aggregate(raw)
    assert not agg.complete and len(agg.missing) == 13
    assert agg.quality == pytest.approx((0.5 + 0.2) / 1.5)  # weights present: 1 + 0.5
    assert agg.semantic == pytest.approx(0.5)
    assert agg.total == pytest.approx((4 * 0.7 / 1.5 + 0.5) / 5)
    only_quality = aggregate({"temporal_flickering": RAW["temporal_flickering"]})
    assert (only_quality.quality, only_quality.semantic, only_quality.total) == (pytest.approx(0.5), None,
                                                                                pytest.approx(0.5))


def test_unknown_dimension_is_named():
    with pytest.raises(KeyError, match="unknown VBench dimension.*'flicker'"):
        aggregate({"flicker": 0.9})
