"""`reelforge run` runs the whole chain at micro size: data → curate → VAE → DiT adaptation → pretraining → eval,
as one Prefect flow run with one MLflow parent run and a child run per stage."""
import json
import os
import subprocess
import sys

import mlflow
import pytest
import yaml

from components.training.engine import cpu_has_native_bf16
from tests.conftest import make_project

pytestmark = pytest.mark.slow

STAGES = (["data.ingest", "data.version", "data.validate", "curate.split", "curate.score", "curate.caption", "curate.tier"]
          + [f"vae.stage{i}" for i in range(4)] + ["dit.stage0"] + [f"dit.adapt{i}" for i in range(1, 9)]
          + ["cache.latents", "pretrain.tier1", "pretrain.tier2", "pretrain.tier3", "eval.loss", "eval.vae",
             "eval.adherence"])
MICRO = {"steps": 2}


def micro_overrides() -> dict:
    """A few steps per training stage, a tiny corpus, two adherence samples: the chain's wiring, not its quality."""
    over: dict = {"data": {"synth": {"n_videos": 4, "n_images": 2}, "ingest": {}, "validate": {}},
                  "curate": {"split": {}, "score": {}, "caption": {}, "tier": {}, "flow": {}},
                  "cache": {"latents": {}}, "eval": {"vae": {"clips": {"fraction": 1.0}}, "loss": {}, "vbench": {},
                                                      "adherence": {"samples": 2, "steps": 2, "i2v_samples": 2}}}
    over["vae"] = {f"stage{i}": dict(MICRO) for i in range(4)}
    dit = {**MICRO, "model": {"size": "tiny"}}  # the recipe's `mini` DiT, shrunk to the smallest STDiT
    over["dit"] = {name: dict(dit) for name in ["stage0"] + [f"adapt{i}" for i in range(1, 9)]}
    over["pretrain"] = {f"tier{i}": dict(dit) for i in (1, 2, 3)}
    return over


def test_whole_chain_runs_as_one_flow_with_a_child_run_per_stage(tmp_path):
    root = make_project(tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["overrides"] = micro_overrides()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REELFORGE_", "PREFECT_"))}
    env.update(REELFORGE_ROOT=str(root), PREFECT_HOME=str(root / "prefect-home"), REELFORGE_SYSTEM_METRICS="0",
               OMP_NUM_THREADS="1", PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "components.cli", "run", "--profile", "tiny", "--no-dvc"],
                          cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    assert "pipeline stages" in proc.stdout and "eval.loss" in proc.stdout  # the per-stage wall-time table

    mlflow.set_tracking_uri(f"sqlite:///{root / 'workspace' / 'mlflow' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["reelforge"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("reelforge.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["reelforge.stage"] for r in children) == sorted(STAGES)
    assert all(r.info.status == "FINISHED" for r in children)
    # the tiny profile trains the VAE in bf16 where the CPU has bf16 arithmetic, the DiT in fp32
    vae_precision = "bf16" if cpu_has_native_bf16() else "fp32"
    precision = {r.data.tags["reelforge.stage"]: r.data.tags.get("reelforge.precision") for r in children}
    assert {precision[f"vae.stage{i}"] for i in range(4)} == {vae_precision}
    assert precision["dit.adapt8"] == precision["pretrain.tier3"] == "fp32"

    ws = root / "workspace"
    assert (ws / "pretrain" / "tier3" / "model.safetensors").stat().st_size > 0
    grid = json.loads((ws / "eval" / "loss" / "loss.json").read_text())
    assert grid["scores"]["mean"] > 0
    # the eval segment scored what the chain trained: the last VAE stage and the pretrained DiT's EMA weights
    vae = json.loads((ws / "eval" / "vae" / "metrics.json").read_text())
    assert "vae/stage3/" in vae["vae"]["file"]
    assert 0 < vae["scores"]["psnr"]["value"] < 60 and 0 <= vae["scores"]["ssim"]["value"] <= 1
    adherence = json.loads((ws / "eval" / "adherence" / "adherence.json").read_text())
    assert adherence["model"].endswith("pretrain/tier3") and adherence["settings"]["weights"] == "ema"
    assert adherence["scores"]["samples"] == 2 and 0 <= adherence["scores"]["colour_accuracy"] <= 1
    assert adherence["scores"]["i2v"]["samples"] == 2 and adherence["scores"]["i2v"]["first_frame_psnr"] > 0
