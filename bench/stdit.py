"""STDiT vs diffusers' LatteTransformer3DModel: CPU fp32 training-step time, FLOPs and peak memory, by hand.

    python bench/stdit.py                  # hidden 384, depth 4, heads 6, latent 1x4x8x16x16, 32 text tokens
    python bench/stdit.py --steps 20 --threads 1
    python bench/stdit.py --blocks         # also forward + backward of one spatial and one temporal block each
    python bench/stdit.py --profile        # also the top ops of one training step of each model

Both models get the same hidden size, depth, heads, patch (1x2x2), token grid (8 frames x 64 tokens), text
(32 tokens of dim 384, no padding mask) and 8 output channels; a step is forward + MSE + backward + AdamW.
Steps of the two models alternate, so load from other processes on the cores hits both alike. The table prints
as markdown for bench/RESULTS.md. Not part of `make test`.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout

from bench._flops import stdit_step_flops  # noqa: E402
from components.memory import peak_cpu_tensor_bytes  # noqa: E402
from models.stdit import STDiT, stdit_config  # noqa: E402

MIB = 1 << 20


@dataclass
class Setting:
    """Model size and inputs shared by both models."""

    hidden: int = 384
    depth: int = 4
    heads: int = 6
    batch: int = 1
    channels: int = 4
    frames: int = 8
    size: int = 16  # latent height = width
    patch: int = 2
    text_tokens: int = 32
    text_dim: int = 384
    lr: float = 1e-4

    @property
    def tokens_per_frame(self) -> int:
        return (self.size // self.patch) ** 2


@dataclass
class Subject:
    """One model behind a forward() -> prediction (B, 2C, T, H, W) closure."""

    name: str
    model: torch.nn.Module
    forward: Callable[[], torch.Tensor]


def make_inputs(s: Setting) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(s.batch, s.channels, s.frames, s.size, s.size, generator=gen),
        "t": torch.rand(s.batch, generator=gen) * 1000,
        "y": torch.randn(s.batch, s.text_tokens, s.text_dim, generator=gen),
        "fps": torch.full((s.batch,), 24.0),
        "target": torch.randn(s.batch, 2 * s.channels, s.frames, s.size, s.size, generator=gen),
    }


def ours(s: Setting, inp: dict[str, torch.Tensor]) -> Subject:
    torch.manual_seed(0)
    cfg = stdit_config("S/2", hidden_size=s.hidden, depth=s.depth, num_heads=s.heads, in_channels=s.channels,
                       caption_channels=s.text_dim, model_max_length=s.text_tokens)
    model = STDiT(cfg).train()
    return Subject("ReelForge STDiT (STDiT3)", model, lambda: model(inp["x"], inp["t"], inp["y"], fps=inp["fps"]))


def latte(s: Setting, inp: dict[str, torch.Tensor]) -> Subject:
    from diffusers import LatteTransformer3DModel

    torch.manual_seed(0)
    # Latte-1's config (ada_norm_single, GELU-tanh, biased attention, PixArt caption projection) at our size.
    model = LatteTransformer3DModel(
        num_attention_heads=s.heads, attention_head_dim=s.hidden // s.heads, in_channels=s.channels,
        out_channels=2 * s.channels, num_layers=s.depth, cross_attention_dim=s.hidden, attention_bias=True,
        sample_size=s.size, patch_size=s.patch, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=s.text_dim,
        video_length=s.frames,
    ).train()
    return Subject("diffusers LatteTransformer3DModel", model,
                   lambda: model(inp["x"], timestep=inp["t"], encoder_hidden_states=inp["y"]).sample)


def train_step(subject: Subject, opt: torch.optim.Optimizer, target: torch.Tensor) -> Callable[[], None]:
    """One forward + MSE + backward + AdamW step."""

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.mse_loss(subject.forward(), target).backward()
        opt.step()

    return step


def counted_flops(subject: Subject, target: torch.Tensor) -> float:
    """Matmul/conv FLOPs of forward + backward, counted by torch; SDPA forced to its math path so it is counted."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        F.mse_loss(subject.forward(), target).backward()
    subject.model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def state_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Weights plus AdamW moments: held across steps, so not in the per-step peak."""
    tensors = list(model.parameters()) + [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)


def timed_interleaved(steps: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each step function, calls alternating between models so shared-core noise hits both."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


@dataclass
class Row:
    name: str
    params_m: float
    gflops: float
    median_s: float
    iqr_s: float
    peak_mib: float
    state_mib: float

    @property
    def gflops_per_s(self) -> float:
        return self.gflops / self.median_s


def iqr(xs: list[float]) -> float:
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[2] - q[0]


def table(rows: list[Row], s: Setting) -> str:
    lines = [
        f"hidden {s.hidden}, depth {s.depth}, heads {s.heads}, latent {s.batch}x{s.channels}x{s.frames}x{s.size}x"
        f"{s.size} ({s.frames}x{s.tokens_per_frame} tokens), text {s.text_tokens}x{s.text_dim}, fp32, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}",
        "",
        "| model | params (M) | GFLOP/step | step median (s) | IQR (s) | GFLOP/s | peak step memory (MiB) | "
        "weights+AdamW (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.name} | {r.params_m:.2f} | {r.gflops:.1f} | {r.median_s:.3f} | {r.iqr_s:.3f} | "
                     f"{r.gflops_per_s:.1f} | {r.peak_mib:.0f} | {r.state_mib:.0f} |")
    if len(rows) == 2:
        a, b = rows
        lines += ["", f"ours / peer: step time {a.median_s / b.median_s:.2f}x, time per FLOP "
                      f"{(a.median_s / a.gflops) / (b.median_s / b.gflops):.2f}x, peak memory "
                      f"{a.peak_mib / b.peak_mib:.2f}x, FLOPs {a.gflops / b.gflops:.2f}x, params "
                      f"{a.params_m / b.params_m:.2f}x"]
    return "\n".join(lines)


def block_calls(ours_model: STDiT, latte_model: torch.nn.Module, s: Setting) -> dict[str, Callable[[], None]]:
    """Forward + backward of the first spatial and temporal block of each model, on the inputs it sees in the model."""
    gen = torch.Generator().manual_seed(1)
    b, t, n, d, L = s.batch, s.frames, s.tokens_per_frame, s.hidden, s.text_tokens
    x = torch.randn(b, t, n, d, generator=gen, requires_grad=True)  # (B, T, S, D)
    y = torch.randn(b, L, d, generator=gen)
    t_mod = torch.randn(b, 1, 6 * d, generator=gen)
    x_spatial = x.detach().reshape(b * t, n, d).requires_grad_()  # (B·T, S, D), Latte's spatial layout
    x_temporal = x.detach().transpose(1, 2).reshape(b * n, t, d).requires_grad_()  # (B·S, T, D)
    # Latte repeats the text and the adaLN vector per frame (spatial) or per token position (temporal).
    y_frames = y.repeat_interleave(t, 0)  # (B·T, L, D)
    t_frames, t_tokens = t_mod[:, 0].repeat_interleave(t, 0), t_mod[:, 0].repeat_interleave(n, 0)  # (B·T | B·S, 6D)
    calls = {
        "ours spatial": lambda: ours_model.spatial_blocks[0](x, y, t_mod, None),
        "Latte spatial": lambda: latte_model.transformer_blocks[0](x_spatial, None, y_frames, None, t_frames),
        "ours temporal": lambda: ours_model.temporal_blocks[0](x, y, t_mod, None),
        "Latte temporal": lambda: latte_model.temporal_transformer_blocks[0](x_temporal, None, None, None, t_tokens),
    }
    return {name: (lambda fn=fn: fn().square().mean().backward()) for name, fn in calls.items()}


def print_profile(subject: Subject, step: Callable[[], None], top: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(f"\n{subject.name}: top {top} ops by self CPU time in one step")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=Setting.batch)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--blocks", action="store_true", help="also time one spatial and one temporal block each")
    parser.add_argument("--profile", action="store_true", help="print the top ops of one step of each model")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = Setting(batch=args.batch)
    inp = make_inputs(s)
    subjects = [ours(s, inp), latte(s, inp)]
    opts = {sub.name: torch.optim.AdamW(sub.model.parameters(), lr=s.lr) for sub in subjects}
    steps = {sub.name: train_step(sub, opts[sub.name], inp["target"]) for sub in subjects}

    flops = {sub.name: counted_flops(sub, inp["target"]) for sub in subjects}
    analytic = stdit_step_flops(subjects[0].model, s.batch, s.frames, s.tokens_per_frame, s.text_tokens).total
    times = timed_interleaved(steps, args.warmup, args.steps)
    rows = []
    for sub in subjects:
        peak = peak_cpu_tensor_bytes(steps[sub.name])  # a steady-state step: AdamW moments already exist
        rows.append(Row(sub.name, sum(p.numel() for p in sub.model.parameters()) / 1e6, flops[sub.name] / 1e9,
                        statistics.median(times[sub.name]), iqr(times[sub.name]), peak / MIB,
                        state_bytes(sub.model, opts[sub.name]) / MIB))
    load = os.getloadavg()[0]
    print(f"host {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"{args.warmup} warm-up + {args.steps} timed steps per model, interleaved")
    print(table(rows, s))
    print(f"\nSTDiT FLOPs: counted {flops[subjects[0].name] / 1e9:.2f} G, analytic (bench/_flops.py) "
          f"{analytic / 1e9:.2f} G")
    if args.blocks:
        block_times = timed_interleaved(block_calls(subjects[0].model, subjects[1].model, s), args.warmup, args.steps)
        print("\n| block forward + backward | median (ms) | IQR (ms) |\n|---|---|---|")
        for name, ts in block_times.items():
            print(f"| {name} | {statistics.median(ts) * 1e3:.1f} | {iqr(ts) * 1e3:.1f} |")
    if args.profile:
        for sub in subjects:
            print_profile(sub, steps[sub.name], top=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
