"""ms per pretraining step on the tiny profile: latents from the cache vs encoded on the fly, side by side.

Needs a tiny workspace that has run up to cache.latents (REELFORGE_HOME, default ./workspace: vae/stage3,
dit/adapt8, the tier table, cache/latents). Builds pretrain.tier1 twice from the same recipe and seed, once
reading the latent cache and once encoding every sample with the VAE (no memo, as a run without the cache does
in its first epoch and, on real data, in every epoch), and alternates their steps so load from other processes
hits both alike. Each trainer keeps its own RNG state, so both draw the same batches, timesteps, noise and
masks: their losses must agree (printed). Nothing is written to the workspace (outputs and checkpoints go to a
temp folder).

    .venv/bin/python bench/pretrain.py --steps 20 --warmup 2 [--stage pretrain.tier1] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config import resolve  # noqa: E402
from components.dit.pretrain import prepare_tier, pretrain_inputs  # noqa: E402
from components.dit.pretrain_config import PretrainConfig  # noqa: E402
from components.runner import check_inputs  # noqa: E402
from components.stage import StageContext  # noqa: E402
from components.tracking import NoopTracker  # noqa: E402
from components.training.trainer import seed_everything  # noqa: E402
from components.workspace import workspace  # noqa: E402

MODES = {"cache": ["latents.kind=cache"], "on the fly": ["latents.kind=on_the_fly", "vae.memo=false"]}


def build(stage: str, sets: list[str], ws: Path, tmp: Path, mode: str):
    """One tier's trainer (no grid, no samples) with its own RNG state, seeded as Trainer.train seeds it."""
    cfg = resolve(stage, PretrainConfig, "tiny", sets + MODES[mode])
    inputs = pretrain_inputs(cfg, ws)
    check_inputs(stage, inputs)
    out = tmp / mode.replace(" ", "_")
    out.mkdir()
    ctx = StageContext(name=stage, profile="tiny", cfg=cfg, workspace=ws, out=out, inputs=inputs,
                       checkpoint_dir=tmp / f"ckpt_{out.name}", tracker=NoopTracker())
    run = prepare_tier(ctx, evaluate=False)
    seed_everything(cfg.seed + 1)
    return run, torch.get_rng_state()


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return statistics.median(values), q[2] - q[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="pretrain.tier1")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ws = workspace()
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        runs = {mode: build(args.stage, args.sets + ["progress=false"], ws, Path(tmp), mode) for mode in MODES}
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        losses: dict[str, list[float]] = {mode: [] for mode in MODES}
        started, cpu = time.time(), time.process_time()
        for step in range(1, total + 1):
            for mode, (run, rng) in list(runs.items()):
                torch.set_rng_state(rng)
                begin = time.perf_counter()
                out = run.trainer.train_step(step)
                elapsed = time.perf_counter() - begin
                runs[mode] = (run, torch.get_rng_state())
                losses[mode].append(float(out["loss"]))
                if step > args.warmup:
                    times[mode].append(elapsed)
        wall, cpu = time.time() - started, time.process_time() - cpu
        for run, _ in runs.values():
            run.engine.close()
    diff = max(abs(a - b) for a, b in zip(losses["cache"], losses["on the fly"]))
    print(f"{args.stage}, tiny profile, {args.warmup} warm-up + {args.steps} timed steps per mode, steps "
          f"alternating; torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores "
          f"({platform.machine()}), load average {os.getloadavg()[0]:.1f}; this process: {cpu:.0f} s CPU over "
          f"{wall:.0f} s wall")
    print(f"loss trajectories: max |cache - on the fly| = {diff:.2e} over {total} steps")
    print()
    print("| latents | step median (ms) | IQR (ms) | step mean (ms) | speed-up (median) | speed-up (mean) |")
    print("|---|---|---|---|---|---|")
    base, base_mean = quartiles(times["on the fly"])[0], statistics.mean(times["on the fly"])
    for mode in MODES:
        (median, iqr), mean = quartiles(times[mode]), statistics.mean(times[mode])
        print(f"| {mode} | {1000 * median:.0f} | {1000 * iqr:.0f} | {1000 * mean:.0f} | {base / median:.2f}x | "
              f"{base_mean / mean:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
