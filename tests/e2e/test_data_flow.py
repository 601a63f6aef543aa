"""`reelforge run` end to end on a micro corpus: Prefect flow, MLflow parent/child runs, DVC, GX, quarantine."""
import json
import os
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest
import yaml

from components.hashing import tree_sha256
from tests.conftest import make_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("e2e") / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["overrides"]["data"]["synth"] = {"n_videos": 5, "n_images": 2}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REELFORGE_", "PREFECT_"))}
    env.update(REELFORGE_ROOT=str(root), PREFECT_HOME=str(root / "prefect-home"), REELFORGE_SYSTEM_METRICS="0",
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}")
    return root, env


def reelforge(root, env, *args, check=True):
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "components.cli", *args], cwd=root, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"reelforge {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc, time.time() - started


def runs(root):
    mlflow.set_tracking_uri(f"sqlite:///{root / 'workspace' / 'mlflow' / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["reelforge"], output_format="list", order_by=["attributes.start_time ASC"])


def test_first_run_tracks_versions_validates_and_quarantines(project):
    root, env = project
    proc, first_wall = reelforge(root, env, "run", "--profile", "tiny", "--stop-after", "data")
    assert "pipeline stages" in proc.stdout and "data.validate" in proc.stdout  # the wall-time table

    all_runs = runs(root)
    parents = [r for r in all_runs if r.data.tags.get("reelforge.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["reelforge.prefect_flow_run_id"]
    children = {r.data.tags["reelforge.stage"]: r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"data.ingest", "data.version", "data.validate"}
    assert all(r.info.status == "FINISHED" for r in children.values())

    dvc_md5 = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]
    for run in children.values():
        assert run.data.tags["reelforge.git_commit"] not in ("", "unknown")
        assert run.data.tags["reelforge.prefect_flow_run_id"] == parent.data.tags["reelforge.prefect_flow_run_id"]
    assert children["data.version"].data.tags["reelforge.dvc.data"] == dvc_md5
    assert children["data.validate"].data.tags["reelforge.dvc.data"] == dvc_md5
    ingest_inputs = children["data.ingest"].inputs.dataset_inputs
    assert ingest_inputs and all(len(i.dataset.digest) > 0 for i in ingest_inputs)
    client = mlflow.MlflowClient()
    docs = [a.path for a in client.list_artifacts(children["data.validate"].info.run_id)]
    assert "data_docs" in docs

    # every planted bad file is quarantined with the kind the ground truth expects; nothing is lost
    truth = json.loads((root / "data" / "ground_truth.json").read_text())
    quarantine = pd.read_parquet(root / "workspace" / "data" / "ingest" / "quarantine.parquet")
    assert dict(zip(quarantine["relpath"], quarantine["error_kind"])) == {b["path"]: b["kind"] for b in truth["bad_files"]}
    summary = json.loads((root / "workspace" / "data" / "ingest" / "summary.json").read_text())
    assert summary["ingested"] == summary["accepted"] + summary["quarantined"]
    assert summary["accepted"] == len(truth["videos"]) + len(truth["images"])

    # the data segment's stages are up to date (the later segments did not run in this test)
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "data_ingest", "data_validate", "data.dvc"],
                            cwd=root, env=env, capture_output=True, text=True)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout

    # second run: nothing changed, so DVC skips ingest and validate and the corpus is not rewritten
    ingest_hashes = tree_sha256(root / "workspace" / "data" / "ingest")
    proc, second_wall = reelforge(root, env, "run", "--profile", "tiny", "--stop-after", "data")
    parent2 = [r for r in runs(root) if r.data.tags.get("reelforge.kind") == "pipeline"][-1]
    skipped = {r.data.tags["reelforge.stage"] for r in runs(root)
               if r.data.tags.get("mlflow.parentRunId") == parent2.info.run_id and r.data.tags.get("reelforge.skipped") == "true"}
    assert skipped == {"data.ingest", "data.validate"}
    assert "already holds this corpus" in proc.stdout
    assert second_wall < first_wall

    # dvc repro --force on the same checkout reproduces byte-identical outputs
    subprocess.run([sys.executable, "-m", "dvc", "repro", "--force", "data_validate"], cwd=root, env=env, check=True,
                   capture_output=True)
    assert tree_sha256(root / "workspace" / "data" / "ingest") == ingest_hashes


def test_validation_failure_stops_the_flow_with_a_named_expectation(project):
    root, env = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["overrides"]["data"]["validate"] = {"max_fps": 10}  # the corpus has 12-30 fps videos
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc, _ = reelforge(root, env, "run", "--profile", "tiny", "--from", "data.validate", "--stop-after", "data", check=False)
    assert proc.returncode != 0
    error = json.loads((root / "workspace" / "failed" / "data.validate" / "error.json").read_text())
    assert error["exit_code"] == 3
    assert "fps" in error["message"] and "expect_column_values_to_be_between" in error["message"]
    parent = [r for r in runs(root) if r.data.tags.get("reelforge.kind") == "pipeline"][-1]
    assert parent.info.status == "FAILED"
