"""STDiT training throughput (tokens/s) and MFU on one CUDA GPU in bf16, by hand: XL/2 at 240p x 51 frames.

    python bench/stdit_gpu.py                                  # XL/2, batch 2, bf16 autocast, eager
    python bench/stdit_gpu.py --batch 4 --grad-checkpointing --compile
    python bench/stdit_gpu.py --bf16-weights                   # weights cast to bf16, as DeepSpeed's bf16 mode does
    python bench/stdit_gpu.py --compile --profile              # also the CUDA kernels that take a step's time
    python bench/stdit_gpu.py --attention                      # only the three attention calls, per SDPA backend

A 240x426 clip of 51 frames is a 4x15x30x53 latent through the 4x8x8 video VAE (5 latent frames per 17-frame
chunk; 426 px → 53 latents, Open-Sora pads), i.e. 15 x (15x27) = 6075 tokens after the 1x2x2 patches; text is
300 T5-XXL tokens (4096 channels), unpadded. Model FLOPs are analytic (bench/_flops.py: 6·weights·tokens plus
the spatial, temporal and cross attention matmuls); activation recomputation is not counted, so MFU with
--grad-checkpointing is lower by construction. Step time is measured with CUDA events. Not part of `make test`.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout

from bench._flops import stdit_step_flops  # noqa: E402
from components.memory import peak_cuda_bytes  # noqa: E402
from models.stdit import STDIT_SIZES, STDiTConfig, STDiT_models, stdit_config  # noqa: E402

GIB = 1 << 30
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name substring, most specific first.
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4), ("H800", 989.4), ("A100", 312.0),
]
TEXT_CHANNELS = 4096  # T5-v1.1-XXL
TEXT_TOKENS = 300


def peak_tflops(device_name: str) -> float | None:
    """The bf16 dense peak of a known GPU, or None."""
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in device_name), None)


def make_inputs(batch: int, latent: tuple[int, int, int, int], device: torch.device,
                dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Latents and text features in the weights' dtype; timesteps, fps and the regression target in fp32."""
    gen = torch.Generator(device=device).manual_seed(0)
    c, t, h, w = latent
    return {
        "x": torch.randn(batch, c, t, h, w, generator=gen, device=device).to(dtype),
        "t": torch.rand(batch, generator=gen, device=device) * 1000,
        "y": torch.randn(batch, TEXT_TOKENS, TEXT_CHANNELS, generator=gen, device=device).to(dtype),
        "fps": torch.full((batch,), 24.0, device=device),
        "target": torch.randn(batch, 2 * c, t, h, w, generator=gen, device=device),
    }


def make_step(model: torch.nn.Module, opt: torch.optim.Optimizer, inp: dict[str, torch.Tensor]) -> Callable[[], None]:
    """Forward under bf16 autocast + MSE + backward + AdamW: the DDP engine's training step."""

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(inp["x"], inp["t"], inp["y"], fps=inp["fps"])
        F.mse_loss(pred.float(), inp["target"]).backward()
        opt.step()

    return step


def cuda_step_seconds(step: Callable[[], None], warmup: int, repeats: int) -> list[float]:
    """Seconds per step from CUDA events around each step, after `warmup` untimed steps."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return times


def print_kernel_profile(step: Callable[[], None], steps: int = 3, top: int = 25) -> None:
    """CUDA kernel time per step over `steps` profiled steps: the total and the `top` kernels by time."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    per_kernel: dict[str, float] = {}
    for event in prof.events():
        if event.device_type.name == "CUDA":
            per_kernel[event.name] = per_kernel.get(event.name, 0.0) + event.device_time_total / 1000 / steps
    total = sum(per_kernel.values())
    print(f"\nCUDA kernel time per step {total:.1f} ms; top {top} kernels (ms per step, share):")
    for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {ms:8.2f}  {ms / total:6.1%}  {name[:120]}")


def attention_table(cfg: STDiTConfig, batch: int, frames: int, tokens_per_frame: int) -> None:
    """Forward + backward ms of STDiT's spatial, temporal and cross-attention calls under each SDPA backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, head_dim, depth = cfg.num_heads, cfg.hidden_size // cfg.num_heads, cfg.depth
    calls = {  # name: (batch of the call, queries, keys, calls per step)
        "spatial": (batch * frames, tokens_per_frame, tokens_per_frame, depth),
        "temporal": (batch * tokens_per_frame, frames, frames, depth),
        "cross": (batch, frames * tokens_per_frame, TEXT_TOKENS, 2 * depth),
    }
    backends = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    print(f"| call | shape (B x heads, queries x keys) | {' | '.join(b.name for b in backends)} | per step (best) |")
    print("|---|---|" + "---|" * (len(backends) + 1))
    for name, (b, nq, nk, per_step) in calls.items():
        q = torch.randn(b, heads, nq, head_dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(b, heads, nk, head_dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn_like(k, requires_grad=True)
        cells = []
        for backend in backends:
            def call(backend=backend) -> None:
                with sdpa_kernel(backend):
                    out = F.scaled_dot_product_attention(q, k, v)
                out.backward(torch.ones_like(out))
            try:
                cells.append(statistics.median(cuda_step_seconds(call, 3, 20)) * 1000)
            except RuntimeError:  # a backend that does not take this shape or device
                cells.append(float("nan"))
        best = min((c for c in cells if not math.isnan(c)), default=float("nan"))
        shown = " | ".join("n/a" if math.isnan(c) else f"{c:.3f}" for c in cells)
        print(f"| {name} | {b}x{heads}, {nq} x {nk} | {shown} | {best * per_step:.0f} ms |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(STDIT_SIZES), default="XL/2")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--latent", type=int, nargs=4, default=[4, 15, 30, 53], metavar=("C", "T", "H", "W"))
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--bf16-weights", action="store_true", help="cast weights to bf16 (DeepSpeed bf16 style)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak, for unlisted GPUs")
    parser.add_argument("--profile", action="store_true", help="also print the CUDA kernels of 3 profiled steps")
    parser.add_argument("--attention", action="store_true", help="only time the attention calls per SDPA backend")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/stdit_gpu.py: CUDA is not available on this machine; it measures GPU MFU only. "
              "Run bench/stdit.py for the CPU comparison.", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = args.peak_tflops or peak_tflops(name)
    if peak is None:
        print(f"bench/stdit_gpu.py: no known bf16 peak for {name!r}; pass --peak-tflops", file=sys.stderr)
        return 2

    c, t, h, w = args.latent
    cfg = stdit_config(args.size)
    pt, ph, pw = cfg.patch_size
    frames, tokens_per_frame = -(-t // pt), -(-h // ph) * -(-w // pw)  # the patch embedder pads each axis up
    if args.attention:
        print(f"{name}, torch {torch.__version__}; STDiT {args.size} attention, bf16, forward + backward ms per call")
        attention_table(cfg, args.batch, frames, tokens_per_frame)
        return 0
    model = STDiT_models[args.size](in_channels=c, caption_channels=TEXT_CHANNELS, model_max_length=TEXT_TOKENS,
                                    grad_checkpointing=args.grad_checkpointing)
    dtype = torch.bfloat16 if args.bf16_weights else torch.float32
    model = model.to(device, dtype).train()
    flops = stdit_step_flops(model, args.batch, frames, tokens_per_frame, TEXT_TOKENS)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    runnable = torch.compile(model) if args.compile else model
    step = make_step(runnable, opt, make_inputs(args.batch, (c, t, h, w), device, dtype))

    times = cuda_step_seconds(step, args.warmup, args.steps)
    step_peak = peak_cuda_bytes(step, device)
    median = statistics.median(times)
    q = statistics.quantiles(times, n=4, method="inclusive")
    tokens = args.batch * frames * tokens_per_frame
    mfu = flops.total / median / (peak * 1e12)
    print(f"{name}, torch {torch.__version__}, peak bf16 {peak:.1f} TFLOP/s")
    print(f"STDiT {args.size}: {params / 1e6:.0f}M params, latent {args.batch}x{c}x{t}x{h}x{w} = {frames} frames x "
          f"{tokens_per_frame} tokens, text {TEXT_TOKENS}x{TEXT_CHANNELS}, weights {str(dtype)[6:]}, bf16 autocast, "
          f"grad checkpointing {args.grad_checkpointing}, compile {args.compile}")
    print(f"model TFLOP/step {flops.total / 1e12:.1f} (dense {flops.dense / 1e12:.1f}, spatial attn "
          f"{flops.spatial_attn / 1e12:.1f}, temporal attn {flops.temporal_attn / 1e12:.2f}, cross attn "
          f"{flops.cross_attn / 1e12:.1f})")
    print("\n| step median (s) | IQR (s) | tokens/s | TFLOP/s | MFU | peak step memory (GiB) | max allocated (GiB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {median:.3f} | {q[2] - q[0]:.3f} | {tokens / median:,.0f} | {flops.total / median / 1e12:.0f} | "
          f"{mfu:.1%} | {step_peak / GIB:.1f} | {torch.cuda.max_memory_allocated(device) / GIB:.1f} |")
    if args.profile:
        print_kernel_profile(step)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
