"""eval.vbench end to end: custom mode through `reelforge stage run` with random-init networks of the real
architectures (MLflow metrics and artifacts), and standard mode sampling the tiny suite with a tiny DiT."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from components import tracking
from components.evaluation.results import read_stage
from components.evaluation.vbench.config import EvalVBenchConfig
from components.evaluation.vbench.prompts import video_name
from components.evaluation.vbench.stage import eval_vbench
from components.runner import run_stage
from components.stage import StageContext
from components.tracking import NoopTracker
from models.raft import RAFT_models
from models.vbench.aesthetic import LinearHead
from models.vbench.amt import AMT, AMTConfig
from models.vbench.dino import DinoConfig, DinoViT
from models.vbench.musiq import MUSIQ, MusiqConfig
from models.vbench.umt import UMTClassifier, UMTConfig
from models.vbench.viclip import ViCLIP, ViCLIPConfig
from tests.unit.sampling_testing import write_dit_export

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from vbench_testing import moving_square, write_lossless, write_tiny_clip  # noqa: E402

pytestmark = pytest.mark.slow
# custom mode's 10 dimensions: all of them run on random-init networks here
CUSTOM_COMPUTED = {"subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                   "dynamic_degree", "aesthetic_quality", "imaging_quality", "human_action", "temporal_style",
                   "overall_consistency"}


def random_weights(folder: Path) -> dict[str, str]:
    """Random-init checkpoints in the official formats, small widths: DINO, CLIP folder, LAION linear head,
    RAFT-things, AMT-S, MUSIQ, UMT (+ class names), ViCLIP."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(DinoViT(DinoConfig(dim=64, depth=2, heads=1)).state_dict(), folder / "dino.pth")
    clip = write_tiny_clip(folder / "clip")
    torch.save(LinearHead(16).state_dict(), folder / "head.pth")
    torch.save({f"module.{k}": v for k, v in RAFT_models["things"]().state_dict().items()}, folder / "raft.pth")
    torch.save(UMTClassifier(UMTConfig(patch_size=32, dim=32, depth=1, heads=1, classes=6)).state_dict(),
               folder / "umt.pth")
    (folder / "k400.txt").write_text("".join(f"action {i}\t{i}\n" for i in range(6)))
    viclip = ViCLIP(ViCLIPConfig(patch_size=32, width=32, layers=1, heads=1, embed_dim=16, text_width=32,
                                 text_layers=1, text_heads=1, vocab=82))  # write_tiny_clip's vocabulary
    torch.save({"model": viclip.state_dict()}, folder / "viclip.pth")
    amt = AMT(AMTConfig(channels=(8, 8, 12, 12), skip_channels=4, feature_dim=16, num_flows=2, hidden_dim=8,
                        flow_dim=4, corr_dim=8, fc_dim=8))
    torch.save({"state_dict": amt.state_dict()}, folder / "amt_s.pth")
    torch.save(MUSIQ(MusiqConfig(hidden=64, mlp_dim=128, heads=1, layers=1)).state_dict(), folder / "musiq.pth")
    return {"dino-vitb16": str(folder / "dino.pth"), "clip-vit-b-32-hf": str(clip), "clip-vit-l-14-hf": str(clip),
            "laion-aesthetic-linear": str(folder / "head.pth"), "raft-things": str(folder / "raft.pth"),
            "umt-l16": str(folder / "umt.pth"), "k400-labels": str(folder / "k400.txt"),
            "viclip": str(folder / "viclip.pth"), "amt-s": str(folder / "amt_s.pth"),
            "musiq-spaq": str(folder / "musiq.pth")}


def test_custom_mode_through_the_runner_logs_to_mlflow(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_STAGE_MODULES", "components.evaluation.vbench.stage")
    videos = tmp_path / "videos"
    write_lossless(moving_square(3, 48, step=6), videos / "a red square moving right-0.mp4")
    write_lossless(np.repeat(moving_square(1, 48), 3, axis=0), videos / "a red square standing still-0.mp4")
    weights = random_weights(tmp_path / "weights")
    sets = ["mode=custom", f"videos={videos}", "device=cpu", "compute.dynamic.iters=1"]
    sets += [f"weights.paths.{name}={path}" for name, path in weights.items()]
    manifest = run_stage("eval.vbench", profile="tiny", sets=sets)

    doc = json.loads((workspace / "eval/vbench/vbench.json").read_text())
    assert set(doc["computed"]) == CUSTOM_COMPUTED
    scores = doc["scores"]
    for dim in ("subject_consistency", "background_consistency", "temporal_flickering"):
        assert 0.0 <= scores[dim]["value"] <= 1.0 and scores[dim]["videos"] == 2
    assert scores["dynamic_degree"]["value"] in (0.0, 0.5, 1.0)
    assert np.isfinite(scores["aesthetic_quality"]["value"])
    assert scores["human_action"]["value"] == 0.0  # no video is named "... person is <action>"
    for dim in ("temporal_style", "overall_consistency"):
        assert -1.0 <= scores[dim]["value"] <= 1.0
    assert scores["subject_consistency"]["weights"][0]["file"] == weights["dino-vitb16"]
    assert 0.0 <= scores["motion_smoothness"]["value"] <= 1.0 and scores["motion_smoothness"]["videos"] == 2
    # a random MUSIQ head regresses any number (a trained one gives 0-100, i.e. 0-1 after /100)
    assert np.isfinite(scores["imaging_quality"]["value"]) and scores["imaging_quality"]["videos"] == 2
    assert scores["color"]["reason"].startswith("custom mode supports only")
    assert scores["total"]["value"] is None and scores["partial"]["dimensions"] == 10

    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(manifest["mlflow_run_id"])
    assert run.data.metrics["eval.vbench/subject_consistency"] == pytest.approx(scores["subject_consistency"]["value"])
    assert run.data.metrics["eval.vbench/partial.total"] == pytest.approx(scores["partial"]["total"])
    assert run.data.tags["reelforge.eval.vbench.color"].startswith("custom mode supports only")
    artifacts = {a.path for a in mlflow.MlflowClient(tracking.tracking_uri()).list_artifacts(run.info.run_id, "eval")}
    assert {"eval/vbench.json", "eval/vbench_chart.png", "eval/dimensions"} <= artifacts
    assert read_stage(workspace, "eval.vbench").metrics["eval.vbench/temporal_flickering"] == pytest.approx(
        scores["temporal_flickering"]["value"])


def test_standard_mode_samples_the_suite_with_a_dit_and_resumes(tmp_path):
    ws = tmp_path / "ws"
    write_dit_export(ws, "pretrain/tier3")
    cfg = EvalVBenchConfig(dimensions=["temporal_flickering", "subject_consistency"], prompts_per_dimension=1,
                           videos_per_prompt=2, static_filter={"enabled": False}, device="cpu",
                           sampling={"steps": 2, "resolution": "32px", "num_frames": 9},
                           weights={"paths": {"dino-vitb16": random_weights(tmp_path / "w")["dino-vitb16"]}})

    def run(out: str) -> dict:
        (tmp_path / out).mkdir()
        return eval_vbench(StageContext("eval.vbench", "tiny", cfg, ws, tmp_path / out, {}, tmp_path / "ckpt",
                                        tracker=NoopTracker()))

    metrics = run("out1")
    flicker_prompt = "a yellow star standing still on a black background"
    moving_prompt = "a red circle moving left slowly on a gray background"
    names = sorted(p.name for p in (tmp_path / "out1/videos").iterdir())
    assert names == sorted(video_name(p, i) for p in (flicker_prompt, moving_prompt) for i in range(2))
    doc = json.loads((tmp_path / "out1/vbench.json").read_text())
    assert doc["inputs"]["prompts"] == 2 and doc["scores"]["temporal_flickering"]["videos"] == 2
    assert 0 < metrics["eval.vbench/temporal_flickering"] <= 1 and 0 <= metrics["eval.vbench/subject_consistency"] <= 1
    cached = sorted((tmp_path / "ckpt/samples").rglob("*.mp4"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = run("out2")  # a retry finds every video in the checkpoint folder and samples nothing
    assert [p.stat().st_mtime_ns for p in cached] == stamps and again == pytest.approx(metrics)
