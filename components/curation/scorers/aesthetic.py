"""LAION aesthetic score (`aes`): CLIP ViT-L/14 image embedding (L2-normalised) -> LAION head, about 0-10.

Averaged over the first / middle / last frames (RECIPE §1). The head is the improved-aesthetic-predictor MLP
(`laion-aesthetic`, sac+logos+ava1-l14-linearMSE.pth: 768->1024->128->64->16->1, keys layers.0.weight ...) or
the older linear one; models/vbench/aesthetic.py picks the class from the checkpoint's keys. CLIP is a
transformers folder (CLIPVisionModelWithProjection, `clip-vit-l-14-hf`). Both come from the weights store:
a missing one is an error naming it, never a download and never a silent fallback (without them, configure the
offline stand-in `aes_classical`, which writes its own column).
Thresholds: xGen drops < 4.5, Open-Sora stage 2 keeps >= 4.5, Open-Sora-Plan >= 4.75; 5.5 fair, 6.5 high.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from components.curation.scorer import ClipFrames
from components.curation.scorers.temporal import ClipEmbedder
from components.hashing import content_hash
from components.weights import require
from models.vbench.aesthetic import head_for


class AestheticConfig(BaseModel):
    """Which weights (store names or explicit paths), how many frames, where to run."""

    model_config = ConfigDict(extra="forbid")
    weights_profile: str = "full"
    clip_weights: str = "clip-vit-l-14-hf"  # a transformers CLIP ViT-L/14 folder in that profile's weights list
    head_weights: str = "laion-aesthetic"  # improved-aesthetic-predictor MLP
    clip_path: str | None = None  # explicit folder / file: skip the weights list for that one
    head_path: str | None = None
    num_frames: int = Field(3, ge=1)  # first / middle / last
    short_side: int = Field(224, ge=16)  # CLIP's input size: decode no larger
    device: str = "cpu"


def resolve_weights(cfg: AestheticConfig) -> tuple[str, str]:
    """(CLIP folder, head file): explicit paths first, the rest from the weights store, all missing ones named."""
    wanted = [name for name, path in ((cfg.clip_weights, cfg.clip_path), (cfg.head_weights, cfg.head_path))
              if path is None]
    found = require(cfg.weights_profile, wanted) if wanted else {}
    return cfg.clip_path or found[cfg.clip_weights], cfg.head_path or found[cfg.head_weights]


def load_head(path: str) -> torch.nn.Module:
    """The LAION head a checkpoint holds, with its weights, in eval mode (dropouts off)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        head = head_for(state)
        head.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a LAION aesthetic head checkpoint ({exc})") from exc
    return head.eval()


class AestheticScorer:
    """The LAION aesthetic predictor on L2-normalised CLIP image embeddings."""

    name = "aesthetic"
    columns = ("aes",)

    def __init__(self, cfg: AestheticConfig | None = None):
        self.cfg = cfg or AestheticConfig()
        self.num_frames, self.short_side = self.cfg.num_frames, self.cfg.short_side
        self.clip_path, self.head_path = resolve_weights(self.cfg)
        if not Path(self.clip_path, "config.json").is_file():
            raise FileNotFoundError(f"{self.clip_path}: expected a transformers CLIP folder (config.json + weights, "
                                    f"as CLIPVisionModelWithProjection.save_pretrained writes)")
        self.clip = ClipEmbedder(self.clip_path, self.cfg.device)
        self.head = load_head(self.head_path).to(self.cfg.device)
        head_dim = next(self.head.parameters()).shape[1]
        if head_dim != self.clip.model.config.projection_dim:
            raise ValueError(f"{self.head_path}: head takes {head_dim}-d embeddings, {self.clip_path} gives "
                             f"{self.clip.model.config.projection_dim}-d (the LAION heads need CLIP ViT-L/14)")

    @cached_property
    def _weights(self) -> str:
        return ",".join(f"{Path(p).name}@{content_hash(p)}" for p in (self.clip_path, self.head_path))

    def provenance(self) -> dict[str, str]:
        return {"scorer": self.name, "method": f"LAION aesthetic head on CLIP image embeddings, mean of "
                f"{self.num_frames} frames", "weights": self._weights, "version": "1"}

    @torch.no_grad()
    def predict(self, frames: list[np.ndarray]) -> np.ndarray:
        """(N,) scores of N uint8 RGB frames of any sizes."""
        embeds = torch.from_numpy(self.clip.embed(frames)).to(self.cfg.device)  # (N, D), unit length
        return self.head(embeds).reshape(-1).float().cpu().numpy()

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        if not batch:
            return []
        # one CLIP pass for the whole batch, then the mean per clip
        scores = self.predict([frame for clip in batch for frame in clip.frames])
        bounds = np.cumsum([0] + [len(clip.frames) for clip in batch])
        return [{"aes": float(scores[a:b].mean())} for a, b in zip(bounds, bounds[1:])]
