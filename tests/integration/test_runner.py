"""The stage runner: atomic outputs, manifest hashes, MLflow child runs with tags/params, failures kept."""
import hashlib
import json

import mlflow
import pytest

from components import manifest, tracking
from components.config import StageConfig
from components.errors import EXIT_CONFIG, InputMissing
from components.runner import run_stage
from components.stage import stage

pytestmark = pytest.mark.slow


class EchoConfig(StageConfig):
    text: str = "hello"
    fail: bool = False


@stage("test.echo", config=EchoConfig, output="test/echo")
def echo(ctx):
    """Write the configured text; optionally fail after writing part of the output."""
    (ctx.out / "echo.txt").write_text(ctx.cfg.text)
    ctx.tracker.log_metrics({"test/chars": len(ctx.cfg.text)}, step=0)
    if ctx.cfg.fail:
        raise RuntimeError("planted failure in test.echo")
    return {"chars": len(ctx.cfg.text)}


@stage("test.needs", config=EchoConfig, output="test/needs", inputs=lambda cfg, ws: {"src": str(ws / "nope" / cfg.text)})
def needs(ctx):
    """Declares an input that does not exist."""
    raise AssertionError("must not run")


def test_run_writes_output_manifest_and_tracks(workspace):
    result = run_stage("test.echo", "tiny", ["text=frames"])
    out = workspace / "test" / "echo"
    assert (out / "echo.txt").read_text() == "frames"
    assert "text: frames" in (out / "config.yaml").read_text()
    assert result["outputs"]["files"]["echo.txt"] == hashlib.sha256(b"frames").hexdigest()
    assert result["metrics"] == {"chars": 6}
    on_disk = json.loads(manifest.path_for(workspace, "test.echo").read_text())
    assert on_disk["mlflow_run_id"] == result["mlflow_run_id"] and len(on_disk["params_hash"]) == 64
    assert not list(out.parent.glob(".echo.tmp-*"))  # no temp folder left behind

    mlflow.set_tracking_uri(tracking.tracking_uri())
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["reelforge.stage"] == "test.echo" and run.data.tags["reelforge.profile"] == "tiny"
    assert run.data.params["text"] == "frames"
    assert run.data.metrics["test/chars"] == 6.0 and "stage/wall_time_s" in run.data.metrics


def test_rerun_replaces_output_atomically_and_nests_under_parent(workspace, monkeypatch):
    run_stage("test.echo", "tiny", ["text=one"])
    tracking.setup()
    parent = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name("reelforge").experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_PARENT_RUN_ID", parent)
    result = run_stage("test.echo", "tiny", ["text=two"])
    assert (workspace / "test" / "echo" / "echo.txt").read_text() == "two"
    assert mlflow.get_run(result["mlflow_run_id"]).data.tags["mlflow.parentRunId"] == parent


def test_failure_keeps_previous_output_and_records_error(workspace):
    run_stage("test.echo", "tiny", ["text=good"])
    with pytest.raises(RuntimeError, match="planted failure"):
        run_stage("test.echo", "tiny", ["text=bad", "fail=true"])
    assert (workspace / "test" / "echo" / "echo.txt").read_text() == "good"
    failed = workspace / "failed" / "test.echo"
    assert (failed / "partial" / "echo.txt").read_text() == "bad"  # nothing lost: the partial output is kept
    error = json.loads((failed / "error.json").read_text())
    assert error["type"] == "RuntimeError" and "planted failure" in error["message"]
    runs = mlflow.search_runs(experiment_names=["reelforge"], filter_string="tags.`reelforge.stage` = 'test.echo'")
    assert sorted(runs["status"]) == ["FAILED", "FINISHED"]


def test_missing_input_stops_before_work_with_named_input(workspace):
    with pytest.raises(InputMissing, match=r"stage test.needs: missing input\(s\) src=.*nope/hello") as err:
        run_stage("test.needs", "tiny")
    assert err.value.exit_code == EXIT_CONFIG


def test_system_metrics_are_sampled_into_the_stage_run(workspace, monkeypatch):
    monkeypatch.setenv("REELFORGE_SYSTEM_METRICS", "1")
    monkeypatch.setenv("REELFORGE_SYSTEM_METRICS_INTERVAL", "0.5")

    @stage("test.sleep", config=EchoConfig, output="test/sleep")
    def sleepy(ctx):
        import time

        time.sleep(2.5)
        return {}

    result = run_stage("test.sleep", "tiny")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    metrics = mlflow.get_run(result["mlflow_run_id"]).data.metrics
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
    assert metrics["system/system_memory_usage_megabytes"] > 0
