"""temporal_style and overall_consistency: ViCLIP video-text cosine (VBench temporal_style.py, overall_consistency.py).

Per video: 8 frames (middle of 8 segments), CLIP preprocessing on uint8 frames (bicubic short side 224, clamped
and rounded, centre crop, CLIP mean/std), ViCLIP video embedding; the prompt through ViCLIP's text tower (CLIP BPE,
32 tokens: start, text, end-of-text, truncated with end-of-text kept last, zero padded). Score = cosine of the
L2-normalised embeddings; the dimension is the mean over videos.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from components.evaluation.vbench.frames import Video, clip_tensor, middle_indices, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult

FRAMES = 8
END_OF_TEXT = "<|endoftext|>"


def viclip_tokens(tokenizer: Any, text: str, context: int) -> torch.Tensor:
    """(1, context) ids as ViCLIP's tokenize(truncate=True): [sot] + BPE(text) + [eot], cut to context, zeros."""
    ids = list(tokenizer(text)["input_ids"])  # the CLIP tokenizer adds start and end of text
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    if ids[-1] != eot:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} does not end {text!r} with {END_OF_TEXT}")
    if len(ids) > context:
        ids = ids[:context]
        ids[-1] = eot
    out = torch.zeros(1, context, dtype=torch.long)
    out[0, : len(ids)] = torch.tensor(ids)
    return out


@torch.no_grad()
def video_text_similarity(name: str, viclip: torch.nn.Module, tokenizer: Any, videos: list[VideoItem],
                          device: str = "cpu", reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean over videos of cos(ViCLIP(video), ViCLIP(prompt))."""
    if not videos:
        raise ValueError(f"{name}: no videos to score")
    viclip = viclip.to(device).eval()
    texts: dict[str, torch.Tensor] = {}
    per_video = []
    for item in videos:
        if item.prompt not in texts:
            tokens = viclip_tokens(tokenizer, item.prompt, viclip.cfg.context).to(device)
            texts[item.prompt] = F.normalize(viclip.encode_text(tokens).float(), dim=-1).cpu()
        frames = reader(item.path).frames
        pixels = clip_tensor(frames[middle_indices(FRAMES, len(frames))], uint8=True)  # (8, 3, 224, 224)
        video = F.normalize(viclip.encode_vision(pixels[None].to(device)).float(), dim=-1).cpu()
        per_video.append({"video": item.path, "prompt": item.prompt, "score": float(video @ texts[item.prompt].T)})
    value = sum(r["score"] for r in per_video) / len(per_video)
    return DimensionResult(name, value, per_video,
                           {"model": "ViCLIP ViT-L/14 (InternVid-10M-FLT)", "frames": "8 (segment middles)",
                            "preprocess": "uint8 bicubic short side -> 224 (clamped, rounded), centre crop, CLIP "
                                          "mean/std", "text": "CLIP BPE, 32 tokens", "score": "cos(video, prompt)",
                            "aggregate": "mean over videos"})
