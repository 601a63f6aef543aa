"""dit.adapt8 through `reelforge stage run` under torchrun with 2 CPU ranks and DeepSpeed ZeRO-2 (gloo): killed right
after a checkpoint (--set stop_after=N), it resumes from the same command and repeats the killed run's steps."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import mlflow
import pytest
import torch

from components.config import resolve
from components.dit.captions import caption_embeddings
from components.dit.config import DiTStageConfig
from components.dit.model_io import build_model, export_model
from tests.unit.dit_testing import CAPTIONS, MICRO, MICRO_VIDEO, write_corpus, write_vae_exports

pytestmark = pytest.mark.slow
SETS = MICRO + MICRO_VIDEO + ["steps=8", "log_every=1", "strategy=deepspeed",
                              "launch.mode=torchrun", "launch.nproc_per_node=2"]


def stage_run(ws, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REELFORGE_"))}
    env.update(REELFORGE_HOME=str(ws), REELFORGE_ROOT=str(REPO), REELFORGE_SYSTEM_METRICS="0", OMP_NUM_THREADS="1",
               REELFORGE_STAGE_MODULES="components.dit.stages")
    sets = [arg for item in [*SETS, *extra] for arg in ("--set", item)]
    proc = subprocess.run([sys.executable, "-m", "components.cli", "stage", "run", "dit.adapt8", "--profile", "tiny",
                           *sets], env=env, capture_output=True, text=True, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def losses_per_run(ws) -> list[dict[int, float]]:
    """train/loss per step of each run of the stage in this workspace, oldest first."""
    mlflow.set_tracking_uri(f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("reelforge").experiment_id],
                              order_by=["attributes.start_time ASC"])
    return [{m.step: m.value for m in client.get_metric_history(r.info.run_id, "train/loss")} for r in runs]


def prepare(ws) -> None:
    """Corpus, VAE exports, an adapt7 export to start from, and the captions already in the text cache."""
    from tests.conftest import REPO

    torch.set_num_threads(1)
    write_corpus(ws, videos=2, frames=12)
    write_vae_exports(ws)
    os.environ["REELFORGE_ROOT"] = str(REPO)
    try:
        cfg = resolve("dit.adapt8", DiTStageConfig, "tiny", SETS)
    finally:
        os.environ.pop("REELFORGE_ROOT")
    model = build_model(cfg.model, seed=3)  # random weights stand in for the adapt7 export (zero final layer)
    export_model(ws / "dit" / "adapt7", model, None, {"stage": "dit.adapt7"})
    # both ranks of both runs then read embeddings instead of each loading MiniLM
    caption_embeddings(cfg.text, cfg.text_cache, "tiny", ws).get(CAPTIONS + cfg.sample.prompts)


def test_adapt8_zero2_on_two_ranks_resumes_after_a_kill(tmp_path):
    ws = tmp_path / "ws"
    prepare(ws)
    # killed right after the checkpoint of step 6 (checkpoints at 2, 4, 6; the last two are kept)
    killed = stage_run(ws, "checkpoint_every=2", "stop_after=6", check=False)
    assert killed.returncode != 0
    ckpt = ws / "checkpoints" / "dit.adapt8"
    assert (ckpt / "latest").read_text().strip() == "step_00000006"
    assert len(list((ckpt / "step_00000006" / "deepspeed").glob("*optim_states.pt"))) == 2  # a ZeRO partition each
    assert not (ws / "dit" / "adapt8").exists()
    # retry from the step-4 checkpoint, so the killed run's own steps 5 and 6 are the reference trajectory
    shutil.rmtree(ckpt / "step_00000006")
    (ckpt / "latest").write_text("step_00000004\n")

    stage_run(ws, "checkpoint_every=2")
    metrics = json.loads((ws / "dit" / "adapt8" / "metrics.json").read_text())
    assert metrics["resumed_from"] == 4 and metrics["step"] == 8
    assert (ws / "dit" / "adapt8" / "samples" / "step_00000008.mp4").stat().st_size > 0
    first, resumed = losses_per_run(ws)
    assert sorted(first) == list(range(1, 7)) and sorted(resumed) == [5, 6, 7, 8]
    for step in (5, 6):  # the same micro-batches, noise, frame masks and ZeRO-2 optimizer state
        assert resumed[step] == pytest.approx(first[step], rel=1e-5, abs=1e-7), step
