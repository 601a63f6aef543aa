"""Deployments with schedules on the process work pool; `reelforge deploy` runs this against a Prefect server.

reelforge-pipeline  the whole pipeline, weekly (Sunday 03:00)
data-refresh        data_flow (synth on tiny, ingest, version, validate), daily 01:00
nightly-evaluation  evaluate_flow for the DiT and for the VAE, nightly 02:00 (one schedule per model kind)
All run on the process work pool `reelforge-process`; the tag concurrency limit `gpu-heavy` (1 slot) keeps two
training or evaluation stages from running at once, whichever deployments they come from.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from components.workspace import project_root
from flows.tasks import GPU_HEAVY

POOL = "reelforge-process"
GPU_SLOTS = 1


@dataclass
class DeploymentSpec:
    """One deployment: its flow (file:function), cron schedules (with per-schedule parameters) and parameters."""

    name: str
    entrypoint: str
    crons: list[tuple[str, dict[str, Any]]]
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def deployments(profile: str) -> list[DeploymentSpec]:
    """The three scheduled deployments for a profile."""
    return [
        DeploymentSpec("reelforge-pipeline", "flows/pipeline.py:pipeline", [("0 3 * * 0", {})],
                       {"profile": profile}, "The whole pipeline, weekly."),
        DeploymentSpec("data-refresh", "flows/data.py:data_flow", [("0 1 * * *", {})],
                       {"profile": profile}, "Re-ingest, version and validate the raw data, daily."),
        DeploymentSpec("nightly-evaluation", "flows/evaluate.py:evaluate_flow",
                       [("0 2 * * *", {"model_kind": "dit"}), ("0 2 * * *", {"model_kind": "vae"})],
                       {"profile": profile, "model_kind": "dit"},
                       "Evaluate the latest DiT and VAE, report, and run the registry gate."),
    ]


def require_server() -> str:
    """PREFECT_API_URL: deployments on an ephemeral server would vanish with it."""
    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        raise SystemExit("reelforge deploy needs a Prefect server: start one (`reelforge ui`, or the team server) "
                         "and export PREFECT_API_URL=http://HOST:4200/api")
    return url


async def ensure_pool_and_limits(pool: str, gpu_slots: int) -> None:
    """Create the process work pool if missing and set the `gpu-heavy` tag concurrency limit."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            await client.read_work_pool(pool)
        except ObjectNotFound:
            # the process worker's own job template, as `prefect work-pool create --type process` would set it
            template = ProcessWorker.get_default_base_job_template()
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=template))
        await client.create_concurrency_limit(tag=GPU_HEAVY, concurrency_limit=gpu_slots)


def deploy(profile: str, source: str, pool: str, paused: bool = False, gpu_slots: int = GPU_SLOTS) -> list[str]:
    """Register every deployment from `source` (a folder or a git URL) on `pool`; returns their ids."""
    from prefect import Flow
    from prefect.schedules import Cron

    asyncio.run(ensure_pool_and_limits(pool, gpu_slots))
    ids = []
    for spec in deployments(profile):
        flow = Flow.from_source(source=source, entrypoint=spec.entrypoint)
        schedules = [Cron(cron, parameters=params) for cron, params in spec.crons]
        ids.append(str(flow.deploy(name=spec.name, work_pool_name=pool, schedules=schedules, parameters=spec.parameters,
                                   description=spec.description, tags=["reelforge", profile], paused=paused,
                                   build=False, push=False, print_next_steps=False, ignore_warnings=True)))
        print(f"deployed {flow.name}/{spec.name} on pool {pool}: {', '.join(c for c, _ in spec.crons)}")
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reelforge deploy")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--source", default=None, help="project folder or git URL the workers pull (default: this checkout)")
    parser.add_argument("--pool", default=POOL)
    parser.add_argument("--paused", action="store_true", help="register the schedules paused")
    parser.add_argument("--gpu-slots", type=int, default=GPU_SLOTS, help="GPU-heavy tasks at once, server-wide")
    args = parser.parse_args(argv)
    url = require_server()
    deploy(args.profile, args.source or str(project_root()), args.pool, args.paused, args.gpu_slots)
    print(f"start a worker: prefect worker start --pool {args.pool}   (server {url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
