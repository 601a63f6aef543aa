"""VBench's Quality / Semantic / Total from the 16 raw dimension scores, with the official constants (EVAL.md).

norm_d = (raw_d - Min_d) / (Max_d - Min_d) * w_d, no clipping; w = 1 except dynamic_degree 0.5.
Quality = sum of norm_d over the 7 quality dimensions / sum of their weights (6.5); Semantic over the other 9 / 9;
Total = (4 Quality + 1 Semantic) / 5 (VBench's cal_final_score.py).

With dimensions missing there is no Total: `aggregate` then reports a *partial* score, the same formula over
the dimensions present (each group divided by the weights of its present dimensions), labelled as such.
"""
from __future__ import annotations

from dataclasses import dataclass, field

QUALITY = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
           "aesthetic_quality", "imaging_quality", "dynamic_degree")
SEMANTIC = ("object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
            "appearance_style", "temporal_style", "overall_consistency")
DIMENSIONS = QUALITY + SEMANTIC

# (Min, Max) of each dimension; the rest are (0, 1)
NORMALIZE: dict[str, tuple[float, float]] = {
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
}
WEIGHTS: dict[str, float] = {"dynamic_degree": 0.5}  # the rest weigh 1
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0


def bounds(dimension: str) -> tuple[float, float]:
    """(Min, Max) VBench normalises a dimension with."""
    if dimension not in DIMENSIONS:
        raise KeyError(f"unknown VBench dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")
    return NORMALIZE.get(dimension, (0.0, 1.0))


def weight(dimension: str) -> float:
    bounds(dimension)
    return WEIGHTS.get(dimension, 1.0)


def normalized(dimension: str, raw: float) -> float:
    """(raw - Min) / (Max - Min) * w, unclipped."""
    low, high = bounds(dimension)
    return (raw - low) / (high - low) * weight(dimension)


@dataclass
class Aggregate:
    """Quality, Semantic and Total; `complete` only when all 16 dimensions were scored."""

    quality: float | None
    semantic: float | None
    total: float | None
    complete: bool
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    normalized: dict[str, float] = field(default_factory=dict)


def _group(scores: dict[str, float], names: tuple[str, ...]) -> float | None:
    present = [d for d in names if d in scores]
    if not present:
        return None
    return sum(normalized(d, scores[d]) for d in present) / sum(weight(d) for d in present)


def aggregate(scores: dict[str, float]) -> Aggregate:
    """Official Quality / Semantic / Total of raw scores {dimension: raw}; partial when some are missing."""
    unknown = set(scores) - set(DIMENSIONS)
    if unknown:
        raise KeyError(f"unknown VBench dimension(s) {sorted(unknown)}; known: {', '.join(DIMENSIONS)}")
    quality, semantic = _group(scores, QUALITY), _group(scores, SEMANTIC)
    if quality is not None and semantic is not None:
        total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    else:  # one group entirely missing: the partial total is the group that is there
        total = quality if semantic is None else semantic
    present = [d for d in DIMENSIONS if d in scores]
    return Aggregate(quality, semantic, total, complete=len(present) == len(DIMENSIONS), present=present,
                     missing=[d for d in DIMENSIONS if d not in scores],
                     normalized={d: normalized(d, scores[d]) for d in present})
