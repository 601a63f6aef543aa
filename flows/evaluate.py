"""evaluate_flow: judge one model version with the eval stages, write the report, and run the registry gate.

For model_kind "vae": eval.vae. For "dit": eval.loss, eval.vbench, eval.adherence (configs/<profile>/evaluate.yaml).
Without `version`, the training stage's current output is registered (once per content) as the `candidate`;
the gate moves `champion` to it only when it beats the current champion. Each eval stage reads the version's
snapshot through its `model_sets` key; `--set <eval stage>.<key>=<value>` (flow parameter `overrides`) changes
one stage's config.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Literal

from components.workspace import workspace

# Same start-up settings as flows/pipeline.py when run on its own (`reelforge evaluate`).
os.environ.setdefault("PREFECT_HOME", str(workspace() / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from components import stage as stages  # noqa: E402
from components.evaluation import evaluate  # noqa: E402
from flows.tasks import stage  # noqa: E402


@task(cache_policy=NO_CACHE)
def register_candidate(model_kind: str, profile: str, version: str | None) -> dict[str, Any]:
    """The version under evaluation: the given one, or the training output registered as `candidate`."""
    cfg = evaluate.load(model_kind, profile)
    mv = evaluate.candidate(cfg, version)
    return {"version": str(mv.version), "source": mv.source}


@task(cache_policy=NO_CACHE)
def gate_and_report(model_kind: str, profile: str, version: str, fresh: list[str], run_id: str) -> dict[str, Any]:
    """Gate the version on this evaluation's results and log the report on the evaluation run."""
    cfg = evaluate.load(model_kind, profile)
    mv = evaluate.candidate(cfg, version)
    return evaluate.gate_and_report(model_kind, profile, cfg, mv, set(fresh), run_id)


@flow(name="evaluate_flow", log_prints=True)
def evaluate_flow(model_kind: Literal["dit", "vae"] = "dit", profile: str = "tiny", version: str | None = None,
                  use_dvc: bool = False, overrides: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Evaluate a model version, write the report, and promote it to champion if it beats the current one.

    `overrides` adds --set items per eval stage ({"eval.adherence": ["samples=4"]}) after the version's model key.
    """
    cfg = evaluate.load(model_kind, profile)
    picked = register_candidate(model_kind, profile, version)
    mv = evaluate.candidate(cfg, picked["version"])
    run_id, previous = evaluate.start_run(model_kind, profile, cfg, mv, str(flow_run.id) if flow_run.id else None)
    rows: list[dict] = []
    try:
        todo = evaluate.plan(cfg, mv.source, set(stages.load_all()), explicit_version=version is not None,
                             overrides=overrides)
        for name, reason in todo.skipped:
            print(f"skipping {name}: {reason}")
        evaluate.preflight(cfg, mv, todo, profile)
        for name, sets in todo.run:
            rows.append(stage(name, profile, use_dvc, sets))
        summary = gate_and_report(model_kind, profile, picked["version"], [r["stage"] for r in rows], run_id)
    except BaseException:
        evaluate.end_run(run_id, previous, rows, status="FAILED")
        raise
    evaluate.end_run(run_id, previous, rows)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reelforge evaluate")
    parser.add_argument("--kind", choices=["dit", "vae"], default="dit")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--version", default=None, help="version number or alias; default: register the current output")
    parser.add_argument("--use-dvc", action="store_true")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override one eval stage's config, e.g. eval.adherence.samples=8 (repeatable)")
    args = parser.parse_args(argv)
    overrides = evaluate.split_sets(evaluate.load(args.kind, args.profile), args.sets)
    summary = evaluate_flow(model_kind=args.kind, profile=args.profile, version=args.version, use_dvc=args.use_dvc,
                            overrides=overrides or None)
    print(json.dumps({k: v for k, v in summary.items() if k != "metrics"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
