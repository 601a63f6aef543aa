"""Tracker.log_dataset: a table's schema reaches the run's inputs without MLflow's model-signature hint on stdout."""
import warnings

import mlflow
import pandas as pd

from components import tracking


def test_table_dataset_is_logged_with_its_schema_and_no_integer_column_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_HOME", str(tmp_path / "workspace"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp = tracking.setup()
    run = mlflow.MlflowClient().create_run(exp, run_name="ingest")
    table = pd.DataFrame({"path": ["a.mp4", "b.mp4"], "num_frames": [17, 33], "fps": [8.0, 24.0]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracking.Tracker(run.info.run_id).log_dataset("metadata", str(tmp_path), "0123abcd" * 5, "ingest", df=table)
    assert [str(w.message) for w in caught if "integer column" in str(w.message)] == []
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == ("metadata", ("0123abcd" * 5)[:36])
    assert '"num_frames"' in logged.dataset.schema and [t.value for t in logged.tags] == ["ingest"]
