"""data.version: dvc add + push of the raw folder, the DVC hash tagged on the MLflow run and on every later stage."""
import hashlib
import json
import subprocess
import sys

import mlflow
import pytest
import yaml

from components import tracking
from components.config import resolve
from components.data.synth import SynthConfig, synthesize
import components.data.version  # noqa: F401  (registers data.version)
from components.runner import run_stage
from tests.conftest import REPO, make_project

pytestmark = pytest.mark.slow


def dvc_dir_md5(files: dict[str, bytes]) -> str:
    """DVC's folder hash: md5 of the JSON list of {md5, relpath} entries, sorted by path, plus '.dir'."""
    entries = [{"md5": hashlib.md5(data).hexdigest(), "relpath": name} for name, data in sorted(files.items())]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def test_version_adds_pushes_and_tags(tmp_path, monkeypatch):
    root = make_project(tmp_path / "project")
    files = {"videos/a.mp4": b"not really a video", "videos/b.txt": b"caption"}
    for name, data in files.items():
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / name).write_bytes(data)
    monkeypatch.setenv("REELFORGE_ROOT", str(root))
    monkeypatch.setenv("REELFORGE_HOME", str(root / "workspace"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REELFORGE_DVC_REMOTE", raising=False)
    monkeypatch.chdir(root)

    result = run_stage("data.version", "tiny")
    md5 = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]
    assert md5 == dvc_dir_md5(files)
    record = json.loads((root / "workspace" / "data" / "version" / "version.json").read_text())
    assert record["md5"] == md5 and record["nfiles"] == 2 and record["remote"] == "local"

    remote = root / "workspace" / "dvc-remote"
    pushed = {p.parent.name + p.name for p in remote.rglob("*") if p.is_file()}
    assert md5 in pushed  # the folder listing object (<md5>.dir) reached the remote
    assert hashlib.md5(files["videos/a.mp4"]).hexdigest() in pushed
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--cloud", "data.dvc"], cwd=root, capture_output=True, text=True)
    assert "Cache and remote 'reelforge' are in sync." in status.stdout

    mlflow.set_tracking_uri(tracking.tracking_uri())
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.data.tags["reelforge.dvc.data"] == md5
    assert [i.dataset.digest for i in run.inputs.dataset_inputs] == [md5.replace(".dir", "")[:36]]
    # the manifest of any later stage carries the DVC hash of the raw data
    assert result["dvc"] == {"data": md5}


def test_committed_data_dvc_is_the_tiny_profiles_corpus(tmp_path, monkeypatch):
    """A run synthesises ./data and data.version writes data.dvc again: on a fresh clone it must come out as the
    committed file (a stale data.dvc shows as a change after every run and names a corpus nobody can rebuild)."""
    monkeypatch.setenv("REELFORGE_ROOT", str(REPO))
    synthesize(tmp_path, resolve("data.synth", SynthConfig, "tiny", []))
    files = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out = yaml.safe_load((REPO / "data.dvc").read_text())["outs"][0]
    assert (out["md5"], out["nfiles"], out["size"]) == (dvc_dir_md5(files), len(files), sum(map(len, files.values())))
