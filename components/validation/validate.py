"""Stage data.validate: the ingested metadata table against its GX expectation suite, before any training."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.validation.checks import add_check_columns
from components.validation.config import ValidateConfig
from components.validation.report import ValidationFailed, build_report, summary
from components.workspace import is_remote


def metadata_input(cfg: ValidateConfig, ws: Path) -> dict[str, str]:
    """The table to validate: cfg.metadata, relative to the workspace unless it is a URI."""
    return {"metadata": cfg.metadata if is_remote(cfg.metadata) else str(ws / cfg.metadata)}


def read_table(uri: str) -> pd.DataFrame:
    """The metadata Parquet table from a local path or fsspec URI."""
    return pd.read_parquet(uri)


@stage(name="data.validate", config=ValidateConfig, output="data/validate", inputs=metadata_input)
def validate(ctx: StageContext) -> dict[str, float]:
    """Validate the metadata table; write validation.json and data docs; raise ValidationFailed on failure."""
    # GX takes ~2 s to import; importing it here keeps it off every `reelforge` command that loads the registry
    from components.validation.checkpoint import run_checkpoint
    from components.validation.suite import build_suite

    cfg: ValidateConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    source = ctx.inputs["metadata"]
    start = time.perf_counter()
    df = add_check_columns(read_table(source), cfg)
    docs = ctx.out / "data_docs"
    success, results = run_checkpoint(df, build_suite(cfg), docs, cfg.max_examples)
    report = build_report(success, results, df, source, cfg.max_examples)
    report_path = ctx.out / "validation.json"
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    # logged before any raise: the runner discards ctx.out when the stage fails
    tracker.log_artifact(docs, "data_docs")
    tracker.log_artifact(report_path, "validation")
    metrics = {
        "validate/rows": float(report["rows"]),
        "validate/expectations": float(report["expectations"]),
        "validate/failed": float(report["failed"]),
        "validate/seconds": time.perf_counter() - start,
    }
    if not report["success"]:
        message = summary(report)
        tracker.log_metrics(metrics)
        tracker.log_text(message, "validation/summary.txt")
        raise ValidationFailed(message, report)
    return metrics
