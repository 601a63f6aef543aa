"""A cache of whole decoded clips at training size, for corpora small enough to decode once (the tiny profile)."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Callable

import numpy as np


def cache_key(path: str, start: int, end: int, size: tuple[int, int]) -> str:
    """Names one decoded clip; a different source range or training size is a different entry."""
    return hashlib.sha256(f"{path}|{start}|{end}|{size[0]}x{size[1]}".encode()).hexdigest()[:32]


class ClipCache:
    """mode off: always decode; memory: a dict in this process (each DataLoader worker holds its own);
    disk: .npy files under `folder`, written atomically, shared by every worker and rank."""

    def __init__(self, mode: str, folder: Path | None = None):
        if mode not in ("off", "memory", "disk"):
            raise ValueError(f"ClipCache: mode must be off, memory or disk, got {mode!r}")
        if mode == "disk" and folder is None:
            raise ValueError("ClipCache: mode disk needs a folder")
        self.mode = mode
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for `key`, or decode() stored under it."""
        if self.mode == "off":
            return decode()
        if self.mode == "memory":
            if key in self._memory:
                self.hits += 1
                return self._memory[key]
            self.misses += 1
            self._memory[key] = decode()
            return self._memory[key]
        file = self.folder / f"{key}.npy"
        if file.exists():
            self.hits += 1
            return np.load(file)
        self.misses += 1
        frames = decode()
        file.parent.mkdir(parents=True, exist_ok=True)
        # two workers may decode the same clip at once: each writes its own temp file, the rename is atomic
        tmp = file.with_name(f".{key}.{os.getpid()}.{uuid.uuid4().hex[:6]}.npy")
        np.save(tmp, frames)
        os.replace(tmp, file)
        return frames
