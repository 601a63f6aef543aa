"""subject_consistency (DINO ViT-B/16) and background_consistency (CLIP ViT-B/32): feature stability over time.

For every frame t >= 1 of a video, with L2-normalised features f: ½[max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))].
A video's score is the mean over its t; the dimension is the mean over all pairs of all videos (so longer videos
weigh more), as VBench's subject_consistency.py / background_consistency.py compute it. All frames are used.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from components.evaluation.vbench.frames import Video, clip_tensor, dino_tensor, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult


def pair_similarities(features: torch.Tensor) -> torch.Tensor:
    """(T, D) features → (T-1,) scores ½[max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))] for t = 1..T-1."""
    f = F.normalize(features.float(), dim=-1)
    previous = (f[:-1] * f[1:]).sum(-1).clamp(min=0)
    first = (f[:1] * f[1:]).sum(-1).clamp(min=0)
    return (previous + first) / 2


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int, device: str) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])


def consistency(name: str, videos: list[VideoItem], embed: Callable[[Video], torch.Tensor],
                settings: dict, reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """The shared formula over `embed(video)` → (T, D) features of every frame."""
    if not videos:
        raise ValueError(f"{name}: no videos to score")
    per_video, total, pairs = [], 0.0, 0
    for item in videos:
        video = reader(item.path)
        if len(video.frames) < 2:
            raise ValueError(f"{item.path}: {name} needs >= 2 frames, got {len(video.frames)}")
        sims = pair_similarities(embed(video))
        total, pairs = total + float(sims.sum()), pairs + len(sims)
        per_video.append({"video": item.path, "prompt": item.prompt, "score": float(sims.mean())})
    return DimensionResult(name, total / pairs, per_video,
                           {**settings, "frames": "all frames", "aggregate": "mean over all frame pairs of all videos",
                            "formula": "1/2[max(0,cos(f_t-1,f_t)) + max(0,cos(f_0,f_t))], t >= 1"})


def subject_consistency(dino: torch.nn.Module, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
                        reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """DINO CLS features of every frame (short side 224 bilinear, no crop, ImageNet mean/std)."""
    dino = dino.to(device).eval()
    return consistency("subject_consistency", videos, lambda v: _batched(dino, dino_tensor(v.frames), batch, device),
                       {"features": "DINO ViT-B/16 CLS, L2-normalised",
                        "preprocess": "short side -> 224 bilinear (antialias off), no crop, ImageNet mean/std"}, reader)


def clip_image_embeds(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Projected CLIP image embeddings (transformers CLIPModel), (B, 3, 224, 224) → (B, D)."""
    out = model.get_image_features(pixel_values=pixels)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def background_consistency(clip: torch.nn.Module, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
                           reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """CLIP ViT-B/32 image embeddings of every frame (bicubic short side 224, centre crop, CLIP mean/std)."""
    clip = clip.to(device).eval()
    return consistency("background_consistency", videos,
                       lambda v: _batched(lambda x: clip_image_embeds(clip, x), clip_tensor(v.frames), batch, device),
                       {"features": "CLIP ViT-B/32 image embedding, L2-normalised",
                        "preprocess": "short side -> 224 bicubic (antialias off), centre crop 224, CLIP mean/std"},
                       reader)
