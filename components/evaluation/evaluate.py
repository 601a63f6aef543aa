"""What evaluate_flow calls: register the candidate, plan the eval stages, gate, report, and the MLflow run.

Kept free of Prefect (flows/evaluate.py chains these) so the same steps run from a script or a test.
Configured per model kind by configs/<profile>/evaluate.yaml (sections `vae` and `dit`).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components import config as configs
from components import registry, tracking
from components.evaluation import gate as gating
from components.evaluation.report import ReportInfo, write_report
from components.evaluation.results import RESULT_FILES, all_metrics, collect
from components.workspace import workspace

KINDS = ("vae", "dit")


class EvaluateConfig(BaseModel):
    """One model kind: its registered name, the training stage it comes from, its eval stages and its gate."""

    model_config = ConfigDict(extra="forbid")
    registered_model: str
    stage: str  # training stage whose output folder becomes the version (its manifest gives run id and hashes)
    eval_stages: list[str] = Field(min_length=1)
    # eval stage -> config key that points it at a model folder (`--set key=<version source>`); a stage without
    # one evaluates its default input, which is the version only when the version is the stage's current output
    model_sets: dict[str, str] = {}
    gate: gating.GateConfig
    registry_store: str | None = None  # version snapshots; default REELFORGE_REGISTRY_STORE or <workspace>/registry
    report_dir: str = "eval/report"  # under the workspace; replaced by each evaluation
    max_gifs: int = Field(12, ge=0)


def load(kind: str, profile: str, sets: list[str] | None = None) -> EvaluateConfig:
    """configs/<profile>/evaluate.yaml section `kind` + params.yaml overrides.evaluate.<kind> + --set."""
    if kind not in KINDS:
        raise configs.ConfigError(f"model_kind {kind!r}: expected one of {', '.join(KINDS)}")
    cfg = configs.resolve(f"evaluate.{kind}", EvaluateConfig, profile, sets)
    unknown = [s for s in cfg.eval_stages if s not in RESULT_FILES]
    if unknown:
        raise configs.ConfigError(f"evaluate.{kind}.eval_stages: no result reader for {unknown}; "
                                  f"known: {', '.join(RESULT_FILES)}")
    return cfg


def candidate(cfg: EvaluateConfig, version: str | None = None) -> Any:
    """The version to evaluate: `version` (a number or alias) if given, else the training stage's current output
    registered (once per content) with the `candidate` alias."""
    if version:
        ref = f"{cfg.registered_model}/{version}" if str(version).isdigit() else f"{cfg.registered_model}@{version}"
        return registry.get_version(ref)
    tags, run_id, folder = registry.training_tags(cfg.stage)
    mv, created = registry.register(cfg.registered_model, Path(folder), tags, run_id, cfg.registry_store)
    print(f"{cfg.registered_model} v{mv.version} ({'new' if created else 'already registered'}) "
          f"from {folder}: alias {registry.CANDIDATE}")
    return mv


@dataclass
class Plan:
    """Which eval stages run, with their --set overrides, and which are skipped and why."""

    run: list[tuple[str, list[str]]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def split_sets(cfg: EvaluateConfig, items: list[str]) -> dict[str, list[str]]:
    """`eval.adherence.samples=4` (the CLI's --set) -> {"eval.adherence": ["samples=4"]}, for an eval stage only."""
    out: dict[str, list[str]] = {}
    for item in items:
        key = item.split("=", 1)[0]
        # the longest stage name first: a stage name may itself be a prefix of another (eval.vae, eval.vae2)
        name = next((s for s in sorted(cfg.eval_stages, key=len, reverse=True) if key.startswith(f"{s}.")), None)
        if name is None or "=" not in item:
            raise configs.ConfigError(f"--set {item!r}: expected <eval stage>.<key>=<value> with the stage one of "
                                      f"{', '.join(cfg.eval_stages)} (e.g. {cfg.eval_stages[0]}.seed=1)")
        out.setdefault(name, []).append(item[len(name) + 1:])
    return out


def plan(cfg: EvaluateConfig, source: str, registered: set[str], explicit_version: bool,
         overrides: dict[str, list[str]] | None = None) -> Plan:
    """Eval stages to run against `source`, each with `overrides[stage]` after its model key; unregistered stages
    are skipped with the reason, never faked."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(cfg.eval_stages))
    if unknown:
        raise configs.ConfigError(f"overrides for {unknown}: not eval stages of {cfg.registered_model} "
                                  f"({', '.join(cfg.eval_stages)})")
    out = Plan()
    for name in cfg.eval_stages:
        key = cfg.model_sets.get(name)
        extra = list(overrides.get(name, []))
        clash = [s for s in extra if key and s.split("=", 1)[0].strip() == key]
        if clash:
            raise configs.ConfigError(f"overrides for {name}: {clash[0]!r} would replace the version under "
                                      f"evaluation ({key}={source}); evaluate another version with --version")
        if name not in registered:
            out.skipped.append((name, "not a registered stage (components/stage.py STAGE_MODULES); "
                                      "the report lists it as not run"))
        elif explicit_version and not key:
            out.skipped.append((name, f"no model_sets.{name} key to point it at {source}; it would evaluate "
                                      "its default input instead of this version"))
        else:
            out.run.append((name, ([f"{key}={source}"] if key else []) + extra))
    return out


def preflight(cfg: EvaluateConfig, version: Any, todo: Plan, profile: str) -> None:
    """Resolve every planned stage's config and check its inputs (the version's weights file among them) before
    the first stage runs, so a version without e.g. ema.safetensors fails at once, naming the file."""
    from components import stage as stages
    from components.errors import InputMissing
    from components.runner import check_inputs

    ws = workspace()
    for name, sets in todo.run:
        spec = stages.get(name)
        stage_cfg = configs.resolve(name, spec.config, profile, sets)
        try:
            check_inputs(name, spec.inputs(stage_cfg, ws))
        except InputMissing as err:
            raise InputMissing(f"{cfg.registered_model} v{version.version} ({version.source}): {err}") from None


def start_run(kind: str, profile: str, cfg: EvaluateConfig, version: Any, flow_run_id: str | None) -> tuple[str, str | None]:
    """The evaluation's MLflow run (a child of the pipeline run when there is one); eval stage runs nest under
    it. Returns (run id, the previous MLFLOW_PARENT_RUN_ID to restore)."""
    import mlflow

    exp_id = tracking.setup()
    previous = os.environ.get("MLFLOW_PARENT_RUN_ID")
    tags = {"reelforge.kind": "evaluation", "reelforge.stage": f"evaluate.{kind}", "reelforge.profile": profile,
            "reelforge.git_commit": tracking.git_commit(), "reelforge.model": cfg.registered_model,
            "reelforge.model_version": str(version.version), "reelforge.model_source": version.source}
    if flow_run_id:
        tags["reelforge.prefect_flow_run_id"] = flow_run_id
        os.environ["REELFORGE_FLOW_RUN_ID"] = flow_run_id
    if previous:
        tags["mlflow.parentRunId"] = previous
    run = mlflow.MlflowClient().create_run(exp_id, run_name=f"evaluate-{kind}-{profile}", tags=tags)
    tracker = tracking.Tracker(run.info.run_id)
    tracker.log_params(configs.flat_params(cfg))
    tracker.log_text(configs.to_yaml(cfg), "config/resolved.yaml")
    os.environ["MLFLOW_PARENT_RUN_ID"] = run.info.run_id
    return run.info.run_id, previous


def end_run(run_id: str, previous: str | None, rows: list[dict], status: str = "FINISHED") -> None:
    """Log the per-stage table, close the run and give the pipeline its parent run back."""
    import mlflow

    client = mlflow.MlflowClient(tracking.tracking_uri())
    client.log_dict(run_id, {"stages": rows}, "evaluation/stages.json")
    client.set_terminated(run_id, status)
    if previous:
        os.environ["MLFLOW_PARENT_RUN_ID"] = previous
    else:
        os.environ.pop("MLFLOW_PARENT_RUN_ID", None)


def gate_and_report(kind: str, profile: str, cfg: EvaluateConfig, version: Any, fresh: set[str],
                    run_id: str | None) -> dict[str, Any]:
    """Collect the fresh eval results, gate the version, write and log the report; returns a summary."""
    from components.runner import replace_dir

    ws = workspace()
    results = collect(ws, cfg.eval_stages, fresh, cfg.max_gifs)
    metrics = all_metrics(results)
    champion = registry.alias_version(cfg.registered_model, registry.CHAMPION)
    compared = champion if champion is not None and str(champion.version) != str(version.version) else None
    decision = gating.apply(cfg.registered_model, str(version.version), metrics, cfg.gate, run_id)
    info = ReportInfo(cfg.registered_model, str(version.version), kind, profile, version.source,
                      str(compared.version) if compared else None,
                      registry.version_metrics(compared) if compared else {},
                      {"evaluation run": run_id or "", "training run": (version.tags or {}).get("reelforge.run_id", "")})
    final = ws / cfg.report_dir
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tracker = tracking.Tracker(run_id) if run_id else None
    try:
        tmp.mkdir(parents=True)
        (tmp / "decision.json").write_text(json.dumps(decision.as_dict(), indent=2, sort_keys=True) + "\n")
        write_report(tmp, info, results, decision, tracker)
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if tracker is not None:
        tracker.log_metrics({**metrics, "gate/promoted": float(decision.promote)})
        tracker.set_tags({"reelforge.gate.outcome": decision.outcome, "reelforge.gate.reason": decision.reason[:5000]})
    print(f"gate: {cfg.registered_model} v{version.version}: {decision.outcome}: {decision.reason}")
    return {"model": cfg.registered_model, "version": str(version.version), "outcome": decision.outcome,
            "promoted": decision.promote, "reason": decision.reason, "metrics": metrics,
            "report": str(final / "report.html"),
            "stages": {r.stage: r.status for r in results}}

