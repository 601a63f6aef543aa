"""data_flow: ingest → version → validate (the synthetic corpus is written first on the tiny profile)."""
from __future__ import annotations

from prefect import flow

from flows.tasks import stage, synth_corpus

DATA_STAGES = ["data.synth", "data.ingest", "data.version", "data.validate"]


@flow(name="data_flow", log_prints=True)
def data_flow(profile: str = "tiny", use_dvc: bool = True, start: str | None = None) -> list[dict]:
    """Raw videos → metadata (Parquet + CSV) → DVC version → Great Expectations validation."""
    names = DATA_STAGES[DATA_STAGES.index(start):] if start else DATA_STAGES
    rows = []
    for name in names:
        if name == "data.synth":
            if profile == "tiny":  # other profiles bring their own raw data in ./data or an s3:// source
                rows.append(synth_corpus(profile))
            continue
        rows.append(stage(name, profile, use_dvc))
    return rows
