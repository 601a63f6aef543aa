"""Content hashes of files, folders and remote objects, for manifests and MLflow dataset digests."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from components.workspace import filesystem, is_remote

CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """sha256 of one local file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(path: str | Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} for every file under a local folder (sorted, names in `exclude` skipped)."""
    root = Path(path)
    out = {}
    for item in sorted(root.rglob("*")):
        if item.is_file() and item.name not in exclude:
            out[item.relative_to(root).as_posix()] = file_sha256(item)
    return out


def combine(hashes: dict[str, str]) -> str:
    """One digest for a folder: sha256 over the sorted (path, hash) pairs."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def content_hash(uri: str | Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 of a file or folder's content; for remote objects, the store's ETag/checksum listing."""
    if is_remote(str(uri)):
        fs, path = filesystem(str(uri))
        listing = fs.find(path, detail=True) if fs.isdir(path) else {path: fs.info(path)}
        stamp = {k: str(v.get("ETag") or v.get("checksum") or v.get("md5") or v.get("size")) for k, v in listing.items()}
        return combine(stamp)
    path = Path(uri)
    if path.is_dir():
        return combine(tree_sha256(path, exclude))
    return file_sha256(path)


def exists(uri: str | Path) -> bool:
    """True when a local path or fsspec URI exists."""
    if is_remote(str(uri)):
        fs, path = filesystem(str(uri))
        return fs.exists(path)
    return Path(uri).exists()
