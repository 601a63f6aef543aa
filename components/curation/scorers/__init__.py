"""Clip scorers (the Scorer protocol of components/curation/scorer.py): SCORERS maps a name to a factory.

A factory takes the scorer's options (a dict validated by its pydantic config) and returns a ready scorer.
Imports happen inside the factories, so importing this package stays cheap (no torch, no transformers).
"""
from __future__ import annotations

from typing import Any, Callable

from components.curation.scorer import Scorer


def motion(options: dict[str, Any] | None = None) -> Scorer:
    """xGen frame-difference motion score (column motion)."""
    from components.curation.scorers.motion import MotionScorer, MotionScorerConfig

    return MotionScorer(MotionScorerConfig(**(options or {})))


def flow(options: dict[str, Any] | None = None) -> Scorer:
    """Optical-flow magnitude and camera motion (columns flow, cmotion)."""
    from components.curation.scorers.flow import FlowConfig, FlowScorer

    return FlowScorer(FlowConfig(**(options or {})))


def temporal(options: dict[str, Any] | None = None) -> Scorer:
    """First/last frame similarity (column temporal)."""
    from components.curation.scorers.temporal import TemporalConfig, TemporalScorer

    return TemporalScorer(TemporalConfig(**(options or {})))


SCORERS: dict[str, Callable[[dict[str, Any] | None], Scorer]] = {
    "motion": motion,
    "flow": flow,
    "temporal": temporal,
}


def build(name: str, options: dict[str, Any] | None = None) -> Scorer:
    """The scorer registered as `name`, configured with `options`."""
    if name not in SCORERS:
        raise KeyError(f"unknown scorer {name!r}; registered: {', '.join(sorted(SCORERS))}")
    return SCORERS[name](options)
