"""Start a stage's ranks: torchrun with nproc/nnodes/rdzv from the config, overridden by REELFORGE_* env."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from components.config import Launch

ENV_OVERRIDES = {
    "nproc_per_node": ("REELFORGE_NPROC_PER_NODE", int),
    "nnodes": ("REELFORGE_NNODES", str),
    "rdzv_endpoint": ("REELFORGE_RDZV_ENDPOINT", str),
    "rdzv_id": ("REELFORGE_RDZV_ID", str),
}


def effective(launch: Launch) -> Launch:
    """The launch config after environment overrides (a cluster job sets these per node)."""
    values = launch.model_dump()
    for field, (var, cast) in ENV_OVERRIDES.items():
        if os.environ.get(var):
            values[field] = cast(os.environ[var])
    if os.environ.get("REELFORGE_LAUNCH_MODE"):
        values["mode"] = os.environ["REELFORGE_LAUNCH_MODE"]
    return Launch.model_validate(values)


def torchrun_command(launch: Launch, worker_args: list[str]) -> list[str]:
    """The torchrun command line; a single node on localhost:0 uses --standalone (free port, no rendezvous server)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={launch.nproc_per_node}"]
    if launch.nnodes == "1" and launch.rdzv_endpoint.startswith("localhost:0"):
        cmd.append("--standalone")
    else:
        cmd += [
            f"--nnodes={launch.nnodes}",
            f"--rdzv_backend={launch.rdzv_backend}",
            f"--rdzv_endpoint={launch.rdzv_endpoint}",
            f"--rdzv_id={launch.rdzv_id}",
        ]
    cmd += [f"--max_restarts={launch.max_restarts}", "-m", "components.worker", *worker_args]
    return cmd


def run_torchrun(launch: Launch, worker_args: list[str], log_dir: Path) -> int:
    """Run the ranks to completion; each rank's output goes to its own log file (torchrun --log-dir)."""
    cmd = torchrun_command(launch, worker_args)
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd.insert(cmd.index("-m", 3), f"--log-dir={log_dir}")
    cmd.insert(cmd.index("-m", 3), "--tee=3")  # per-rank files, and the console too
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // launch.nproc_per_node)))
    return subprocess.run(cmd, env=env).returncode
