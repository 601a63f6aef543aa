"""On-disk cache of caption embeddings: one safetensors file per (encoder, weights, max length, caption) key.

Layout: <root>/<encoder name>-<weights fingerprint[:16]>-L<max length>/<key[:2]>/<key>.safetensors, holding
"emb" (n, dim) and "mask" (L,), with the caption and encoder in the metadata (checked on read). Writes are
atomic (temp file + rename locally, a single PUT on object stores), so ranks may fill the cache at the same
time: two writers of one key write the same bytes and a reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from components.workspace import filesystem, is_remote

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Encoder(Protocol):
    """What the cache needs of a text encoder (components.dit.text_encoders.TextEncoder has it)."""

    name: str
    version: str
    max_length: int
    dim: int

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


class TextCacheConfig(BaseModel):
    """Where the cache lives and how entries are stored."""

    model_config = ConfigDict(extra="forbid")
    root: str = "cache/text"  # relative to the workspace, or an absolute path / s3:// URI
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # storage dtype; lookups return float32
    trim_padding: bool = True  # store tokens up to the last real one; masked positions come back as zeros
    batch_size: int = Field(64, ge=1)  # misses encoded and written per round


class CacheError(RuntimeError):
    """A cache file that cannot be read or does not belong to its key; the message names the file."""


@dataclass
class CacheStats:
    """Counters since the cache object was made: per requested caption, plus unique captions encoded."""

    hits: int = 0
    misses: int = 0
    encoded: int = 0
    written: int = 0


class TextEmbeddingCache:
    """Batch lookups of caption embeddings; misses are encoded in batches and written atomically."""

    def __init__(self, root: str | Path, encoder: Encoder, dtype: str = "float32", trim_padding: bool = True,
                 batch_size: int = 64) -> None:
        self.encoder = encoder
        self.dtype = DTYPES[dtype]
        self.trim_padding = trim_padding
        self.batch_size = batch_size
        safe_name = encoder.name.replace("/", "_")
        self.folder = f"{str(root).rstrip('/')}/{safe_name}-{encoder.version[:16]}-L{encoder.max_length}"
        self.fs, self._base = filesystem(self.folder)
        self.remote = is_remote(self.folder)
        self.stats = CacheStats()

    def key(self, caption: str) -> str:
        """sha256 of (encoder name, weights fingerprint, max length, caption)."""
        enc = self.encoder
        return hashlib.sha256(json.dumps([enc.name, enc.version, enc.max_length, caption]).encode()).hexdigest()

    def path(self, key: str) -> str:
        """The file of one key (fsspec path inside the cache's filesystem)."""
        return f"{self._base}/{key[:2]}/{key}.safetensors"

    def contains(self, caption: str) -> bool:
        """Whether the caption is cached (no counters touched)."""
        return self.fs.exists(self.path(self.key(caption)))

    def get(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (B, L, dim) float32 and masks (B, L) bool for the captions, encoding what is missing."""
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        missing: dict[str, None] = {}  # ordered set: each unique miss is encoded once
        for caption in captions:
            if caption in found or caption in missing:
                self.stats.hits += caption in found
                self.stats.misses += caption in missing
                continue
            entry = self._read(caption)
            if entry is None:
                self.stats.misses += 1
                missing[caption] = None
            else:
                self.stats.hits += 1
                found[caption] = entry
        found.update(self._encode_and_write(list(missing)))
        if not captions:
            length = self.encoder.max_length
            return torch.zeros(0, length, self.encoder.dim), torch.zeros(0, length, dtype=torch.bool)
        emb = torch.stack([found[c][0] for c in captions])  # (B, L, dim)
        mask = torch.stack([found[c][1] for c in captions])  # (B, L)
        return emb, mask

    def fill(self, captions: list[str], rank: int = 0, world_size: int = 1) -> int:
        """Encode and write the missing captions this rank owns (key mod world_size); returns how many."""
        unique = dict.fromkeys(captions)
        mine = [c for c in unique if int(self.key(c), 16) % world_size == rank and not self.contains(c)]
        self._encode_and_write(mine)
        return len(mine)

    def _encode_and_write(self, captions: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = {}
        for start in range(0, len(captions), self.batch_size):
            batch = captions[start : start + self.batch_size]
            emb, mask = self.encoder.encode(batch)  # (b, L, dim), (b, L)
            self.stats.encoded += len(batch)
            for caption, e, m in zip(batch, emb, mask):
                self._write(caption, e, m)
                out[caption] = self._as_stored(e, m)
        return out

    def _as_stored(self, emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What a later read returns: storage-dtype rounding and, when trimming, zeros after the last token."""
        emb = emb.to(self.dtype).float()
        if self.trim_padding:
            emb = emb.clone()
            emb[self._kept(mask) :] = 0
        return emb, mask.bool()

    @staticmethod
    def _kept(mask: torch.Tensor) -> int:
        real = mask.nonzero()
        return int(real.max()) + 1 if len(real) else 0

    def _write(self, caption: str, emb: torch.Tensor, mask: torch.Tensor) -> None:
        kept = self._kept(mask) if self.trim_padding else len(mask)
        tensors = {"emb": emb[:kept].to(self.dtype).contiguous(), "mask": mask.bool().contiguous()}
        meta = {"caption": caption, "encoder": self.encoder.name, "version": self.encoder.version,
                "max_length": str(self.encoder.max_length)}
        data = save_bytes(tensors, metadata=meta)
        path = self.path(self.key(caption))
        if self.remote:
            self.fs.pipe_file(path, data)  # one PUT: object stores never expose a partial object
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)  # atomic on POSIX: concurrent writers of one key each replace a whole file
        self.stats.written += 1

    def _read(self, caption: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.path(self.key(caption))
        try:
            with self.fs.open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        try:
            tensors = load_bytes(data)
            meta = _metadata(data)
        except Exception as err:
            raise CacheError(f"text cache file {path} is unreadable ({err}); delete it to re-encode") from err
        if meta.get("caption") != caption or meta.get("encoder") != self.encoder.name:
            raise CacheError(f"text cache file {path} holds caption {meta.get('caption')!r} of encoder "
                             f"{meta.get('encoder')!r}, not {caption!r} of {self.encoder.name!r}")
        length = self.encoder.max_length
        if tuple(tensors["mask"].shape) != (length,) or tensors["emb"].shape[1:] != (self.encoder.dim,):
            raise CacheError(f"text cache file {path}: mask {tuple(tensors['mask'].shape)} / emb "
                             f"{tuple(tensors['emb'].shape)} do not fit max_length {length}, dim {self.encoder.dim}")
        emb = torch.zeros(length, self.encoder.dim)
        emb[: tensors["emb"].shape[0]] = tensors["emb"].float()
        return emb, tensors["mask"].bool()


def open_text_cache(cfg: TextCacheConfig, encoder: Encoder, workspace: Path) -> TextEmbeddingCache:
    """The cache a config describes; a relative root lives in the workspace."""
    root = cfg.root if is_remote(cfg.root) or Path(cfg.root).is_absolute() else str(workspace / cfg.root)
    return TextEmbeddingCache(root, encoder, cfg.dtype, cfg.trim_padding, cfg.batch_size)


def _metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of a safetensors blob: an 8-byte little-endian header length, then the JSON header."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__", {})
