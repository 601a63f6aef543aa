"""Shared fixtures: an isolated project root + workspace per test, so nothing writes into the checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("REELFORGE_SYSTEM_METRICS", "0")  # a sampling thread per stage only slows small tests
# pytest-xdist runs one worker per core: more torch threads per worker only oversubscribe the machine
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """REELFORGE_HOME and MLflow store in tmp; project root = tmp copy of configs and params."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    ws = tmp_path / "ws"
    monkeypatch.setenv("REELFORGE_ROOT", str(root))
    monkeypatch.setenv("REELFORGE_HOME", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_PARENT_RUN_ID", raising=False)
    return ws


def make_project(dest: Path) -> Path:
    """A git + DVC checkout of this project's pipeline files (configs, dvc.yaml, params, stage code) in dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("configs", "components", "flows", "models"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=dest, check=True, env=env)
    return dest
