"""vae.stage1 under torchrun with 2 CPU ranks (gloo), DDP and DeepSpeed ZeRO-2: killed after a checkpoint, the same
command resumes at the saved step with the same next-step loss as an uninterrupted run (micro sizes)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from components.data.ingest import IngestConfig, ingest
from components.data.synth import SynthConfig, synthesize
from components.stage import StageContext
from components.tracking import NoopTracker
from components.training.vae_model import export_vae
from models.vae import VAE_models

pytestmark = pytest.mark.slow

SMALL = dict(n_videos=4, n_images=2, shots_per_video=(1, 1), shot_seconds=(1.0, 1.2), fps_choices=[8],
             frame_sizes=[(48, 48)], image_sizes=[(48, 48)], plant_bad=False)
COMMON = ["steps=6", "checkpoint_every=2", "log_every=1", "batch_size=1", "val_every=100", "val_clips=1",
          "data.size=[16,16]", "data.crop=null", "data.num_frames=5", "data.num_workers=1", "data.cache=off", "data.heldout_fraction=0.2",
          "launch.mode=torchrun", "launch.nproc_per_node=2", "progress=false", "deepspeed.torch_adam=true",
          "precision=fp32"]  # DeepSpeed trains in fp32 on CPU; the DDP reference must too (the profile asks for bf16)


def stage_run(ws: Path, *sets: str, check: bool = True) -> subprocess.CompletedProcess:
    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REELFORGE_"))}
    env.update(REELFORGE_HOME=str(ws), REELFORGE_ROOT=str(REPO), REELFORGE_SYSTEM_METRICS="0", OMP_NUM_THREADS="1",
               REELFORGE_STAGE_MODULES="components.training.vae_stages")
    args = [a for s in (*COMMON, *sets) for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "components.cli", "stage", "run", "vae.stage1", "--profile", "tiny",
                           *args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def loss_history(ws: Path) -> dict[int, float]:
    """train/loss per step over every run of the stage in this workspace (a resumed run logs only its own steps)."""
    client = mlflow.MlflowClient(f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
    out = {}
    exp = client.get_experiment_by_name("reelforge").experiment_id
    for run in client.search_runs([exp], order_by=["attributes.start_time ASC"]):
        for m in client.get_metric_history(run.info.run_id, "train/loss"):
            out[m.step] = m.value
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A micro corpus ingested and a (random) stage-0 2D VAE export: what vae.stage1 starts from."""
    root = tmp_path_factory.mktemp("base")
    ws = root / "ws"
    synthesize(root / "raw", SynthConfig(seed=11, **SMALL))
    out = ws / "data" / "ingest"
    out.mkdir(parents=True)
    ingest(StageContext(name="data.ingest", profile="tiny", cfg=IngestConfig(source=str(root / "raw"), progress=False),
                        workspace=ws, out=out, inputs={}, checkpoint_dir=root / "ck", tracker=NoopTracker()))
    export_vae(VAE_models["tiny"](), ws / "vae" / "stage0", {"model": "tiny", "stage": 0}, parts=["spatial"])
    return ws


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    """An uninterrupted 2-rank DDP run."""
    ws = tmp_path_factory.mktemp("ref") / "ws"
    shutil.copytree(base, ws)
    stage_run(ws, "strategy=ddp")
    return loss_history(ws), json.loads((ws / "vae" / "stage1" / "metrics.json").read_text())


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed"])
def test_vae_stage1_kill_and_resume_continues_the_trajectory(strategy, base, reference, tmp_path):
    ref_losses, ref_metrics = reference
    assert sorted(ref_losses) == list(range(1, 7))
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    killed = stage_run(ws, f"strategy={strategy}", "stop_after=4", check=False)
    assert killed.returncode != 0
    assert (ws / "checkpoints" / "vae.stage1" / "latest").read_text().strip() == "step_00000004"
    assert not (ws / "vae" / "stage1").exists()

    stage_run(ws, f"strategy={strategy}")
    metrics = json.loads((ws / "vae" / "stage1" / "metrics.json").read_text())
    assert metrics["resumed_from"] == 4 and metrics["step"] == 6
    losses = loss_history(ws)
    assert sorted(losses) == list(range(1, 7))
    # the first step after the resume equals the uninterrupted run's step 5, and so does the end
    assert losses[5] == pytest.approx(ref_losses[5], rel=1e-5, abs=1e-6)
    assert metrics["loss_last"] == pytest.approx(ref_metrics["loss_last"], rel=1e-5, abs=1e-6)
    assert (ws / "vae" / "stage1" / "model.safetensors").stat().st_size > 0
