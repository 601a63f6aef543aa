"""`reelforge stage run` under torchrun with 2 CPU ranks (gloo): DDP and DeepSpeed ZeRO-2 train, get killed after a
checkpoint, and resume from the same command with the same next-step loss as an uninterrupted run."""
import json
import os
import subprocess
import sys

import mlflow
import pytest
import torch

pytestmark = pytest.mark.slow

COMMON = ["--set", "steps=24", "--set", "checkpoint_every=8", "--set", "log_every=1", "--set", "batch_size=8",
          "--set", "launch.mode=torchrun", "--set", "launch.nproc_per_node=2", "--set", "progress=false"]


def stage_run(ws, root, *sets, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REELFORGE_"))}
    env.update(REELFORGE_HOME=str(ws), REELFORGE_ROOT=str(root), REELFORGE_SYSTEM_METRICS="0", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "components.cli", "stage", "run", "train.smoke", "--profile", "tiny",
                           *COMMON, *sets], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def loss_history(ws):
    """train/loss per step over every run of the stage in this workspace (a resumed run logs only its own steps)."""
    mlflow.set_tracking_uri(f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    out = {}
    for run in client.search_runs([client.get_experiment_by_name("reelforge").experiment_id], order_by=["attributes.start_time ASC"]):
        for m in client.get_metric_history(run.info.run_id, "train/loss"):
            out[m.step] = m.value
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-rank DDP run."""
    from tests.conftest import REPO

    ws = tmp_path_factory.mktemp("ref")
    stage_run(ws, REPO, "--set", "strategy=ddp")
    return loss_history(ws), json.loads((ws / "train" / "smoke" / "metrics.json").read_text()), ws


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed"])
def test_kill_and_resume_continues_the_trajectory(strategy, reference, tmp_path):
    from tests.conftest import REPO

    ref_losses, ref_metrics, ref_ws = reference
    assert ref_metrics["loss_last"] < 0.5 * ref_metrics["loss_first"]  # it trains
    record = json.loads((ref_ws / "manifests" / "train.smoke.json").read_text())
    ranks_on = "cuda" if torch.cuda.is_available() else "cpu"  # what the ranks ran on, reported by rank 0
    assert (record["device"], record["world_size"]) == (ranks_on, 2)

    ws = tmp_path / "ws"
    killed = stage_run(ws, REPO, "--set", f"strategy={strategy}", "--set", "stop_after=16", check=False)
    assert killed.returncode != 0
    assert (ws / "checkpoints" / "train.smoke" / "latest").read_text().strip().endswith("16")
    assert not (ws / "train" / "smoke").exists()  # no output from a failed run; the partial one is kept aside
    assert json.loads((ws / "failed" / "train.smoke" / "error.json").read_text())["stage"] == "train.smoke"

    stage_run(ws, REPO, "--set", f"strategy={strategy}")
    metrics = json.loads((ws / "train" / "smoke" / "metrics.json").read_text())
    assert metrics["resumed_from"] == 16 and metrics["step"] == 24
    losses = loss_history(ws)
    assert sorted(losses) == list(range(1, 25))
    # the first step after the resume equals the uninterrupted run's step 17, and so does the end
    assert losses[17] == pytest.approx(ref_losses[17], rel=1e-5, abs=1e-7)
    assert metrics["loss_last"] == pytest.approx(ref_metrics["loss_last"], rel=1e-5, abs=1e-7)
    assert (ws / "train" / "smoke" / "model.safetensors").stat().st_size > 0
