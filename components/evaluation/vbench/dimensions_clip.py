"""aesthetic_quality (CLIP ViT-L/14 + LAION head) and appearance_style (CLIP ViT-B/32 frame-text similarity).

aesthetic_quality  every frame: L2-normalised CLIP ViT-L/14 image embedding → LAION linear head, /10; a video's
                   score is the mean over its frames, the dimension the mean over videos (aesthetic_quality.py)
appearance_style   every frame (PIL bicubic resize, crop): CLIP ViT-B/32 logit_scale.exp() * cos(image, style
                   text) / 100, i.e. the cosine for OpenAI's logit scale of 100; a video's score is the mean over
                   its frames, the dimension the mean over all frames of all videos (appearance_style.py)
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from components.evaluation.vbench.dimensions_consistency import _batched, clip_image_embeds
from components.evaluation.vbench.frames import Video, clip_pil, clip_tensor, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult

AESTHETIC_SCALE = 10.0  # the LAION head rates 0-10; VBench reports /10
CLIP_CONTEXT = 77  # CLIP's text length


@torch.no_grad()
def aesthetic_quality(clip: torch.nn.Module, head: torch.nn.Module, videos: list[VideoItem], device: str = "cpu",
                      batch: int = 16, reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean over videos of the mean LAION score / 10 of their frames."""
    if not videos:
        raise ValueError("aesthetic_quality: no videos to score")
    clip, head = clip.to(device).eval(), head.to(device).eval()
    per_video = []
    for item in videos:
        pixels = clip_tensor(reader(item.path).frames)
        emb = F.normalize(_batched(lambda x: clip_image_embeds(clip, x), pixels, batch, device), dim=-1)
        scores = head(emb.to(device)).float().cpu().reshape(-1) / AESTHETIC_SCALE
        per_video.append({"video": item.path, "prompt": item.prompt, "score": float(scores.mean())})
    value = sum(r["score"] for r in per_video) / len(per_video)
    return DimensionResult("aesthetic_quality", value, per_video,
                           {"features": "CLIP ViT-L/14 image embedding, L2-normalised", "head": "LAION linear",
                            "scale": f"/{AESTHETIC_SCALE:g}", "frames": "all frames",
                            "preprocess": "short side -> 224 bicubic (antialias off), centre crop 224, CLIP mean/std",
                            "aggregate": "mean over frames, then over videos"})


@torch.no_grad()
def text_embedding(clip: Any, tokenizer: Any, text: str, device: str = "cpu") -> torch.Tensor:
    """L2-normalised projected CLIP text embedding (1, D)."""
    tokens = tokenizer([text], padding="max_length", max_length=CLIP_CONTEXT, truncation=True, return_tensors="pt")
    out = clip.get_text_features(input_ids=tokens["input_ids"].to(device))
    emb = out if isinstance(out, torch.Tensor) else out.pooler_output
    return F.normalize(emb.float(), dim=-1)


def style_text(item: VideoItem) -> str:
    """The style phrase of an appearance_style prompt (auxiliary_info.appearance_style.appearance_style)."""
    aux = item.aux
    text = aux.get("appearance_style") if isinstance(aux, dict) else aux
    if not isinstance(text, str) or not text:
        raise ValueError(f"{item.path}: prompt {item.prompt!r} has no auxiliary_info.appearance_style "
                         "(appearance_style needs the suite's style text)")
    return text


@torch.no_grad()
def appearance_style(clip: Any, tokenizer: Any, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
                     reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Frame-weighted mean of scaled CLIP similarity between each frame and its prompt's style text."""
    if not videos:
        raise ValueError("appearance_style: no videos to score")
    clip = clip.to(device).eval()
    scale = float(clip.logit_scale.exp()) / 100.0  # VBench divides the logit by 100, OpenAI's exp(logit_scale)
    texts: dict[str, torch.Tensor] = {}
    per_video, total, frames = [], 0.0, 0
    for item in videos:
        text = style_text(item)
        if text not in texts:
            texts[text] = text_embedding(clip, tokenizer, text, device).cpu()
        emb = F.normalize(_batched(lambda x: clip_image_embeds(clip, x), clip_pil(reader(item.path).frames),
                                   batch, device), dim=-1)
        sims = (emb @ texts[text].T).reshape(-1) * scale
        total, frames = total + float(sims.sum()), frames + len(sims)
        per_video.append({"video": item.path, "prompt": item.prompt, "style": text, "score": float(sims.mean()),
                          "frame_scores": [float(s) for s in sims]})
    return DimensionResult("appearance_style", total / frames, per_video,
                           {"features": "CLIP ViT-B/32 image and text embeddings", "frames": "all frames",
                            "score": "exp(logit_scale) * cos / 100",
                            "preprocess": "PIL bicubic short side -> 224, centre crop 224, CLIP mean/std",
                            "aggregate": "mean over all frames of all videos"})
