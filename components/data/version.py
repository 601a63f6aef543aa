"""data.version: track the raw data folder with DVC (data.dvc), push it to the remote, tag its hash."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic import Field

from components.config import StageConfig
from components.errors import StageError
from components.stage import StageContext, stage
from components.workspace import project_root


class VersionConfig(StageConfig):
    """Which folder DVC versions and where it is pushed."""

    path: str = "data"  # relative to the project root; data.dvc sits beside it
    # remote URL: a local folder (default: <workspace>/dvc-remote) or s3://bucket/prefix; env REELFORGE_DVC_REMOTE wins
    remote_url: str | None = None
    remote_name: str = "reelforge"
    push: bool = True
    jobs: int = Field(4, ge=1)


def dvc(*args: str, cwd: Path) -> str:
    """Run a dvc command in the project; a failure raises with DVC's own message."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StageError(f"dvc {' '.join(args)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def ensure_remote(cfg: VersionConfig, root: Path, workspace: Path) -> str:
    """The default remote: S3 (or any URL) from config/env, else the one already set, else a workspace folder.

    A local default goes to .dvc/config.local (machine-specific, not committed); an S3 URL is team-wide.
    """
    url = os.environ.get("REELFORGE_DVC_REMOTE") or cfg.remote_url
    if not url:
        proc = subprocess.run([sys.executable, "-m", "dvc", "remote", "default"], cwd=root, capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():  # exits 1 with "No default remote set" otherwise
            return proc.stdout.strip()
        url = str(workspace / "dvc-remote")
    scope = [] if "://" in url else ["--local"]
    dvc("remote", "add", *scope, "--default", "--force", cfg.remote_name, url, cwd=root)
    return url


def read_dvc_file(dvc_file: Path) -> dict:
    """The md5, file count and size DVC recorded for the folder."""
    out = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [{}])[0]
    return {"md5": out.get("md5", ""), "nfiles": out.get("nfiles", 0), "size": out.get("size", 0)}


@stage("data.version", config=VersionConfig, output="data/version", dvc=False,
       inputs=lambda cfg, ws: {"raw": str(project_root() / cfg.path)})
def version(ctx: StageContext) -> dict[str, float]:
    """Version the raw data with DVC: `dvc add` (data.dvc) and `dvc push` to the default remote."""
    cfg: VersionConfig = ctx.cfg
    root = project_root()
    if not (root / ".dvc").is_dir():
        raise StageError(f"{root} is not a DVC project (no .dvc/); run `dvc init` in the git checkout")
    dvc("add", "--quiet", cfg.path, cwd=root)
    info = read_dvc_file(root / f"{cfg.path}.dvc")
    remote = ensure_remote(cfg, root, ctx.workspace)
    if cfg.push:
        dvc("push", "--jobs", str(cfg.jobs), f"{cfg.path}.dvc", cwd=root)
    record = {"path": cfg.path, "dvc_file": f"{cfg.path}.dvc", **info, "remote": remote if remote.startswith("s3://") else "local"}
    (ctx.out / "version.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    ctx.tracker.set_tags({f"reelforge.dvc.{cfg.path}": info["md5"], "reelforge.dvc_remote": remote})
    ctx.tracker.log_dataset(name=cfg.path, source=str(root / cfg.path), digest=info["md5"].replace(".dir", ""), context="version")
    return {"nfiles": float(info["nfiles"]), "size_bytes": float(info["size"])}
