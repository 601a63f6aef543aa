"""RAFT-based VBench rules: dynamic_degree, and the static filter the flickering protocol applies first.

Flow: RAFT-things, 20 iterations, on frames replicate-padded to multiples of 8 (RAFT's 'sintel' InputPadder);
the magnitude statistic is taken over that padded flow, as VBench does. Frames smaller than RAFT's coarsest
correlation level are padded further and that extra padding is cropped off again (official RAFT fails there).

dynamic_degree (dynamic_degree.py)  frames every max(1, round(fps/8)); per consecutive pair the mean of the top
    5% flow magnitudes; a video is dynamic when >= round(4 n/16) pairs exceed 6 min(H, W)/256 (n = frames
    kept); the score is the fraction of dynamic videos. (VBench later multiplies the threshold by
    max(1, 8/fps) for low-fps videos; EVAL.md does not: `fps_factor` turns it on.)
static filter (cli/static_filter.py)  all frames; pairs (t, t+1) plus (first, last) and (last, first); top 2%
    mean; static when at most round(2 n/16) consecutive pairs exceed 3 min(H, W)/256 and neither end-to-end
    pair exceeds that threshold * count * 2; per prompt the first 5 static videos (sorted file names) are kept.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from components.evaluation.vbench.frames import Video, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult
from models.raft import pad_to_multiple, unpad

REFERENCE_SIDE = 256.0  # thresholds are in pixels per 256 px of the short side
REFERENCE_FRAMES = 16.0  # counts are per 16 frames


class DynamicConfig(BaseModel):
    """VBench dynamic_degree constants."""

    model_config = ConfigDict(extra="forbid")
    iters: int = Field(20, ge=1)
    target_fps: float = Field(8.0, gt=0)  # keep every round(fps / target_fps)-th frame
    top_fraction: float = Field(0.05, gt=0, le=1)
    threshold: float = Field(6.0, gt=0)  # pixels per 256 px of the short side
    count: float = Field(4.0, ge=0)  # moving pairs needed per 16 frames
    fps_factor: bool = False  # VBench's later low-fps correction max(1, 8/fps) of the threshold
    batch: int = Field(4, ge=1)  # frame pairs per RAFT call


class StaticConfig(BaseModel):
    """VBench static_filter constants (temporal_flickering's protocol)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    iters: int = Field(20, ge=1)
    top_fraction: float = Field(0.02, gt=0, le=1)
    threshold: float = Field(3.0, gt=0)
    count: float = Field(2.0, ge=0)
    keep: int = Field(5, ge=1)  # static videos kept per prompt
    candidates: int = Field(25, ge=1)  # videos sampled per flickering prompt before filtering
    batch: int = Field(4, ge=1)


@torch.no_grad()
def flow_pairs(raft: torch.nn.Module, frames: np.ndarray, pairs: list[tuple[int, int]], iters: int,
               batch: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames → flow (P, 2, H8, W8) of each pair at RAFT's padded size (multiples of 8)."""
    device = next(raft.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W) in [0, 255]
    x, _ = pad_to_multiple(x, 8)
    out = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        a, pad = pad_to_multiple(x[[i for i, _ in chunk]], 8, minimum=raft.min_size)
        b, _ = pad_to_multiple(x[[j for _, j in chunk]], 8, minimum=raft.min_size)
        out.append(unpad(raft(a.to(device), b.to(device), iters=iters)[-1], pad).float().cpu())
    return torch.cat(out)


def top_magnitude(flow: torch.Tensor, fraction: float) -> torch.Tensor:
    """(P, 2, H, W) flow → (P,) mean of the int(H W fraction) largest magnitudes."""
    p, _, h, w = flow.shape
    k = int(h * w * fraction)
    if k < 1:
        raise ValueError(f"a {h}x{w} flow field has no top {fraction:.0%} pixels (int(H W fraction) = 0)")
    magnitude = flow.pow(2).sum(1).sqrt().reshape(p, -1)
    return magnitude.topk(k, dim=1).values.mean(1)


def is_dynamic(scores: list[float], frames: int, short_side: int, fps: float, cfg: DynamicConfig) -> bool:
    """VBench check_move: at least round(count n / 16) pair scores above the threshold."""
    factor = max(1.0, cfg.target_fps / fps) if cfg.fps_factor else 1.0
    threshold = factor * cfg.threshold * short_side / REFERENCE_SIDE
    needed = round(cfg.count * frames / REFERENCE_FRAMES)
    return len(scores) > 0 and sum(s > threshold for s in scores) >= needed


def dynamic_degree(raft: torch.nn.Module, videos: list[VideoItem], cfg: DynamicConfig = DynamicConfig(),
                   reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Fraction of videos judged dynamic."""
    if not videos:
        raise ValueError("dynamic_degree: no videos to score")
    per_video = []
    for item in videos:
        video = reader(item.path)
        step = max(1, round(video.fps / cfg.target_fps))
        frames = video.frames[::step]
        pairs = [(t, t + 1) for t in range(len(frames) - 1)]
        scores = top_magnitude(flow_pairs(raft, frames, pairs, cfg.iters, cfg.batch), cfg.top_fraction).tolist() \
            if pairs else []
        moving = is_dynamic(scores, len(frames), min(frames.shape[1:3]), video.fps, cfg)
        per_video.append({"video": item.path, "prompt": item.prompt, "score": float(moving), "fps": video.fps,
                          "frame_step": step, "pair_scores": scores})
    value = sum(r["score"] for r in per_video) / len(per_video)
    return DimensionResult("dynamic_degree", value, per_video,
                           {"flow": f"RAFT-things, {cfg.iters} iterations", "frames": "every max(1, round(fps/8))",
                            "rule": f"dynamic if >= round({cfg.count:g} n/16) pairs have top-{cfg.top_fraction:.0%} "
                                    f"flow > {cfg.threshold:g} min(H,W)/256" +
                                    (" x max(1, 8/fps)" if cfg.fps_factor else ""),
                            "aggregate": "fraction of dynamic videos"})


def is_static(raft: torch.nn.Module, frames: np.ndarray, cfg: StaticConfig = StaticConfig()) -> bool:
    """VBench check_static on all frames of a video."""
    n = len(frames)
    if n < 2:
        return True  # nothing moves in a single frame
    pairs = [(t, t + 1) for t in range(n - 1)] + [(0, n - 1), (n - 1, 0)]
    scores = top_magnitude(flow_pairs(raft, frames, pairs, cfg.iters, cfg.batch), cfg.top_fraction).tolist()
    return static_verdict(scores, n, min(frames.shape[1:3]), cfg)


def static_verdict(scores: list[float], frames: int, short_side: int, cfg: StaticConfig) -> bool:
    """VBench check_static: scores of the consecutive pairs, then (first, last) and (last, first)."""
    threshold = cfg.threshold * short_side / REFERENCE_SIDE
    allowed = round(cfg.count * frames / REFERENCE_FRAMES)
    if sum(s > threshold for s in scores[:-2]) > allowed:
        return False
    return all(s <= threshold * allowed * 2 for s in scores[-2:])


def static_filter(raft: torch.nn.Module, videos: list[VideoItem], cfg: StaticConfig = StaticConfig(),
                  reader: Callable[[str], Video] = read_video) -> tuple[list[VideoItem], dict[str, bool]]:
    """Per prompt, the first cfg.keep static videos in sorted file-name order; and every video's verdict."""
    kept: dict[str, list[VideoItem]] = {}
    verdicts: dict[str, bool] = {}
    for item in sorted(videos, key=lambda v: v.path):
        if len(kept.setdefault(item.prompt, [])) >= cfg.keep:
            continue  # VBench stops testing a prompt once it has enough
        verdicts[item.path] = is_static(raft, reader(item.path).frames, cfg)
        if verdicts[item.path]:
            kept[item.prompt].append(item)
    return [v for items in kept.values() for v in items], verdicts
