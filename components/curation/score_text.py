"""Score-to-text (Open-Sora 1.2): append aesthetic, motion and camera-motion scores to a caption at training time.

"a red circle moving left. aesthetic score: 5.5, motion score: 10, camera motion: pan left" — each part is
dropped independently with p_drop, so at inference a prompt may carry any subset and still steer the model.
curate.caption only stores the fields (aes, flow, cmotion); the training data loader calls score_to_text.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

# (caption part, row field) in Open-Sora's order
PARTS = (("aesthetic score", "aes"), ("motion score", "flow"), ("camera motion", "cmotion"))


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def format_value(field: str, value: Any) -> str:
    """Numbers rounded to one decimal without a trailing .0 (5.5, 10); camera labels with spaces (pan left)."""
    if field == "cmotion":
        return str(value).replace("_", " ")
    rounded = round(float(value), 1)
    return f"{rounded:g}"


def score_parts(row: Mapping[str, Any]) -> list[str | None]:
    """One entry per PARTS slot: the text of the part, or None where the row has no value for it."""
    return [f"{label}: {format_value(field, row[field])}" if field in row and _present(row[field]) else None
            for label, field in PARTS]


def score_to_text(caption: str, row: Mapping[str, Any], rng: np.random.Generator, p_drop: float = 0.2) -> str:
    """The caption with the row's score parts appended, each kept with probability 1 - p_drop."""
    if not 0.0 <= p_drop <= 1.0:
        raise ValueError(f"p_drop must lie in [0, 1], got {p_drop}")
    # one draw per slot, present or not, so the random stream does not depend on which fields a row has
    keep = rng.random(len(PARTS)) >= p_drop
    kept = [part for part, flag in zip(score_parts(row), keep) if part is not None and flag]
    caption = caption.strip()
    if not kept:
        return caption
    if not caption:
        return ", ".join(kept) + "."
    sep = " " if caption[-1] in ".!?" else ". "
    return f"{caption}{sep}{', '.join(kept)}."
