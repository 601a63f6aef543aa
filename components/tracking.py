"""MLflow tracking: embedded sqlite store by default, a server by MLFLOW_TRACKING_URI; rank 0 alone logs."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from components.workspace import project_root, workspace


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:///<workspace>/mlflow/mlflow.db."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = workspace() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_root() -> str:
    """Artifact folder beside the embedded store (a server chooses its own)."""
    return (workspace() / "mlflow" / "artifacts").as_uri()


def experiment_name() -> str:
    return os.environ.get("REELFORGE_EXPERIMENT", "reelforge")


def setup() -> str:
    """Point mlflow at the store and make sure the experiment exists; returns its id."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)  # note: this also exports MLFLOW_TRACKING_URI, so decide by the URI itself
    name = experiment_name()
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        embedded = uri.startswith("sqlite:///") and uri == f"sqlite:///{workspace() / 'mlflow' / 'mlflow.db'}"
        kwargs = {"artifact_location": artifact_root()} if embedded else {}
        exp_id = mlflow.create_experiment(name, **kwargs)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit(root: Path | None = None) -> str:
    """HEAD commit of the project (with '-dirty' when tracked files changed), or 'unknown' outside git."""
    root = root or project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


class Tracker:
    """The active MLflow run of a stage (rank 0). Metric names follow `group/name`, e.g. train/loss."""

    def __init__(self, run_id: str):
        import mlflow

        self.mlflow = mlflow
        self.run_id = run_id
        self.client = mlflow.MlflowClient(tracking_uri())

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step, run_id=self.run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        items = {k: str(v)[:6000] for k, v in params.items()}
        keys = list(items)
        for i in range(0, len(keys), 100):  # MLflow caps a batch at 100 params
            self.mlflow.log_params({k: items[k] for k in keys[i:i + 100]}, run_id=self.run_id)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_dataset(self, name: str, source: str, digest: str, context: str, df: Any = None) -> None:
        """Record a dataset input with its digest (a DVC md5 or content hash), so runs show their data."""
        import warnings

        import mlflow.data
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with warnings.catch_warnings():  # a local path matches two equivalent source kinds; either is right
            warnings.simplefilter("ignore")
            src = resolve_dataset_source(source)
        if df is not None:
            dataset = mlflow.data.from_pandas(df, source=src, name=name, digest=digest[:36])
        else:
            dataset = MetaDataset(source=src, name=name, digest=digest[:36])
        with self._active(), warnings.catch_warnings():
            # the table's schema is inferred here; MLflow's hint on integer columns concerns model signatures
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            self.mlflow.log_input(dataset, context=context)

    def _active(self):
        """log_input needs an active run: resume ours for the call if another is not active."""
        active = self.mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            from contextlib import nullcontext

            return nullcontext()
        return _Resume(self.mlflow, self.run_id)


class _Resume:
    def __init__(self, mlflow, run_id):
        self.mlflow, self.run_id = mlflow, run_id

    def __enter__(self):
        self.mlflow.start_run(run_id=self.run_id)

    def __exit__(self, *exc):
        self.mlflow.end_run(status="RUNNING")  # the runner ends it with the real status
        return False


class NoopTracker:
    """What ranks other than 0 get: every call does nothing, so stage code need not check the rank."""

    run_id = None

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None
