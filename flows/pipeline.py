"""The whole pipeline as one Prefect flow with one MLflow parent run; `reelforge run` starts it."""
from __future__ import annotations

import argparse
import os
import sys

from components.workspace import workspace

# Keep Prefect's ephemeral server state inside the workspace unless the user points at a server.
os.environ.setdefault("PREFECT_HOME", str(workspace() / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# The ephemeral server's default 20 s start-up limit is too short on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from components import orchestration  # noqa: E402
from flows.adapt import ADAPT_STAGES, adapt_flow  # noqa: E402
from flows.curate import CURATE_STAGES, curate_flow  # noqa: E402
from flows.data import DATA_STAGES, data_flow  # noqa: E402
from flows.evaluation import EVAL_STAGES, eval_flow  # noqa: E402
from flows.pretrain import PRETRAIN_STAGES, pretrain_flow  # noqa: E402
from flows.vae import VAE_STAGES, vae_flow  # noqa: E402

# (sub-flow, its stages) in pipeline order; later capabilities append their flows here.
SEGMENTS = [
    (data_flow, DATA_STAGES),
    (curate_flow, CURATE_STAGES),
    (vae_flow, VAE_STAGES),
    (adapt_flow, ADAPT_STAGES),
    (pretrain_flow, PRETRAIN_STAGES),
    (eval_flow, EVAL_STAGES),
]


def _segment_start(stages: list[str], start: str | None, reached: bool) -> tuple[bool, str | None]:
    """Whether a segment runs, and from which of its stages, for `--from STAGE`."""
    if reached or start is None:
        return True, None
    return (True, start) if start in stages else (False, None)


def segment_name(segment) -> str:
    """data_flow → data: the name `--stop-after` takes."""
    return segment.name.removesuffix("_flow")


@flow(name="reelforge-pipeline", log_prints=True)
def pipeline(profile: str = "tiny", start: str | None = None, use_dvc: bool = True, stop_after: str | None = None) -> list[dict]:
    """Run every segment in order under one MLflow parent run; returns the per-stage table."""
    known = [name for _, names in SEGMENTS for name in names]
    if start and start not in known:
        raise ValueError(f"--from {start!r}: not a pipeline stage; stages: {', '.join(known)}")
    segments = [segment_name(seg) for seg, _ in SEGMENTS]
    if stop_after and stop_after not in segments:
        raise ValueError(f"--stop-after {stop_after!r}: not a segment; segments: {', '.join(segments)}")
    parent = orchestration.start_parent_run(profile, str(flow_run.id) if flow_run.id else None)
    rows: list[dict] = []
    reached = False
    try:
        for segment, names in SEGMENTS:
            runs, first = _segment_start(names, start, reached)
            if not runs:
                continue
            reached = True
            rows += segment(profile=profile, use_dvc=use_dvc, start=first)
            if segment_name(segment) == stop_after:
                break
    except BaseException:
        orchestration.finish_parent_run(parent, rows, status="FAILED")
        raise
    orchestration.finish_parent_run(parent, rows)
    return rows


def print_table(rows: list[dict]) -> None:
    table = Table("stage", "status", "wall time (s)", "MLflow run", title="pipeline stages")
    for row in rows:
        table.add_row(row["stage"], row["status"], f"{row['wall_time_s']:.1f}", row.get("run_id") or "")
    table.add_row("total", "", f"{sum(r['wall_time_s'] for r in rows):.1f}", "")
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reelforge run")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--from", dest="start", default=None)
    parser.add_argument("--no-dvc", action="store_true")
    parser.add_argument("--stop-after", default=None, help="segment to end with: data, curate, vae, adapt, pretrain, …")
    args = parser.parse_args(argv)
    rows = pipeline(profile=args.profile, start=args.start, use_dvc=not args.no_dvc, stop_after=args.stop_after)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
