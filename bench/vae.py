"""Video VAE benchmark, run by hand: our full-size VAE vs diffusers' AutoencoderKLCogVideoX (both 4x8x8).

    python bench/vae.py                # CPU: 1x3x17x128x128, float32, encode/decode seconds and peak tensor memory
    python bench/vae.py --gpu          # CUDA: 1x3x33x512x512, bf16, videos/s and peak allocated memory

Both models are randomly initialised (the SDXL 2D VAE is not needed: only shapes and arithmetic matter for
speed and memory); CogVideoX uses its default config (16 latent channels). The table prints as markdown so a
row can be pasted into bench/RESULTS.md. Not part of `make test`.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout

from components.memory import peak_bytes  # noqa: E402
from models.vae import VAE_models  # noqa: E402

MIB = 1 << 20


@dataclass
class Shape:
    """Input clip and numeric type of one benchmark setting."""

    frames: int
    size: int
    dtype: torch.dtype

    def __str__(self) -> str:
        return f"1x3x{self.frames}x{self.size}x{self.size} {str(self.dtype).removeprefix('torch.')}"


CPU = Shape(17, 128, torch.float32)
GPU = Shape(33, 512, torch.bfloat16)


@dataclass
class Row:
    name: str
    params_m: float
    latent: tuple[int, ...]
    encode_s: float
    decode_s: float
    encode_mib: float
    decode_mib: float

    @property
    def videos_per_s(self) -> float:
        return 1.0 / (self.encode_s + self.decode_s)


class Subject:
    """One VAE behind a common encode(x) -> z, decode(z) -> video interface."""

    def __init__(self, name: str, model: torch.nn.Module, encode: Callable, decode: Callable):
        self.name, self.model, self.encode, self.decode = name, model, encode, decode


def ours() -> Subject:
    vae = VAE_models["full"]().eval()
    return Subject("ReelForge VideoVAE full (SDXL-size 2D + temporal, 4ch)", vae,
                   lambda x: vae.encode(x), lambda z, t: vae.decode(z, t))


def cogvideox() -> Subject:
    from diffusers import AutoencoderKLCogVideoX

    vae = AutoencoderKLCogVideoX().eval()
    return Subject("diffusers AutoencoderKLCogVideoX default (16ch)", vae,
                   lambda x: vae.encode(x).latent_dist.mode(), lambda z, t: vae.decode(z).sample)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int) -> tuple[torch.Tensor, float]:
    """Result of fn and its best wall time over `repeats` after `warmup` calls."""
    out = None
    for _ in range(warmup):
        out = fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return out, best


@torch.no_grad()
def bench(subject: Subject, shape: Shape, device: torch.device, warmup: int, repeats: int) -> Row:
    # a dtype cast only when needed: diffusers warns on any .to(dtype) of CogVideoX, even to float32
    model = subject.model.to(device) if shape.dtype == torch.float32 else subject.model.to(device, shape.dtype)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, shape.frames, shape.size, shape.size, generator=gen) * 2 - 1).to(device, shape.dtype)
    z, enc_s = timed(lambda: subject.encode(x), device, warmup, repeats)
    rec, dec_s = timed(lambda: subject.decode(z, shape.frames), device, warmup, repeats)
    if tuple(rec.shape) != tuple(x.shape):
        raise RuntimeError(f"{subject.name}: decoded {tuple(rec.shape)} from input {tuple(x.shape)}")
    enc_mem = peak_bytes(lambda: subject.encode(x), device)
    dec_mem = peak_bytes(lambda: subject.decode(z, shape.frames), device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return Row(subject.name, params, tuple(z.shape), enc_s, dec_s, enc_mem / MIB, dec_mem / MIB)


def table(rows: list[Row], shape: Shape, device: torch.device) -> str:
    mem = "peak allocated" if device.type == "cuda" else "peak tensor memory"
    lines = [f"input {shape}, device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}",
             "", f"| model | params (M) | latent | encode (s) | decode (s) | videos/s | encode {mem} (MiB) | "
                 f"decode {mem} (MiB) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.params_m:.1f} | {'x'.join(map(str, r.latent))} | {r.encode_s:.2f} | "
                     f"{r.decode_s:.2f} | {r.videos_per_s:.3f} | {r.encode_mib:.0f} | {r.decode_mib:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="CUDA, 1x3x33x512x512 in bf16")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--only", choices=["ours", "cogvideox"], default=None)
    args = parser.parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        print("bench/vae.py --gpu: CUDA is not available on this machine; run without --gpu for the CPU table.",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device, shape = (torch.device("cuda"), GPU) if args.gpu else (torch.device("cpu"), CPU)
    makers = {"ours": ours, "cogvideox": cogvideox}
    rows = []
    for key, make in makers.items():
        if args.only and key != args.only:
            continue
        torch.manual_seed(0)
        subject = make()
        rows.append(bench(subject, shape, device, args.warmup, args.repeats))
        del subject
        if device.type == "cuda":
            torch.cuda.empty_cache()
    host = f"{platform.machine()}, {os.cpu_count()} CPUs" + (f", {torch.cuda.get_device_name()}" if args.gpu else "")
    print(f"host {host}")
    print(table(rows, shape, device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
