"""Registry gate on a sqlite MLflow store: versions from stage outputs, candidate/champion aliases, recorded decisions."""
import json
import os
import shutil

import mlflow
import pytest

from components import manifest, registry
from components.evaluation import evaluate

pytestmark = pytest.mark.slow  # creating an MLflow sqlite store runs its migrations (10+ s on a busy machine)

MODEL = "reelforge-vae"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """One migrated MLflow store, copied into each test's workspace."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def ws(workspace, template_db, tmp_path, monkeypatch):
    # an experiment made through MLFLOW_TRACKING_URI keeps artifacts under ./mlruns: keep that out of the checkout
    monkeypatch.chdir(tmp_path)
    (workspace / "mlflow").mkdir(parents=True)
    shutil.copy(template_db, workspace / "mlflow" / "mlflow.db")
    return workspace


def train(ws, weights: bytes) -> str:
    """Stand in for a finished vae.stage3 run: its output folder, its MLflow run and its manifest."""
    from components import tracking

    out = ws / "vae" / "stage3"
    if out.exists():  # the runner swaps in a new folder; files of the old one are never edited in place
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(weights)
    exp = tracking.setup()
    run = mlflow.MlflowClient().create_run(exp, run_name="vae.stage3", tags={"reelforge.stage": "vae.stage3"})
    doc = manifest.build(stage="vae.stage3", profile="tiny", params_hash="p" * 64, inputs={}, output_dir=out,
                         run_id=run.info.run_id, git_commit="abc", wall_time_s=1.0, world_size=1, device="cpu",
                         metrics={})
    doc["dvc"] = {"data": "d41d8cd98f00b204e9800998ecf8427e.dir"}
    manifest.write(manifest.path_for(ws, "vae.stage3"), doc)
    return run.info.run_id


def evaluate_once(ws, psnr):
    """Register the current output as candidate, write eval.vae's metrics.json, gate and report."""
    cfg = evaluate.load("vae", "tiny")
    mv = evaluate.candidate(cfg)
    scores = {"psnr": {"value": psnr, "N": 4} if psnr is not None else {"value": None, "reason": "no clips"},
              "rfvd": {"value": None, "status": "not computed", "reason": "missing I3D weights"}}
    (ws / "eval" / "vae").mkdir(parents=True, exist_ok=True)
    (ws / "eval" / "vae" / "metrics.json").write_text(json.dumps({"scores": scores}))
    run_id, previous = evaluate.start_run("vae", "tiny", cfg, mv, None)
    summary = evaluate.gate_and_report("vae", "tiny", cfg, mv, {"eval.vae"}, run_id)
    evaluate.end_run(run_id, previous, [])
    return mv, summary, run_id


def champion():
    return registry.alias_version(MODEL, registry.CHAMPION)


def test_worse_candidate_does_not_take_champion(ws):
    train_run = train(ws, b"weights-1")
    v1, first, _ = evaluate_once(ws, 30.0)
    assert (str(v1.version), first["outcome"]) == ("1", "first_champion") and str(champion().version) == "1"
    assert v1.run_id == train_run and v1.tags["reelforge.stage"] == "vae.stage3"
    assert v1.tags["reelforge.params_hash"] == "p" * 64 and v1.tags["reelforge.dvc.data"].endswith(".dir")

    train(ws, b"weights-2")
    v2, second, eval_run = evaluate_once(ws, 28.5)
    assert str(v2.version) == "2" and not second["promoted"] and second["outcome"] == "kept_champion"
    assert str(champion().version) == "1"
    assert str(registry.get_version(f"{MODEL}@candidate").version) == "2"

    recorded = registry.get_version(f"{MODEL}/2")
    assert recorded.tags["reelforge.gate.outcome"] == "kept_champion"
    assert recorded.tags["reelforge.gate.promoted"] == "false"
    assert recorded.tags["reelforge.gate.champion_version"] == "1"
    assert recorded.tags["reelforge.gate.candidate.eval.vae/psnr"] == "28.5"
    assert recorded.tags["reelforge.gate.champion.eval.vae/psnr"] == "30"
    assert recorded.tags["reelforge.metric.eval.vae/psnr"] == "28.5"
    assert recorded.tags["reelforge.gate.eval_run_id"] == eval_run
    assert recorded.description.startswith("gate kept_champion: eval.vae/psnr 28.5 does not beat 30")

    run = mlflow.MlflowClient().get_run(eval_run)
    assert run.data.metrics["eval.vae/psnr"] == 28.5 and run.data.metrics["gate/promoted"] == 0.0
    assert run.data.tags["reelforge.model_version"] == "2" and run.info.run_name == "evaluate-vae-tiny"
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(eval_run, "report")}
    assert {"report/report.md", "report/report.html", "report/decision.json", "report/plots"} <= logged
    report = (ws / "eval" / "report" / "report.md").read_text()
    assert "| eval.vae/psnr | 28.5 | 30 | -1.5 |" in report and "**kept_champion**" in report


def test_better_candidate_takes_champion_and_sampling_resolves_it(ws):
    train(ws, b"weights-1")
    evaluate_once(ws, 30.0)
    train(ws, b"weights-2")
    v2, summary, _ = evaluate_once(ws, 31.25)
    assert summary["outcome"] == "promoted" and str(champion().version) == "2"
    assert registry.get_version(f"{MODEL}/1").tags["reelforge.gate.replaced_by"] == "2"
    source = registry.resolve_source(f"{MODEL}@champion")
    assert source == v2.source and (open(os.path.join(source, "model.safetensors"), "rb").read() == b"weights-2")


def test_missing_metric_is_not_promoted_and_says_why(ws):
    train(ws, b"weights-1")
    mv, summary, _ = evaluate_once(ws, None)
    assert not summary["promoted"] and champion() is None
    tags = registry.get_version(f"{MODEL}/{mv.version}").tags
    assert tags["reelforge.gate.outcome"] == "missing_metric"
    assert tags["reelforge.gate.reason"] == "candidate has none of the gate metrics ['eval.vae/rfvd', 'eval.vae/psnr']"


def test_registration_is_per_content_and_snapshots_survive_a_rerun(ws):
    train(ws, b"weights-1")
    cfg = evaluate.load("vae", "tiny")
    v1 = evaluate.candidate(cfg)
    assert evaluate.candidate(cfg).version == v1.version  # same files: same version
    train(ws, b"weights-2")  # the stage re-ran: its output folder now holds other weights
    v2 = evaluate.candidate(cfg)
    assert str(v2.version) == "2" and v1.source != v2.source
    assert open(os.path.join(v1.source, "model.safetensors"), "rb").read() == b"weights-1"
    assert v1.source.startswith(str(ws / "registry" / MODEL))
    with pytest.raises(registry.RegistryError, match="model reelforge-vae@champion: not in the registry"):
        registry.resolve_source(MODEL)  # a bare name means its champion; none yet
