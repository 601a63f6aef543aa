"""eval.adherence end to end with a random-init tiny DiT, and `reelforge sample` from a folder, an MLflow run and
a registered model version (all three give the same video for the same seed)."""
from __future__ import annotations

import json

import mlflow
import pytest
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from components import registry, tracking
from components.cli import app
from components.data.aspect_ratios import closest_ratio
from components.evaluation.adherence_stage import GRID, REPORT, AdherenceConfig, eval_adherence, first_frame_psnr
from components.evaluation.results import read_stage
from components.model_source import load_dit, resolve_model
from components.runner import run_stage
from components.sampling import SampleRequest, generate, read_image
from components.stage import StageContext
from components.tracking import NoopTracker
from components.workspace import project_root
from tests.integration.eval_testing import MICRO as EVAL_MICRO
from tests.integration.eval_testing import corpus
from tests.unit.sampling_testing import write_dit_export

pytestmark = pytest.mark.slow

MICRO = EVAL_MICRO["eval.adherence"]


def test_stage_reports_accuracy_chance_and_counts(tmp_path):
    ws = tmp_path / "ws"
    write_dit_export(ws)
    gt = corpus(tmp_path / "data")
    cfg = AdherenceConfig(model="dit/adapt8", ground_truth=str(tmp_path / "data/ground_truth.json"), samples=6,
                          steps=2, resolution="32px", num_frames=9, grid_columns=4, upscale=1, i2v_samples=3)
    out = tmp_path / "out"
    out.mkdir()
    metrics = eval_adherence(StageContext(name="eval.adherence", profile="tiny", cfg=cfg, workspace=ws, out=out,
                                          inputs={}, checkpoint_dir=tmp_path / "ckpt", tracker=NoopTracker()))
    report = json.loads((out / REPORT).read_text())
    scores, records = report["scores"], report["records"]
    assert scores["samples"] == len(records) == 6
    assert scores["chance"] == {"colour": 0.125, "direction": 0.25, "both": 1 / 32}
    assert {k: v["samples"] for k, v in scores["by_kind"].items()} == {"holdout": 3, "unseen_pair": 3}
    holdout = {tuple(c) for c in gt["holdout"]}
    assert all((r["colour"], r["shape"], r["direction"]) in holdout for r in records if r["kind"] == "holdout")
    right = sum(r["predicted_colour"] == r["colour"] for r in records)
    both = sum((r["predicted_colour"], r["predicted_direction"]) == (r["colour"], r["direction"]) for r in records)
    assert scores["colour_accuracy"] == metrics["colour_accuracy"] == right / 6
    assert scores["accuracy"] == metrics["accuracy"] == both / 6
    assert metrics["colour_chance"] == 0.125 and metrics["direction_chance"] == 0.25
    assert [r["seed"] for r in records] == list(range(6))
    with Image.open(out / GRID) as grid:  # 6 clips in rows of 4 (one row padded), 32x32 each, 2-pixel bars
        assert (grid.n_frames, grid.size) == (9, (4 * 32 + 3 * 2, 2 * 32 + 2))

    # image-to-video: the corpus' one image as the first frame, asked to move left, right, up
    i2v = report["i2v_records"]
    image = gt["images"][0]
    assert [(r["direction"], r["image"], r["kind"]) for r in i2v] == [
        (d, image["path"], "i2v") for d in ("left", "right", "up")]
    request = SampleRequest(prompt=i2v[1]["caption"], mode="i2v", image=str(tmp_path / "data" / image["path"]),
                            resolution="32px", aspect_ratio=closest_ratio(image["height"], image["width"]),
                            num_frames=9, steps=2, seed=1)
    sample = generate(load_dit(ws / "dit/adapt8", ws), request)  # the stage's second i2v sample, again
    given = read_image(request.image, request.size())[0]
    assert i2v[1]["first_frame_psnr"] == pytest.approx(first_frame_psnr(given, sample.frames[0]))
    assert scores["i2v"]["samples"] == 3 and metrics["i2v_samples"] == 3.0
    assert scores["i2v"]["first_frame_psnr"] == pytest.approx(sum(r["first_frame_psnr"] for r in i2v) / 3)
    assert metrics["i2v_first_frame_psnr_min"] == min(r["first_frame_psnr"] for r in i2v)
    assert report["settings"]["i2v_samples"] == 3


def test_runner_logs_to_mlflow_and_sample_resolves_folder_run_and_registry(workspace, monkeypatch, tmp_path):
    write_dit_export(workspace)
    root = project_root()
    corpus(root / "data")
    monkeypatch.setenv("REELFORGE_STAGE_MODULES", "components.evaluation.adherence_stage")
    result = run_stage("eval.adherence", "tiny", MICRO + ["model=dit/adapt8", "weights=model"])
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(result["mlflow_run_id"])
    assert run.data.metrics["eval/colour_chance"] == 0.125 and run.data.metrics["eval/samples"] == 4
    assert 0.0 <= run.data.metrics["eval/direction_accuracy"] <= 1.0
    artifacts = {a.path for a in mlflow.MlflowClient(tracking.tracking_uri()).list_artifacts(run.info.run_id)}
    assert {"adherence.json", "samples", "manifest.json"} <= artifacts
    found = read_stage(workspace, "eval.adherence")  # what the evaluation report and the registry gate read
    assert found.metrics["eval.adherence/chance.both"] == 1 / 32 and 0 <= found.metrics["eval.adherence/accuracy"] <= 1

    folder = workspace / "dit/adapt8"
    client = registry.client()
    stage_run = client.create_run(client.get_experiment_by_name(tracking.experiment_name()).experiment_id)
    client.log_dict(stage_run.info.run_id, {"outputs": {"dir": str(folder)}}, "manifest.json")
    version, _ = registry.register("reelforge-dit", folder, {}, run_id=stage_run.info.run_id)
    assert resolve_model(stage_run.info.run_id, workspace) == folder
    assert (resolve_model("models:/reelforge-dit@candidate", workspace) / "dit.json").read_bytes() == \
        (folder / "dit.json").read_bytes()

    latents = {}
    for ref in ("dit/adapt8", f"runs:/{stage_run.info.run_id}", "models:/reelforge-dit@candidate",
                f"reelforge-dit/{version.version}"):
        out = tmp_path / ref.replace("/", "_").replace(":", "").replace("@", "_")
        args = ["sample", "a red circle moving left quickly on a gray background", "--model", ref, "--frames", "9",
                "--resolution", "32px", "--steps", "2", "--seed", "5", "--out", str(out), "--motion", "10"]
        outcome = CliRunner().invoke(app, args)
        assert outcome.exit_code == 0, outcome.output
        latents[ref] = load_file(str(out / "sample.safetensors"))["latents"]
        settings = json.loads((out / "sample.json").read_text())
        assert settings["full_prompt"].endswith("on a gray background. motion score: 10.")
        assert (out / "sample.mp4").stat().st_size > 0 and (out / "sample.gif").stat().st_size > 0
    first = next(iter(latents.values()))
    assert all(v.numpy().tobytes() == first.numpy().tobytes() for v in latents.values())

    outcome = CliRunner().invoke(app, ["sample", "x", "--model", "no/such/model/folder"])
    assert outcome.exit_code == 1 and "not a folder" in outcome.output
