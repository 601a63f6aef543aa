"""Caption embeddings for DiT training: the on-disk text cache in front of an encoder that loads only on a miss.

The cache key needs the encoder's name, weights fingerprint, width and length, none of which needs the model
in memory; so a stage whose captions are all cached (every adaptation stage after the first) never loads
MiniLM or T5-XXL at all.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from components.dit.text_cache import TextCacheConfig, TextEmbeddingCache, open_text_cache
from components.dit.text_encoders import (TextEncoder, TextEncoderConfig, build_text_encoder, minilm_folder,
                                         weights_fingerprint)
from components.weights import require

MINILM_NAME = "minilm-l6"  # the name load_minilm gives its TextEncoder


class LazyEncoder:
    """The Encoder protocol of the text cache (name, version, max_length, dim, encode) without loading weights."""

    def __init__(self, cfg: TextEncoderConfig, profile: str, store: str | None = None):
        self.cfg, self.profile, self.store = cfg, profile, store
        folder = minilm_folder() if cfg.kind == "minilm" else Path(require(profile, [cfg.weights], store)[cfg.weights])
        config = json.loads((folder / "config.json").read_text())
        self.name = MINILM_NAME if cfg.kind == "minilm" else folder.name
        self.version = weights_fingerprint(folder)
        self.max_length = cfg.max_length
        self.dim = int(config.get("d_model") or config["hidden_size"])
        self._encoder: TextEncoder | None = None

    def load(self) -> TextEncoder:
        """The real encoder, loaded on first use; its identity must match the one the cache keys were built from."""
        if self._encoder is None:
            encoder = build_text_encoder(self.cfg, self.profile, self.store)
            if (encoder.name, encoder.version, encoder.dim) != (self.name, self.version, self.dim):
                raise RuntimeError(f"text encoder loaded as {(encoder.name, encoder.version[:16], encoder.dim)}, "
                                   f"expected {(self.name, self.version[:16], self.dim)}")
            self._encoder = encoder
        return self._encoder

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load().encode(captions)

    def null_embedding(self) -> torch.Tensor:
        """The empty caption over all max_length positions (L, dim): the null caption of a fresh tiny model."""
        return self.load().null_embedding()


class CaptionEmbeddings:
    """Caption -> (emb (L, dim), mask (L,)) through an in-memory memo, the disk cache and the lazy encoder."""

    def __init__(self, encoder: LazyEncoder, cache: TextEmbeddingCache):
        self.encoder = encoder
        self.cache = cache
        self._memo: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    def get(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (B, L, dim) float32 and masks (B, L) bool."""
        missing = list(dict.fromkeys(c for c in captions if c not in self._memo))
        if missing:
            emb, mask = self.cache.get(missing)
            self._memo.update({c: (e, m) for c, e, m in zip(missing, emb, mask)})
        if not captions:
            return torch.zeros(0, self.max_length, self.dim), torch.zeros(0, self.max_length, dtype=torch.bool)
        return (torch.stack([self._memo[c][0] for c in captions]), torch.stack([self._memo[c][1] for c in captions]))


def caption_embeddings(cfg: TextEncoderConfig, cache_cfg: TextCacheConfig, profile: str,
                       workspace: Path) -> CaptionEmbeddings:
    """The caption lookup of a stage: its encoder (lazy) behind the workspace's text cache."""
    encoder = LazyEncoder(cfg, profile)
    return CaptionEmbeddings(encoder, open_text_cache(cache_cfg, encoder, workspace))
