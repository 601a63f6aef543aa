"""manifest.json: what a stage read and wrote, with hashes, so any output can be traced and reproduced."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from components.hashing import content_hash, exists, tree_sha256
from components.workspace import project_root

MANIFEST_DIR = "manifests"


def dvc_hashes(root: Path | None = None) -> dict[str, str]:
    """md5 of every DVC-tracked data folder (*.dvc files at the project root), e.g. {'data': '…​.dir'}."""
    root = root or project_root()
    out = {}
    for dvc_file in sorted(p for p in root.glob("*.dvc") if p.is_file()):
        doc = yaml.safe_load(dvc_file.read_text()) or {}
        for entry in doc.get("outs", []):
            out[entry.get("path", dvc_file.stem)] = entry.get("md5", "")
    return out


def build(
    stage: str,
    profile: str,
    params_hash: str,
    inputs: dict[str, str],
    output_dir: Path,
    run_id: str | None,
    git_commit: str,
    wall_time_s: float,
    world_size: int,
    device: str,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of one finished stage run."""
    files = tree_sha256(output_dir)
    return {
        "stage": stage,
        "profile": profile,
        "params_hash": params_hash,
        "inputs": {name: {"uri": str(uri), "sha256": content_hash(uri) if exists(uri) else None}
                   for name, uri in sorted(inputs.items())},
        "outputs": {"dir": str(output_dir), "files": files},
        "dvc": dvc_hashes(),
        "git_commit": git_commit,
        "mlflow_run_id": run_id,
        "wall_time_s": round(wall_time_s, 3),
        "world_size": world_size,
        "device": device,
        # device-hours count accelerators only; a CPU run records 0 so cost reports stay honest
        "device_hours": round(wall_time_s * world_size / 3600, 6) if device != "cpu" else 0.0,
        "cpu_hours": round(wall_time_s * world_size / 3600, 6),
        "host": socket.gethostname(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": metrics,
    }


def path_for(workspace: Path, stage: str) -> Path:
    """workspace/manifests/<stage>.json: outside the output folder so output hashes stay reproducible."""
    return workspace / MANIFEST_DIR / f"{stage}.json"


def write(path: Path, manifest: dict[str, Any]) -> None:
    """Atomic write: temp file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read(path: Path) -> dict[str, Any] | None:
    """The manifest at `path`, or None when the stage has not run."""
    return json.loads(path.read_text()) if path.exists() else None
