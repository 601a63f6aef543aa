"""Per-clip dedup features as a Scorer, so they are computed per video (in the shards) and compared at the barrier.

components/curation/dedup.py compares clips by their frames' features, in time order: offline signatures
(dedup_signature.py) or CLIP embeddings (xGen). This scorer samples the frames dedup asks for and stores each
clip's features as .npz bytes (one binary column: dtypes and shapes travel with the values); duplicates()
turns them back into dedup.ClipFeatures and runs find_duplicates over every clip.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.curation.dedup import ClipFeatures, DedupConfig, find_duplicates
from components.curation.dedup_signature import clip_signature
from components.curation.scorer import ClipFrames

FEATURE_COLUMN = "dedup_features"


def encode(features: ClipFeatures) -> bytes:
    """One clip's features as .npz bytes."""
    arrays = {"times": features.times}
    if features.embedding is not None:
        arrays["embedding"] = features.embedding
    else:
        arrays["cells"], arrays["medians"] = features.signature
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode(blob: bytes) -> ClipFeatures:
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        if "embedding" in arrays:
            return ClipFeatures(arrays["times"], embedding=arrays["embedding"])
        return ClipFeatures(arrays["times"], signature=(arrays["cells"], arrays["medians"]))


def clip_start(clip: ClipFrames) -> int:
    """The clip's first frame (its id is "<video>-<start>-<end>", clips.clip_id); the first sample otherwise."""
    try:
        return int(clip.clip_id.rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return int(clip.indices[0])


class DedupSpec(BaseModel):
    """Near-duplicate detection: which features, dedup.py's options, and where CLIP lives for `clip`."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    features: Literal["signature", "clip"] = "signature"  # signature: offline; clip: CLIP embeddings (xGen)
    options: dict[str, Any] = Field(default_factory=dict)  # DedupConfig fields (frames, thresholds, banding)
    clip_weights: str = "clip-vit-b-32-hf"  # name in the weights list of weights_profile (a transformers folder)
    clip_path: str | None = None
    weights_profile: str = "full"
    device: str = "cpu"

    def dedup_config(self) -> DedupConfig:
        return DedupConfig(**self.options)

    def feature_recipe(self) -> dict[str, Any]:
        """What the stored features depend on (thresholds and banding only matter at comparison time)."""
        c = self.dedup_config()
        return {"features": self.features, "num_frames": c.num_frames, "short_side": c.short_side,
                "signature": c.signature.model_dump(mode="json"), "clip": self.clip_path or self.clip_weights}


class DedupFeatureScorer:
    """Features of frames sampled over each clip, as dedup.py's find_duplicates compares them."""

    name = "dedup"
    columns = (FEATURE_COLUMN,)

    def __init__(self, spec: DedupSpec):
        self.spec, self.cfg = spec, spec.dedup_config()
        self.num_frames, self.short_side = self.cfg.num_frames, self.cfg.short_side
        self.embedder, self.folder = None, None
        if spec.features == "clip":
            from components.curation.scorers.temporal import ClipEmbedder, TemporalConfig, find_clip_folder

            where = TemporalConfig(method="clip", clip_weights=spec.clip_weights, clip_path=spec.clip_path,
                                   weights_profile=spec.weights_profile)
            self.folder = find_clip_folder(where, required=True)
            self.embedder = ClipEmbedder(self.folder, spec.device)
            self.short_side = self.embedder.size  # CLIP resizes itself; decode no smaller than its input

    def provenance(self) -> dict[str, str]:
        if self.embedder is not None:
            return {"scorer": self.name, "method": f"CLIP image embeddings of {self.num_frames} frames",
                    "weights": Path(self.folder).name, "version": "1"}
        return {"scorer": self.name, "method": f"offline frame signatures of {self.num_frames} frames at short "
                f"side {self.short_side} (stand-in for CLIP features)", "weights": "none", "version": "1"}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, bytes]]:
        out = []
        for clip in batch:
            times = (np.asarray(clip.indices, np.float64) - clip_start(clip)) / float(clip.fps)
            if self.embedder is None:
                features = ClipFeatures(times, signature=clip_signature(clip.frames, self.cfg.signature))
            else:
                features = ClipFeatures(times, embedding=self.embedder.embed(list(clip.frames)).astype(np.float32))
            out.append({FEATURE_COLUMN: encode(features)})
        return out


def duplicates(table: pd.DataFrame, spec: DedupSpec) -> pd.DataFrame:
    """clip_id, dup_of ("" when kept), dup_similarity over every clip of `table` (clip rows + their features)."""
    features = {cid: decode(blob) for cid, blob in zip(table["clip_id"], table[FEATURE_COLUMN])}
    found = find_duplicates(table.drop(columns=[FEATURE_COLUMN]), features, spec.dedup_config())
    return pd.DataFrame({"clip_id": found["clip_id"], "dup_of": found["dup_of"].fillna("").astype(str),
                         "dup_similarity": found["similarity"].astype(float)})
