"""One rank of a stage started by torchrun: join the process group, run the stage function, report back."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from components import stage as stages
from components.errors import exit_code_for
from components.runner import device_kind
from components.tracking import NoopTracker, Tracker, setup


def backend(requested: str) -> str:
    """nccl when CUDA is present, gloo on CPU (the tests run 2 CPU ranks with gloo)."""
    if requested != "auto":
        return requested
    return "nccl" if torch.cuda.is_available() else "gloo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reelforge-worker")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--config", required=True, help="resolved config YAML written by the runner")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--inputs", required=True, help="JSON {name: uri}")
    parser.add_argument("--run-id", default="")
    args = parser.parse_args(argv)

    spec = stages.get(args.stage)
    cfg = spec.config.model_validate(yaml.safe_load(Path(args.config).read_text()))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend(cfg.launch.backend))
    tracker = NoopTracker()
    if rank == 0 and args.run_id:
        setup()
        tracker = Tracker(args.run_id)
    ctx = stages.StageContext(
        name=args.stage, profile=args.profile, cfg=cfg, workspace=Path(args.workspace), out=Path(args.out),
        inputs=json.loads(args.inputs), checkpoint_dir=Path(args.checkpoint_dir),
        rank=rank, world_size=world, local_rank=local_rank, tracker=tracker,
    )
    try:
        metrics = spec.fn(ctx) or {}
    except BaseException as err:  # every rank reports; the runner maps the code to retry or stop
        print(f"[rank {rank}] stage {args.stage} failed: {type(err).__name__}: {err}", flush=True)
        code = exit_code_for(err)
        if rank == 0:
            Path(args.out + ".result.json").write_text(json.dumps({"error": str(err), "type": type(err).__name__, "exit_code": code}))
        return code
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        result = {"metrics": metrics, "device": device_kind()}
        Path(args.out + ".result.json").write_text(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
