"""evaluate_flow under Prefect: eval stages that cannot judge the version are skipped, not faked; report and gate recorded."""
import os
import subprocess
import sys

import mlflow
import pytest

from components import manifest, registry, tracking
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_flow_skips_what_it_cannot_run_and_records_the_gate(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow may put artifacts under ./mlruns: not in the checkout
    out = workspace / "pretrain" / "tier3"
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"dit weights")
    doc = manifest.build(stage="pretrain.tier3", profile="tiny", params_hash="0" * 64, inputs={}, output_dir=out,
                         run_id=None, git_commit="abc", wall_time_s=1.0, world_size=1, device="cpu", metrics={})
    manifest.write(manifest.path_for(workspace, "pretrain.tier3"), doc)
    tags, run_id, folder = registry.training_tags("pretrain.tier3")
    version, created = registry.register("reelforge-dit", folder, tags, run_id)
    assert created and str(version.version) == "1"

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "flows.evaluate", "--kind", "dit", "--version", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    logs = proc.stdout + proc.stderr
    for name in ("eval.loss", "eval.vbench", "eval.adherence"):  # no model_sets key points them at version 1
        assert f"skipping {name}: " in logs

    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = registry.client()
    recorded = client.get_model_version("reelforge-dit", "1")
    assert recorded.tags["reelforge.gate.outcome"] == "missing_metric"
    assert registry.alias_version("reelforge-dit", registry.CHAMPION) is None
    (run,) = mlflow.search_runs(experiment_names=["reelforge"], output_format="list",
                                filter_string="tags.`reelforge.kind` = 'evaluation'")
    assert run.info.run_name == "evaluate-dit-tiny" and run.info.status == "FINISHED"
    assert run.data.tags["reelforge.model_version"] == "1" and run.data.tags["reelforge.prefect_flow_run_id"]
    assert run.data.tags["reelforge.gate.outcome"] == "missing_metric"
    assert recorded.tags["reelforge.gate.eval_run_id"] == run.info.run_id
    assert run.data.params["gate.metrics"].startswith("[{'name': 'eval.vbench/total', 'direction': 'higher'")
    report = (workspace / "eval" / "report" / "report.md").read_text()
    assert report.count("not run: no outputs under the workspace") == 3
