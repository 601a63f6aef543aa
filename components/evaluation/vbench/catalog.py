"""The 16 VBench dimensions: which weights each needs, which auxiliary info, and which ReelForge implements.

Weight names are entries of configs/<profile>/weights.yaml (the weights store). `custom` marks the 10
dimensions VBench's custom-input mode supports: they need nothing beyond the video and its prompt.
"""
from __future__ import annotations

from dataclasses import dataclass

from components.evaluation.vbench.aggregate import DIMENSIONS


@dataclass(frozen=True)
class DimensionSpec:
    """One dimension: its weights (names in the weights list), whether it runs on any video, whether implemented."""

    name: str
    weights: tuple[str, ...]
    custom: bool
    implemented: bool
    frames: str  # which frames it reads, recorded next to the score
    aux: str | None = None  # the key of the prompt's auxiliary_info it reads


SPECS: dict[str, DimensionSpec] = {s.name: s for s in (
    DimensionSpec("subject_consistency", ("dino-vitb16",), True, True, "all frames"),
    DimensionSpec("background_consistency", ("clip-vit-b-32-hf",), True, True, "all frames"),
    DimensionSpec("temporal_flickering", (), True, True, "all frames"),
    DimensionSpec("motion_smoothness", ("amt-s",), True, True, "all frames"),
    DimensionSpec("dynamic_degree", ("raft-things",), True, True, "every round(fps/8)-th frame"),
    DimensionSpec("aesthetic_quality", ("clip-vit-l-14-hf", "laion-aesthetic-linear"), True, True, "all frames"),
    DimensionSpec("imaging_quality", ("musiq-spaq",), True, True, "all frames"),
    DimensionSpec("object_class", ("grit-b", "bert-base-uncased-vocab"), False, True, "16 frames", "object_class"),
    DimensionSpec("multiple_objects", ("grit-b", "bert-base-uncased-vocab"), False, True, "16 frames",
                  "multiple_objects"),
    DimensionSpec("human_action", ("umt-l16", "k400-labels"), True, True, "16 frames"),
    DimensionSpec("color", ("grit-b", "bert-base-uncased-vocab"), False, True, "16 frames", "color"),
    DimensionSpec("spatial_relationship", ("grit-b", "bert-base-uncased-vocab"), False, True, "16 frames",
                  "spatial_relationship"),
    DimensionSpec("scene", ("tag2text", "bert-base-uncased-vocab", "tag2text-tag-list"), False, True, "16 frames",
                  "scene"),
    DimensionSpec("appearance_style", ("clip-vit-b-32-hf",), False, True, "all frames", "appearance_style"),
    # ViCLIP tokenizes with CLIP's BPE: the tokenizer files of the CLIP ViT-L/14 folder
    DimensionSpec("temporal_style", ("viclip", "clip-vit-l-14-hf"), True, True, "8 frames"),
    DimensionSpec("overall_consistency", ("viclip", "clip-vit-l-14-hf"), True, True, "8 frames"),
)}
assert tuple(sorted(SPECS)) == tuple(sorted(DIMENSIONS))

CUSTOM_DIMENSIONS = tuple(d for d in DIMENSIONS if SPECS[d].custom)
IMPLEMENTED = tuple(d for d in DIMENSIONS if SPECS[d].implemented)
# the standard protocol keeps only static videos for temporal_flickering, chosen by RAFT (VBench static_filter)
STATIC_FILTER_WEIGHTS = "raft-things"


def spec(name: str) -> DimensionSpec:
    """The spec of a dimension, naming the known ones otherwise."""
    if name not in SPECS:
        raise KeyError(f"unknown VBench dimension {name!r}; known: {', '.join(DIMENSIONS)}")
    return SPECS[name]
