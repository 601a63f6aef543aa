"""The on-disk latent cache the DiT trainer reads instead of running the VAE and the text encoder every step.

Layout of a cache folder (workspace/cache/latents, written by the cache.latents stage, latent_stage.py):
  cache.json     the VAE it was built with (folder, weights sha256, latent shift/scale, version), the text
                 encoder's identity, and the counts of the run that wrote it
  index.parquet  one row per latent: key, vae_version, clip_id, frames, height, width, bucket, shape, shard, tiers
  latents/<vae version>/<bucket>/<shard>.safetensors   tensors named by their key, up to shard_size per file
  text/          caption embeddings (components/dit/text_cache.py layout), every caption variant of every clip
                 and, beside them, null.safetensors: the empty caption over all max_length positions (the null
                 caption a randomly initialised model starts with)
A key hashes the VAE version with the request (clip, source frames, size), so latents of another VAE (other
weights or other latent statistics) are never served: with a new VAE every key misses and is encoded again.
LatentCache is a LatentSource (components/dit/latents.py): any rank, stage or epoch reads any entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from components.dit.captions import CaptionEmbeddings
from components.dit.latents import LatentRequest
from components.dit.text_cache import TextEmbeddingCache

META = "cache.json"
INDEX = "index.parquet"
LATENTS = "latents"
TEXT = "text"
NULL_CAPTION = "null.safetensors"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
INDEX_COLUMNS = ["key", "vae_version", "clip_id", "frames", "height", "width", "bucket", "num_frames", "fps",
                 "shape", "shard", "tiers"]


class LatentCacheError(KeyError):
    """A request the cache cannot serve, or a cache that does not fit the caller; the message says which."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is meant to be read
        return str(self.args[0]) if self.args else ""


def vae_version(weights_sha256: str, shift: list[float], scale: list[float]) -> str:
    """16 hex chars naming a VAE: its weights file's sha256 and the latent statistics it normalises with."""
    blob = json.dumps([weights_sha256, [round(float(v), 8) for v in shift], [round(float(v), 8) for v in scale]])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sample_key(version: str, request: LatentRequest) -> str:
    """32 hex chars: the VAE version and the request (clip, source frames, height, width)."""
    blob = json.dumps([version, request.clip_id, list(request.frames), request.height, request.width])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def frames_text(frames: tuple[int, ...]) -> str:
    return ",".join(str(f) for f in frames)


def bucket_dir(name: str) -> str:
    """A bucket name (64px/17f/1.00) as one folder name (64px_17f_1.00)."""
    return name.replace("/", "_")


def write_shards(items: list[tuple[str, torch.Tensor]], root: Path, folder: str, shard_size: int,
                 dtype: str) -> dict[str, str]:
    """Write (key, latent) pairs into shards of <= shard_size under root/folder; returns key -> shard path.

    A shard is named by the hash of its keys, so the same latents always land in the same file name
    (reproducible outputs for DVC), and writes go through a temp file and a rename (no half shard is ever read).
    """
    out = {}
    items = sorted(items, key=lambda item: item[0])
    for start in range(0, len(items), shard_size):
        chunk = items[start : start + shard_size]
        name = hashlib.sha256("\n".join(k for k, _ in chunk).encode()).hexdigest()[:16]
        relative = f"{folder}/{name}.safetensors"
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        save_file({k: v.to(DTYPES[dtype]).contiguous() for k, v in chunk}, str(tmp), metadata={"format": "latents"})
        os.replace(tmp, path)
        out.update({k: relative for k, _ in chunk})
    return out


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link a file kept from a previous cache into the new one (a copy across filesystems)."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def null_caption_path(text: TextEmbeddingCache) -> Path:
    """Where a cache's null caption lives: in the text store's folder of that encoder identity."""
    return Path(text.folder) / NULL_CAPTION


class ReadOnlyEncoder:
    """The text-cache Encoder identity of the cache's captions; a caption it does not hold is an error, not a load."""

    def __init__(self, name: str, version: str, max_length: int, dim: int, folder: Path):
        self.name, self.version, self.max_length, self.dim, self.folder = name, version, max_length, dim, folder

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        shown = ", ".join(repr(c) for c in captions[:3])
        raise LatentCacheError(f"latent cache {self.folder}: {len(captions)} caption(s) not cached ({shown}); "
                               "rerun cache.latents over the tables these captions come from (with score_text: true "
                               "when the stage's data.score_text appends scores)")

    def null_embedding(self) -> torch.Tensor:
        """The null caption (L, dim) cache.latents stored: what a randomly initialised model starts with."""
        path = null_caption_path(TextEmbeddingCache(self.folder / TEXT, self))
        if not path.exists():
            raise LatentCacheError(f"latent cache {self.folder}: {path} is missing (written by an older "
                                   "cache.latents); rerun cache.latents")
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor("null").float()


class LatentCache:
    """Read side of a cache folder: get(LatentRequest) -> latents (C, t, h, w) float32, and the captions."""

    def __init__(self, folder: str | Path, expect_vae: str | None = None, max_open: int = 64):
        self.folder = Path(folder)
        meta_path, index_path = self.folder / META, self.folder / INDEX
        for path in (meta_path, index_path):
            if not path.exists():
                raise FileNotFoundError(f"latent cache {self.folder}: {path.name} is missing; run cache.latents")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        self.vae_version = self.meta["vae"]["version"]
        if expect_vae is not None and expect_vae != self.vae_version:
            raise LatentCacheError(f"latent cache {self.folder} holds latents of VAE {self.vae_version} "
                                   f"({self.meta['vae']['dir']}), this stage uses VAE {expect_vae}: "
                                   "rerun cache.latents")
        index = pd.read_parquet(index_path, columns=["key", "shard"])
        self.index = dict(zip(index["key"], index["shard"]))
        self.max_open = max_open
        self._open: dict[str, Any] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self.index)

    def key(self, request: LatentRequest) -> str:
        return sample_key(self.vae_version, request)

    def contains(self, request: LatentRequest) -> bool:
        return self.key(request) in self.index

    def _shard(self, relative: str):
        if relative not in self._open:
            if len(self._open) >= self.max_open:  # bound open files: drop the oldest handle
                self._open.pop(next(iter(self._open)))
            self._open[relative] = safe_open(str(self.folder / relative), framework="pt")
        return self._open[relative]

    def get(self, request: LatentRequest) -> torch.Tensor:
        """Latents (C, t, h, w) float32 of a request; a miss is an error naming the clip, frames and size."""
        key = self.key(request)
        shard = self.index.get(key)
        if shard is None:
            raise LatentCacheError(f"latent cache {self.folder} (VAE {self.vae_version}) has no latents for clip "
                                   f"{request.clip_id} frames {frames_text(request.frames)} at "
                                   f"{request.height}x{request.width}: rerun cache.latents with this table and buckets")
        self.hits += 1
        return self._shard(shard).get_tensor(key).float()

    def captions(self) -> CaptionEmbeddings:
        """Caption -> (emb, mask) from the cache's text store; the text encoder is never loaded."""
        text = self.meta["text"]
        encoder = ReadOnlyEncoder(text["name"], text["version"], int(text["max_length"]), int(text["dim"]),
                                  self.folder)
        return CaptionEmbeddings(encoder, TextEmbeddingCache(self.folder / TEXT, encoder, text.get("dtype", "float32")))
