"""Where things live: the project root, the workspace, and fsspec helpers for local or s3:// paths."""
from __future__ import annotations

import os
from pathlib import Path

import fsspec


def project_root() -> Path:
    """The folder holding dvc.yaml and configs/ (REELFORGE_ROOT, else the current directory)."""
    return Path(os.environ.get("REELFORGE_ROOT", os.getcwd())).resolve()


def workspace() -> Path:
    """Stage outputs, MLflow store, DVC remote and checkpoints (REELFORGE_HOME, default ./workspace)."""
    home = os.environ.get("REELFORGE_HOME")
    path = Path(home) if home else project_root() / "workspace"
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_remote(uri: str) -> bool:
    """True for fsspec URIs such as s3://bucket/key (not plain local paths)."""
    return "://" in str(uri) and not str(uri).startswith("file://")


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for a URI or local path, and the path inside it."""
    fs, path = fsspec.core.url_to_fs(str(uri))
    return fs, path
