"""Score the requested dimensions: each implemented one whose weights are present, the rest reported with why not.

A dimension is not computed when ReelForge does not implement it (the reason names the weight file it would
read), when a weight file is missing (named), or when no video serves it. Never a made-up number.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from components.evaluation.vbench.catalog import spec
from components.evaluation.vbench.dimensions_action import human_action
from components.evaluation.vbench.dimensions_amt import motion_smoothness
from components.evaluation.vbench.dimensions_clip import aesthetic_quality, appearance_style
from components.evaluation.vbench.dimensions_consistency import background_consistency, subject_consistency
from components.evaluation.vbench.dimensions_grit import (color, multiple_objects, object_class, run_grit,
                                                           spatial_relationship)
from components.evaluation.vbench.dimensions_motion import DynamicConfig, dynamic_degree
from components.evaluation.vbench.dimensions_musiq import imaging_quality
from components.evaluation.vbench.dimensions_pixel import temporal_flickering
from components.evaluation.vbench.dimensions_scene import scene
from components.evaluation.vbench.dimensions_viclip import video_text_similarity
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.tag2text_caption import CaptionSettings
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult


class ComputeSettings(BaseModel):
    """Batching, the motion rule's constants and the scene captioner's settings."""

    model_config = ConfigDict(extra="forbid")
    batch: int = Field(16, ge=1)  # frames per network call
    dynamic: DynamicConfig = DynamicConfig()
    scene: CaptionSettings = CaptionSettings()


Runner = Callable[[ModelHub, list[VideoItem], ComputeSettings], DimensionResult]


def _viclip(name: str, hub: ModelHub, videos: list[VideoItem]) -> DimensionResult:
    return video_text_similarity(name, hub.get("viclip"), hub.get("clip-vit-l-14-hf").tokenizer, videos, hub.device)


RUNNERS: dict[str, Runner] = {
    "subject_consistency": lambda hub, v, s: subject_consistency(hub.get("dino-vitb16"), v, hub.device, s.batch),
    "background_consistency": lambda hub, v, s: background_consistency(hub.get("clip-vit-b-32-hf").model, v,
                                                                       hub.device, s.batch),
    "temporal_flickering": lambda hub, v, s: temporal_flickering(v),
    "motion_smoothness": lambda hub, v, s: motion_smoothness(hub.get("amt-s"), v, hub.device, s.batch),
    "dynamic_degree": lambda hub, v, s: dynamic_degree(hub.get("raft-things"), v, s.dynamic),
    "aesthetic_quality": lambda hub, v, s: aesthetic_quality(hub.get("clip-vit-l-14-hf").model,
                                                             hub.get("laion-aesthetic-linear"), v, hub.device, s.batch),
    "appearance_style": lambda hub, v, s: appearance_style(hub.get("clip-vit-b-32-hf").model,
                                                           hub.get("clip-vit-b-32-hf").tokenizer, v, hub.device,
                                                           s.batch),
    "imaging_quality": lambda hub, v, s: imaging_quality(hub.get("musiq-spaq"), v, hub.device, s.batch),
    "object_class": lambda hub, v, s: run_grit(object_class, hub, v, s.batch),
    "multiple_objects": lambda hub, v, s: run_grit(multiple_objects, hub, v, s.batch),
    "human_action": lambda hub, v, s: human_action(hub.get("umt-l16"), hub.get("k400-labels"), v, hub.device),
    "color": lambda hub, v, s: run_grit(color, hub, v, s.batch),
    "spatial_relationship": lambda hub, v, s: run_grit(spatial_relationship, hub, v, s.batch),
    "scene": lambda hub, v, s: scene(hub.get("tag2text"), hub.get("bert-base-uncased-vocab"),
                                     hub.get("tag2text-tag-list"), v, hub.device, s.scene),
    "temporal_style": lambda hub, v, s: _viclip("temporal_style", hub, v),
    "overall_consistency": lambda hub, v, s: _viclip("overall_consistency", hub, v),
}


@dataclass
class Outcome:
    """Scores that were computed, and a reason for each requested dimension that was not."""

    results: dict[str, DimensionResult] = field(default_factory=dict)
    not_computed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def unavailable(dimension: str, hub: ModelHub) -> str | None:
    """Why a dimension cannot be computed here (not implemented / weights missing), or None."""
    s = spec(dimension)
    files = ", ".join(f"{n} ({hub.located[n].path or 'not in the weights list'})" if n in hub.located else n
                      for n in s.weights)
    if not s.implemented or dimension not in RUNNERS:
        return f"not implemented in ReelForge (the official computation needs {files})"
    missing = hub.missing(s.weights)
    return "; ".join(missing) if missing else None


def compute(dimensions: list[str], videos_for: Callable[[str], list[VideoItem]], hub: ModelHub,
            settings: ComputeSettings = ComputeSettings(), skip: dict[str, str] | None = None) -> Outcome:
    """Run every requested dimension that can run; `skip` carries reasons decided earlier (static filter…)."""
    out = Outcome()
    for dim in dimensions:
        reason = (skip or {}).get(dim) or unavailable(dim, hub)
        if reason is None:
            videos = videos_for(dim)
            if not videos:
                reason = "no video serves this dimension (no prompt of the suite is tagged with it)"
        if reason is not None:
            out.not_computed[dim] = reason
            continue
        started = time.time()
        try:
            result = RUNNERS[dim](hub, videos, settings)
        except ValueError as err:  # a rule with nothing to score (e.g. color: no video names a colour it can check)
            out.not_computed[dim] = f"not scorable on these videos: {err}"
            continue
        result.settings["weights"] = hub.records(spec(dim).weights)
        out.results[dim], out.seconds[dim] = result, time.time() - started
    return out


def describe(outcome: Outcome) -> dict[str, Any]:
    """{dimension: value} of the computed ones (for logs)."""
    return {d: r.value for d, r in outcome.results.items()}
