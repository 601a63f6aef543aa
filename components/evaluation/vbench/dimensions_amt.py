"""motion_smoothness: how well AMT-S predicts the odd frames from the even ones (VBench motion_smoothness.py).

Per video: all frames decoded; the even-indexed frames (0, 2, 4, …) as float /255 tensors, replicate-padded,
centred, to multiples of 16 (AMT's InputPadder); AMT-S interpolates each consecutive even pair at t = 0.5; the
prediction, unpadded, becomes uint8 as VBench's tensor2img does it (x 255, clip to [0, 255], truncated, not
rounded) and is compared with the real odd frame between the pair: the mean over odd frames of the mean
|real - predicted| over pixels and channels (cv2.absdiff); the score is (255 - that) / 255. The dimension is
the mean over videos. VBench shrinks the frames on CUDA when its VRAM rule asks for it (only frames far above
1080p on a large GPU; never on the CPU); the same rule runs here and each video records the scale it used.
Frames smaller than AMT's coarsest correlation level (128 px) are padded further and cropped back (official
AMT divides by zero there).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from components.evaluation.vbench.frames import Video, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult
from models.raft import pad_to_multiple, unpad

EMBT = 0.5  # the odd frame sits halfway between its even neighbours
PAD_MULTIPLE = 16
# VBench MotionSmoothness.initialization: the CUDA memory rule; on the CPU it never resizes
CUDA_ANCHOR_RESOLUTION = 1024 * 512
CUDA_ANCHOR_MEMORY = 1500 * 1024**2
CUDA_ANCHOR_MEMORY_BIAS = 2500 * 1024**2
CPU_ANCHOR_RESOLUTION = 8192 * 8192


def vbench_scale(height: int, width: int, vram: int | None) -> tuple[float, int]:
    """VBench's (scale factor, pad multiple) for a frame size; `vram` is the GPU's total bytes, None on the CPU."""
    if vram is None:
        scale = CPU_ANCHOR_RESOLUTION / (height * width)  # its CPU memory terms are sqrt((1 - 0) / 1) = 1
    else:
        if vram <= CUDA_ANCHOR_MEMORY_BIAS:
            raise ValueError(f"motion_smoothness: VBench's resize rule needs more than "
                             f"{CUDA_ANCHOR_MEMORY_BIAS / 1024**2:.0f} MiB of GPU memory, the GPU has "
                             f"{vram / 1024**2:.0f} MiB")
        scale = CUDA_ANCHOR_RESOLUTION / (height * width) * np.sqrt((vram - CUDA_ANCHOR_MEMORY_BIAS) /
                                                                    CUDA_ANCHOR_MEMORY)
    scale = 1 if scale > 1 else scale
    scale = 1 / np.floor(1 / np.sqrt(scale) * PAD_MULTIPLE) * PAD_MULTIPLE  # a whole number of 1/16 steps
    return float(scale), int(PAD_MULTIPLE / scale)


def device_memory(device: str | torch.device) -> int | None:
    """Total bytes of a CUDA device (VBench's vram_avail), None for any other device."""
    device = torch.device(device)
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None


def to_uint8(pred: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] → (N, H, W, 3) uint8 the way AMT's tensor2img does it: x 255, clip, truncate."""
    return (pred * 255.0).detach().permute(0, 2, 3, 1).cpu().numpy().clip(0, 255).astype(np.uint8)


@torch.no_grad()
def interpolate_odd(amt: torch.nn.Module, frames: np.ndarray, batch: int = 4, vram: int | None = None,
                    source: str = "video") -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 → AMT's predictions of frames 1, 3, … from their even neighbours, and the scale used."""
    even = frames[::2]
    if len(even) < 2:
        raise ValueError(f"{source}: motion_smoothness needs >= 3 frames (two even ones), got {len(frames)}")
    device = next(amt.parameters()).device
    # (T', 3, H, W) float32 in [0, 1], contiguous like VBench's padded frames: conv kernels differ per memory layout
    x = (torch.from_numpy(np.ascontiguousarray(even)).permute(0, 3, 1, 2) / 255.0).contiguous()
    scale, multiple = vbench_scale(x.shape[2], x.shape[3], vram)
    x, pad = pad_to_multiple(x, multiple, minimum=amt.min_size)
    out = []
    for start in range(0, len(even) - 1, batch):
        stop = min(start + batch, len(even) - 1)
        pred = amt(x[start:stop].to(device), x[start + 1 : stop + 1].to(device), EMBT, scale_factor=scale)
        out.append(to_uint8(unpad(pred, pad)))
    return np.concatenate(out), scale


def smoothness_score(frames: np.ndarray, predicted: np.ndarray) -> float:
    """(255 - mean over predicted odd frames of their mean absolute difference to the real ones) / 255."""
    real = frames[1::2]
    diffs = [np.mean(cv2.absdiff(real[i], predicted[i])) for i in range(len(predicted))]
    return float((255.0 - np.mean(np.array(diffs))) / 255.0)


def motion_smoothness(amt: torch.nn.Module, videos: list[VideoItem], device: str = "cpu", batch: int = 4,
                      reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean motion-smoothness score over the videos."""
    if not videos:
        raise ValueError("motion_smoothness: no videos to score")
    amt = amt.to(device).eval()
    vram = device_memory(device)
    per_video = []
    for item in videos:
        frames = reader(item.path).frames
        predicted, scale = interpolate_odd(amt, frames, batch, vram, item.path)
        per_video.append({"video": item.path, "prompt": item.prompt, "score": smoothness_score(frames, predicted),
                          "frames": len(frames), "interpolated": len(predicted), "scale": scale})
    value = float(np.mean([r["score"] for r in per_video]))
    return DimensionResult("motion_smoothness", value, per_video,
                           {"interpolator": f"AMT-S, t = {EMBT}, one pass", "frames": "even frames -> odd frames",
                            "padding": f"replicate, centred, to multiples of {PAD_MULTIPLE}",
                            "rounding": "prediction x 255 clipped and truncated to uint8",
                            "formula": "(255 - mean |real odd - interpolated|) / 255",
                            "aggregate": "mean over videos"})
