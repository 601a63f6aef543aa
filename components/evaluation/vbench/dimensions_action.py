"""human_action: does UMT ViT-L/16 (Kinetics-400) recognise the action the prompt names? (VBench human_action.py)

Per video: 16 frames (middle of 16 segments), short side to 256 with OpenCV bilinear (long side truncated),
centre crop 224, /255, ImageNet mean/std; sigmoid of the 400 logits; the top 5 classes whose probability, rounded
to 4 decimals, is >= 0.85; correct when one of their names equals the label of the file name: lower-cased, the
part before the first '-', after "person is ", before the first '_' ("A person is riding a bike-0.mp4" →
"riding a bike"). The dimension is the fraction of correct videos. Class names come from VBench's
kinetics_400_categories.txt ("name<TAB>index" per line).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from components.evaluation.vbench.frames import IMAGENET_MEAN, IMAGENET_STD, Video, middle_indices, read_video
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult

FRAMES, SHORT_SIDE, CROP = 16, 256, 224
TOP_K, THRESHOLD = 5, 0.85


def parse_labels(text: str, source: str) -> dict[int, str]:
    """{class index: lower-case name} of a kinetics_400_categories.txt."""
    labels = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{source}: line {n} is not 'name<TAB>index': {line!r:.80}")
        name, index = line.strip().split("\t")
        labels[int(index)] = name.lower()
    return labels


def action_label(path: str) -> str:
    """VBench's label of a video file name."""
    return Path(path).name.lower().split("-")[0].split("person is ")[-1].split("_")[0]


def umt_clip(frames: np.ndarray) -> torch.Tensor:
    """All frames (T, H, W, 3) uint8 → the classifier input (3, 16, 224, 224)."""
    picked = frames[middle_indices(FRAMES, len(frames))]
    h, w = picked.shape[1:3]
    if not ((w <= h and w == SHORT_SIDE) or (h <= w and h == SHORT_SIDE)):
        size = (SHORT_SIDE, int(SHORT_SIDE * h / w)) if w < h else (int(SHORT_SIDE * w / h), SHORT_SIDE)  # (W, H)
        picked = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in picked])
    h, w = picked.shape[1:3]
    top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
    picked = picked[:, top : top + CROP, left : left + CROP]
    x = torch.from_numpy(np.ascontiguousarray(picked)).permute(3, 0, 1, 2).float() / 255  # (3, T, 224, 224)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def human_action(umt: torch.nn.Module, labels: dict[int, str], videos: list[VideoItem], device: str = "cpu",
                 reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Fraction of videos whose action label is among UMT's confident top-5 classes."""
    if not videos:
        raise ValueError("human_action: no videos to score")
    umt = umt.to(device).eval()
    per_video = []
    for item in videos:
        probs = torch.sigmoid(umt(umt_clip(reader(item.path).frames)[None].to(device))).float().cpu()[0]
        top, index = probs.topk(min(TOP_K, len(probs)))
        confident = [labels.get(int(i), f"<class {int(i)}>") for p, i in zip(top.tolist(), index.tolist())
                     if round(p, 4) >= THRESHOLD]
        label = action_label(item.path)
        per_video.append({"video": item.path, "prompt": item.prompt, "label": label, "confident": confident,
                          "top5": [[labels.get(int(i), str(int(i))), round(p, 4)] for p, i in zip(top.tolist(),
                                                                                                  index.tolist())],
                          "score": float(label in confident)})
    value = sum(r["score"] for r in per_video) / len(per_video)
    return DimensionResult("human_action", value, per_video,
                           {"classifier": "UMT ViT-L/16 Kinetics-400, sigmoid", "frames": "16 (segment middles)",
                            "preprocess": "short side -> 256 OpenCV bilinear, centre crop 224, ImageNet mean/std",
                            "rule": f"label in top-{TOP_K} with round(p, 4) >= {THRESHOLD}",
                            "aggregate": "fraction of videos"})
