"""What the Prefect flows call: the pipeline's MLflow parent run and one stage run through DVC or directly.

Kept free of Prefect so the same steps run from a plain script, a Slurm job or a test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from components import manifest, stage as stages, tracking
from components.errors import EXIT_FAILED, EXIT_TRANSIENT
from components.workspace import project_root, workspace


class StageFailed(RuntimeError):
    """A stage exited non-zero; `exit_code` says whether a retry can help (see components.errors)."""

    def __init__(self, stage: str, exit_code: int, message: str):
        super().__init__(f"stage {stage} failed (exit {exit_code}): {message}")
        self.stage, self.exit_code = stage, exit_code

    @property
    def transient(self) -> bool:
        return self.exit_code == EXIT_TRANSIENT


def dvc_stage_name(stage: str) -> str:
    """dvc.yaml names cannot hold dots: data.ingest → data_ingest."""
    return stage.replace(".", "_")


def child_env() -> dict[str, str]:
    """Environment for stage subprocesses: this interpreter's bin first, so `reelforge` and `dvc` resolve to it."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("REELFORGE_ROOT", str(project_root()))
    return env


def start_parent_run(profile: str, flow_run_id: str | None, name: str = "pipeline") -> str:
    """The pipeline's MLflow parent run; stage runs become its children through MLFLOW_PARENT_RUN_ID."""
    import mlflow

    exp_id = tracking.setup()
    tags = {"reelforge.profile": profile, "reelforge.git_commit": tracking.git_commit(), "reelforge.kind": "pipeline"}
    if flow_run_id:
        tags["reelforge.prefect_flow_run_id"] = flow_run_id
    run = mlflow.MlflowClient().create_run(exp_id, run_name=f"{name}-{profile}", tags=tags)
    os.environ["MLFLOW_PARENT_RUN_ID"] = run.info.run_id
    if flow_run_id:
        os.environ["REELFORGE_FLOW_RUN_ID"] = flow_run_id
    return run.info.run_id


def finish_parent_run(run_id: str, rows: list[dict[str, Any]], status: str = "FINISHED") -> None:
    """Log the per-stage table on the parent run and close it."""
    import mlflow

    client = mlflow.MlflowClient(tracking.tracking_uri())
    client.log_dict(run_id, {"stages": rows}, "pipeline/stages.json")
    for row in rows:
        client.log_metric(run_id, f"pipeline/wall_time_s/{row['stage']}", float(row["wall_time_s"]))
    client.set_terminated(run_id, status)


def _manifest_run_id(stage: str) -> str | None:
    found = manifest.read(manifest.path_for(workspace(), stage))
    return found.get("mlflow_run_id") if found else None


def _record_skip(stage: str, profile: str, previous_run: str | None) -> str | None:
    """A child run that says the stage was up to date, pointing at the run that made its outputs."""
    import mlflow

    parent = os.environ.get("MLFLOW_PARENT_RUN_ID")
    if not parent:
        return None
    exp_id = tracking.setup()
    tags = {"mlflow.parentRunId": parent, "reelforge.stage": stage, "reelforge.profile": profile,
            "reelforge.skipped": "true", "reelforge.source_run_id": previous_run or ""}
    client = mlflow.MlflowClient()
    run = client.create_run(exp_id, run_name=f"{stage} (up to date)", tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def execute(stage: str, profile: str, use_dvc: bool = True, sets: list[str] | None = None) -> dict[str, Any]:
    """Run one stage in a subprocess: `dvc repro --single-item` for DVC stages, else `reelforge stage run`.

    Returns {stage, status: ran|skipped, wall_time_s, run_id}; raises StageFailed with the stage's exit code.
    """
    spec = stages.get(stage)
    before = _manifest_run_id(stage)
    started = time.time()
    if use_dvc and spec.dvc and not sets:
        cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", dvc_stage_name(stage)]
    else:
        cmd = [sys.executable, "-m", "components.cli", "stage", "run", stage, "--profile", profile]
        for item in sets or []:
            cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=project_root(), env=child_env())
    wall = time.time() - started
    if proc.returncode != 0:
        error_file = workspace() / "failed" / stage / "error.json"
        info = json.loads(error_file.read_text()) if error_file.exists() else {}
        raise StageFailed(stage, int(info.get("exit_code", EXIT_FAILED)), info.get("message", f"{cmd[2:5]} exited {proc.returncode}"))
    after = _manifest_run_id(stage)
    if after is not None and after == before:
        return {"stage": stage, "status": "skipped", "wall_time_s": round(wall, 2), "run_id": _record_skip(stage, profile, after)}
    return {"stage": stage, "status": "ran", "wall_time_s": round(wall, 2), "run_id": after}


def synth(profile: str) -> dict[str, Any]:
    """Write the synthetic corpus (tiny profile's raw data) unless ./data already holds it."""
    started = time.time()
    cmd = [sys.executable, "-m", "components.cli", "data", "synth", "--profile", profile]
    proc = subprocess.run(cmd, cwd=project_root(), env=child_env())
    if proc.returncode != 0:
        raise StageFailed("data.synth", proc.returncode, "synthetic corpus generation failed")
    return {"stage": "data.synth", "status": "ran", "wall_time_s": round(time.time() - started, 2), "run_id": None}
