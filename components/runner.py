"""`reelforge stage run`: resolve, check inputs, launch, track, and move outputs into place atomically."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from components import config as configs
from components import manifest, stage as stages, tracking
from components.errors import InputMissing, StageError, exit_code_for, write_failure
from components.hashing import exists
from components.launch import effective, run_torchrun
from components.workspace import workspace


def device_kind() -> str:
    """Where this process ran its stage (in-process, or rank 0 under torchrun): cuda when its torch sees a GPU; a
    stage that never imported torch ran on the CPU (importing torch only to ask costs a data stage 2-8 s)."""
    torch = sys.modules.get("torch")
    return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"


def check_inputs(name: str, inputs: dict[str, str]) -> None:
    """Every declared input must exist before any heavy work starts."""
    missing = {k: v for k, v in inputs.items() if not exists(v)}
    if missing:
        listed = ", ".join(f"{k}={v}" for k, v in missing.items())
        raise InputMissing(f"stage {name}: missing input(s) {listed}; run the upstream stage first")


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished temp folder into place; the old output is removed only after the new one is there."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def start_run(spec: stages.StageSpec, profile: str, cfg: Any) -> str:
    """Open the stage's MLflow run (child of MLFLOW_PARENT_RUN_ID when set) and log config and tags."""
    import mlflow

    tracking.setup()
    tags = {
        "reelforge.stage": spec.name,
        "reelforge.profile": profile,
        "reelforge.git_commit": tracking.git_commit(),
        "reelforge.params_hash": configs.params_hash(cfg),
    }
    for path, md5 in manifest.dvc_hashes().items():
        tags[f"reelforge.dvc.{path}"] = md5
    for var, tag in (("PREFECT__FLOW_RUN_ID", "reelforge.prefect_flow_run_id"), ("REELFORGE_FLOW_RUN_ID", "reelforge.prefect_flow_run_id"),
                     ("REELFORGE_PARENT_CHECKPOINT_RUN", "reelforge.parent_checkpoint_run_id")):
        if os.environ.get(var):
            tags[tag] = os.environ[var]
    parent = os.environ.get("MLFLOW_PARENT_RUN_ID")
    run = mlflow.MlflowClient().create_run(
        mlflow.get_experiment_by_name(tracking.experiment_name()).experiment_id,
        run_name=spec.name,
        tags={**tags, **({"mlflow.parentRunId": parent} if parent else {})},
    )
    tracker = tracking.Tracker(run.info.run_id)
    tracker.log_params(configs.flat_params(cfg))
    tracker.log_text(configs.to_yaml(cfg), "config/resolved.yaml")
    return run.info.run_id


def run_stage(name: str, profile: str = "tiny", sets: list[str] | None = None, track: bool = True) -> dict[str, Any]:
    """Run one stage to completion and return its manifest; raises on failure (after recording it)."""
    spec = stages.get(name)
    cfg = configs.resolve(name, spec.config, profile, sets)
    ws = workspace()
    inputs = spec.inputs(cfg, ws)
    check_inputs(name, inputs)
    launch = effective(cfg.launch)
    final = ws / spec.output
    # multi-node: every node must name the same temp folder (shared filesystem), so the job id names it
    tmp = final.with_name(f".{final.name}.tmp-{os.environ.get('REELFORGE_RDZV_ID') or uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True, exist_ok=True)
    ckpt = ws / "checkpoints" / name
    ckpt.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("REELFORGE_NODE_RANK", "0")) > 0:
        # other nodes only start their ranks; node 0 owns the MLflow run, the output swap and the manifest
        _run_distributed(spec, profile, cfg, launch, ws, tmp, ckpt, inputs, None)
        return {"stage": name, "node_rank": int(os.environ["REELFORGE_NODE_RANK"])}
    run_id = start_run(spec, profile, cfg) if track else None
    system_metrics = _start_system_metrics(run_id)
    started = time.time()
    try:
        if launch.mode == "torchrun":
            metrics, device = _run_distributed(spec, profile, cfg, launch, ws, tmp, ckpt, inputs, run_id)
            world = launch.nproc_per_node * int(str(launch.nnodes).split(":")[-1])
        else:
            ctx = stages.StageContext(
                name=name, profile=profile, cfg=cfg, workspace=ws, out=tmp, inputs=inputs, checkpoint_dir=ckpt,
                tracker=tracking.Tracker(run_id) if run_id else tracking.NoopTracker(),
            )
            metrics = spec.fn(ctx) or {}
            world, device = 1, device_kind()
        (tmp / "config.yaml").write_text(configs.to_yaml(cfg))
        replace_dir(tmp, final)
    except BaseException as err:
        _fail(name, ws, tmp, run_id, err, system_metrics)
        raise
    wall = time.time() - started
    result = manifest.build(
        stage=name, profile=profile, params_hash=configs.params_hash(cfg), inputs=inputs, output_dir=final,
        run_id=run_id, git_commit=tracking.git_commit(), wall_time_s=wall, world_size=world,
        device=device, metrics=metrics,
    )
    manifest.write(manifest.path_for(ws, name), result)
    shutil.rmtree(ws / "failed" / name, ignore_errors=True)
    if run_id:
        tracker = tracking.Tracker(run_id)
        group = name.split(".")[0]  # names that already carry a group (ingest/accepted) are kept as they are
        tracker.log_metrics({(k if "/" in k else f"{group}/{k}"): v for k, v in metrics.items() if _numeric(v)})
        tracker.log_metrics({"stage/wall_time_s": wall, "stage/cpu_hours": result["cpu_hours"], "stage/device_hours": result["device_hours"]})
        tracker.log_dict(result, "manifest.json")
        _stop_system_metrics(system_metrics)
        import mlflow

        mlflow.MlflowClient().set_terminated(run_id, "FINISHED")
    return result


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _run_distributed(spec, profile, cfg, launch, ws, tmp, ckpt, inputs, run_id) -> tuple[dict[str, Any], str]:
    """Write the resolved config where the ranks can read it, run torchrun, and collect rank 0's metrics and device."""
    cfg_file = Path(str(tmp) + ".config.yaml")
    cfg_file.write_text(configs.to_yaml(cfg))
    args = ["--stage", spec.name, "--profile", profile, "--config", str(cfg_file), "--out", str(tmp),
            "--workspace", str(ws), "--checkpoint-dir", str(ckpt), "--inputs", json.dumps(inputs),
            "--run-id", run_id or ""]
    code = run_torchrun(launch, args, ws / "logs" / spec.name)
    result_file = Path(str(tmp) + ".result.json")
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    cfg_file.unlink(missing_ok=True)
    result_file.unlink(missing_ok=True)
    if code != 0:
        err = StageError(f"stage {spec.name} failed under torchrun (exit {code}): {result.get('error', 'see per-rank logs in ' + str(ws / 'logs' / spec.name))}")
        err.exit_code = result.get("exit_code", code)
        raise err
    return result.get("metrics", {}), result.get("device", "cpu")


def _fail(name: str, ws: Path, tmp: Path, run_id: str | None, err: BaseException, system_metrics) -> None:
    """Keep what the failed run wrote under workspace/failed/<stage>/ and mark the MLflow run failed."""
    folder = ws / "failed" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        os.replace(tmp, folder / "partial")
    write_failure(folder, name, err, exit_code_for(err))
    if run_id:
        import mlflow

        client = mlflow.MlflowClient()
        client.set_tag(run_id, "reelforge.error", f"{type(err).__name__}: {err}"[:5000])
        _stop_system_metrics(system_metrics)
        client.set_terminated(run_id, "FAILED")


def _start_system_metrics(run_id: str | None):
    """CPU/memory/GPU sampling into the stage's run (MLflow system metrics), off when tracking is off."""
    if not run_id or os.environ.get("REELFORGE_SYSTEM_METRICS", "1") == "0":
        return None
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=float(os.environ.get("REELFORGE_SYSTEM_METRICS_INTERVAL", "5")))
        monitor.start()
        return monitor
    except Exception as err:  # psutil missing or an MLflow change: tracking the stage matters more
        print(f"system metrics off: {err}")
        return None


def _stop_system_metrics(monitor) -> None:
    if monitor is not None:
        monitor.finish()
