"""evaluate_flow under Prefect on a real micro DiT version: eval.loss, eval.vbench and eval.adherence judge the
registered snapshot (its EMA weights), their metrics land on the evaluation run, and the gate makes it champion."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest

from components import registry, tracking
from components.dit.model_io import EMA_FILE, MODEL_FILE
from components.errors import InputMissing
from components.evaluation import adherence_stage  # noqa: F401  (registers eval.adherence, for the preflight)
from components.evaluation import evaluate
from components.evaluation.vbench.aggregate import DIMENSIONS
from tests.conftest import REPO
from tests.integration.eval_testing import MICRO, corpus, write_manifest, write_tier3_export
from tests.unit.dit_testing import write_corpus

pytestmark = pytest.mark.slow

STAGES = ("eval.loss", "eval.vbench", "eval.adherence")


def test_flow_evaluates_a_dit_version_and_makes_it_champion(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow may put artifacts under ./mlruns: not in the checkout
    folder = write_tier3_export(workspace)
    write_corpus(workspace)  # eval.loss's held-out clips (data/ingest/metadata.parquet)
    corpus(tmp_path / "project" / "data")  # eval.adherence's ground truth (project root's data/)
    write_manifest(workspace, "pretrain.tier3", folder)
    tags, run_id, out = registry.training_tags("pretrain.tier3")
    version, created = registry.register("reelforge-dit", out, tags, run_id)
    assert created and str(version.version) == "1"
    source = version.source
    # the frozen snapshot keeps the EMA weights the tiny recipes of eval.loss and eval.adherence read
    assert (folder / EMA_FILE).read_bytes() == (Path(source) / EMA_FILE).read_bytes()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(REPO))
    sets = [arg for name, items in MICRO.items() for item in items for arg in ("--set", f"{name}.{item}")]
    proc = subprocess.run([sys.executable, "-m", "components.cli", "evaluate", "--kind", "dit", "--version", "1",
                           *sets], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-6000:]
    assert "skipping" not in logs

    # each stage judged the version's snapshot, with the weights its tiny recipe names
    loss = json.loads((workspace / "eval/loss/loss.json").read_text())
    assert (loss["model"], loss["weights"], loss["cells"]) == (source, "ema", ["32pxx9", "32pxx1"])
    adherence = json.loads((workspace / "eval/adherence/adherence.json").read_text())
    assert (adherence["model"], adherence["settings"]["weights"]) == (source, "ema")
    assert adherence["scores"]["samples"] == len(adherence["records"]) == 4
    vbench = json.loads((workspace / "eval/vbench/vbench.json").read_text())
    assert vbench["model"] == source and vbench["computed"] == ["temporal_flickering"]
    assert set(vbench["not_computed"]) == set(DIMENSIONS) - {"temporal_flickering"}
    assert "missing dino-vitb16" in vbench["not_computed"]["subject_consistency"]
    scores = vbench["scores"]
    assert scores["total"]["value"] is None and scores["total"]["reason"].startswith("Total needs all 16 dimensions")
    assert scores["partial"]["dimensions"] == 1 and scores["partial"]["note"].startswith("PARTIAL: 1 of 16")

    mlflow.set_tracking_uri(tracking.tracking_uri())
    (run,) = mlflow.search_runs(experiment_names=["reelforge"], output_format="list",
                                filter_string="tags.`reelforge.kind` = 'evaluation'")
    assert run.info.run_name == "evaluate-dit-tiny" and run.info.status == "FINISHED"
    assert run.data.tags["reelforge.model_version"] == "1" and run.data.tags["reelforge.prefect_flow_run_id"]
    logged = run.data.metrics
    accuracy = adherence["scores"]["accuracy"]
    assert logged["eval.adherence/accuracy"] == accuracy and logged["eval.adherence/chance.both"] == 1 / 32
    assert logged["eval.loss/mean"] == pytest.approx(loss["scores"]["mean"])
    assert logged["eval.vbench/partial.total"] == pytest.approx(scores["partial"]["total"])
    assert "eval.vbench/total" not in logged and logged["gate/promoted"] == 1.0
    children = mlflow.search_runs(experiment_names=["reelforge"], output_format="list",
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert sorted(c.data.tags["reelforge.stage"] for c in children) == sorted(STAGES)

    # no VBench Total: rule `first` falls back to eval.adherence/accuracy, and the first version becomes champion
    recorded = registry.client().get_model_version("reelforge-dit", "1")
    assert recorded.tags["reelforge.gate.outcome"] == run.data.tags["reelforge.gate.outcome"] == "first_champion"
    assert recorded.tags["reelforge.gate.eval_run_id"] == run.info.run_id
    assert "first version with eval.adherence/accuracy" in recorded.tags["reelforge.gate.reason"]
    assert float(recorded.tags["reelforge.gate.candidate.eval.adherence/accuracy"]) == accuracy
    assert "reelforge.gate.candidate.eval.vbench/total" not in recorded.tags
    assert registry.version_metrics(recorded)["eval.loss/mean"] == pytest.approx(loss["scores"]["mean"])
    assert str(registry.alias_version("reelforge-dit", registry.CHAMPION).version) == "1"
    report = (workspace / "eval" / "report" / "report.md").read_text()
    assert "**first_champion** (promote: True)" in report and "not run" not in report
    assert "| eval.vbench/total | not computed |" in report


def test_preflight_names_the_weights_file_a_version_lacks(workspace, tmp_path):
    snapshot = tmp_path / "registry" / "reelforge-dit" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / MODEL_FILE).write_bytes(b"weights")  # an export without EMA weights
    corpus(tmp_path / "project" / "data")
    cfg = evaluate.load("dit", "tiny")
    version = SimpleNamespace(version="2", source=str(snapshot))  # preflight reads only these two fields
    todo = evaluate.plan(cfg, str(snapshot), registered={"eval.adherence"}, explicit_version=True)
    with pytest.raises(InputMissing) as err:
        evaluate.preflight(cfg, version, todo, "tiny")
    assert str(err.value) == (f"reelforge-dit v2 ({snapshot}): stage eval.adherence: missing input(s) "
                              f"model={snapshot / EMA_FILE}; run the upstream stage first")
    # the same version passes once the stage is told to read the weights it has
    todo = evaluate.plan(cfg, str(snapshot), registered={"eval.adherence"}, explicit_version=True,
                         overrides={"eval.adherence": ["weights=model"]})
    evaluate.preflight(cfg, version, todo, "tiny")
