"""Per-video result shards kept outside stage outputs, so a re-run, a retry or a streaming run skips finished videos.

A shard is `<root>/<video_id>-<key>.parquet`; the key hashes everything that determines its contents (the
step's config, the provenance of its models, the clip ranges), so a changed recipe or a re-split video simply
misses and is recomputed, while stale shards never answer for the new inputs.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

SHARD_FORMAT = "1"  # bump when the shard layout changes, so old shards miss instead of being misread


def shard_key(payload: Any, n: int = 16) -> str:
    """A short stable hash of a JSON-able payload (config, provenance, clip ranges)."""
    blob = json.dumps({"format": SHARD_FORMAT, "payload": payload}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


class ShardStore:
    """Parquet shards of one step (score, caption, ...) under one folder, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, video_id: str, key: str) -> Path:
        return self.root / f"{video_id}-{key}.parquet"

    def load(self, video_id: str, key: str) -> pd.DataFrame | None:
        """The finished shard, or None when this video was never done with this key."""
        path = self.path(video_id, key)
        return pd.read_parquet(path) if path.exists() else None

    def save(self, video_id: str, key: str, table: pd.DataFrame) -> Path:
        """Write through a temp file and rename, so a crash never leaves a half shard that looks done."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(video_id, key)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, final)
        return final
