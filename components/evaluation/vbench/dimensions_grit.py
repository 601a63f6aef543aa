"""object_class, multiple_objects, color, spatial_relationship: GRiT-B on 16 frames of each video (VBench).

Frames: the middles of 16 equal segments (load_video(num_frames=16)), RGB at the video's own resolution (VBench's
GRiT predictor computes a resize and then feeds the original frame). GRiT keeps boxes scoring above 0.5 and
describes each one twice from the same boxes: with ObjectDet (an object name) and, for color, DenseCap (a
caption); names and captions are BERT WordPiece decoded. The scoring rules are in grit_rules.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from components.evaluation.vbench.frames import Video, middle_indices, read_video
from components.evaluation.vbench.grit_rules import (COLOR_WORDS, color_counts, color_object, frames_with_both,
                                                     frames_with_object, object_pair, spatial_frame_scores)
from components.evaluation.vbench.loaders_grit import BertVocab, vocab_of
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult
from models.vbench.grit import GRiT
from models.vbench.grit_config import DENSE_CAP, OBJECT_DET

FRAMES = 16
# global attention over a 1280x720 frame holds 12 x 3600^2 logits: cap the frames per call by their pixels
BATCH_PIXELS = 4 * 1024 * 1024
GRIT_WEIGHTS, VOCAB_WEIGHTS = "grit-b", "bert-base-uncased-vocab"  # names in the weights list


@dataclass
class FrameFindings:
    """What GRiT found in one frame: VBench's integer boxes, ObjectDet names, and (when asked) DenseCap captions."""

    boxes: list[list[int]]
    names: list[str]
    captions: list[str]


@torch.no_grad()
def find(grit: GRiT, vocab: BertVocab, frames: np.ndarray, captions: bool = False, batch: int = 16,
         device: str = "cpu") -> list[FrameFindings]:
    """GRiT on (T, H, W, 3) uint8 RGB frames, up to `batch` frames (and BATCH_PIXELS pixels) per call."""
    tasks = (OBJECT_DET, DENSE_CAP) if captions else (OBJECT_DET,)
    batch = max(1, min(batch, BATCH_PIXELS // (frames.shape[1] * frames.shape[2])))
    out = []
    for start in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch])).permute(0, 3, 1, 2)
        for found in grit(x.to(device).float(), tasks):
            # VBench: [int(a) for a in box]; tokens after the begin token, decoded
            boxes = [[int(v) for v in box] for box in found.boxes.cpu().tolist()]
            texts = {t: [vocab.decode(ids[1:]) for ids in found.tokens[t].cpu().tolist()] for t in tasks}
            out.append(FrameFindings(boxes, texts[OBJECT_DET], texts.get(DENSE_CAP, [])))
    return out


def _aux(item: VideoItem, key: str, dimension: str) -> Any:
    if not isinstance(item.aux, dict) or key not in item.aux:
        raise ValueError(f"{dimension}: {item.path} (prompt {item.prompt!r}) has no auxiliary_info {key!r}; "
                         f"got {item.aux!r}")
    return item.aux[key]


def _sixteen(reader: Callable[[str], Video], path: str) -> np.ndarray:
    frames = reader(path).frames
    return frames[middle_indices(FRAMES, len(frames))]


def _settings(grit: GRiT) -> dict[str, Any]:
    cfg = grit.cfg
    return {"detector": "GRiT-B (CenterNet proposals, 3-stage cascade, BERT text decoder)",
            "score_threshold": cfg.score_threshold, "box_nms": cfg.box_nms, "beam_size": cfg.beam_size,
            "max_tokens": cfg.max_steps, "frames": f"{FRAMES} (segment middles)",
            "preprocess": f"native resolution RGB, pixel mean/std, zero-padded to a multiple of "
                          f"{cfg.size_divisibility}"}


def _run(name: str, grit: GRiT, vocab: BertVocab, videos: list[VideoItem], device: str, batch: int,
         reader: Callable[[str], Video], captions: bool = False) -> list[tuple[VideoItem, list[FrameFindings]]]:
    if not videos:
        raise ValueError(f"{name}: no videos to score")
    grit = grit.to(device).eval()
    return [(item, find(grit, vocab, _sixteen(reader, item.path), captions, batch, device)) for item in videos]


def object_class(grit: GRiT, vocab: BertVocab, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
                 reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Fraction of all frames in which GRiT names the prompt's object."""
    per_video, hits, total = [], 0, 0
    for item, found in _run("object_class", grit, vocab, videos, device, batch, reader):
        obj = _aux(item, "object", "object_class")
        k = frames_with_object([set(f.names) for f in found], obj)
        hits, total = hits + k, total + len(found)
        per_video.append({"video": item.path, "prompt": item.prompt, "object": obj, "success_frames": k,
                          "frames": len(found), "score": k / len(found),
                          "names": [sorted(set(f.names)) for f in found]})
    return DimensionResult("object_class", hits / total, per_video,
                           {**_settings(grit), "rule": "the object is among the frame's ObjectDet names",
                            "aggregate": "successful frames / all frames"})


def multiple_objects(grit: GRiT, vocab: BertVocab, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
                     reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Fraction of all frames in which GRiT names both objects of 'A and B'."""
    per_video, hits, total = [], 0, 0
    for item, found in _run("multiple_objects", grit, vocab, videos, device, batch, reader):
        pair = object_pair(_aux(item, "object", "multiple_objects"), f"{item.path} (prompt {item.prompt!r})")
        k = frames_with_both([set(f.names) for f in found], pair)
        hits, total = hits + k, total + len(found)
        per_video.append({"video": item.path, "prompt": item.prompt, "objects": list(pair), "success_frames": k,
                          "frames": len(found), "score": k / len(found),
                          "names": [sorted(set(f.names)) for f in found]})
    return DimensionResult("multiple_objects", hits / total, per_video,
                           {**_settings(grit),
                            "rule": "both objects of 'A and B' are among the frame's ObjectDet names",
                            "aggregate": "successful frames / all frames"})


def color(grit: GRiT, vocab: BertVocab, videos: list[VideoItem], device: str = "cpu", batch: int = 16,
          reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean over videos of (frames whose captions have the colour) / (frames with the object in some colour)."""
    per_video = []
    for item, found in _run("color", grit, vocab, videos, device, batch, reader, captions=True):
        asked = _aux(item, "color", "color")
        obj = color_object(item.prompt, asked)
        # each caption pairs with the frame's first ObjectDet name; a frame with no box gives ('', '')
        pairs = [[(c, f.names[0]) for c in f.captions] if f.captions else [("", "")] for f in found]
        counted, colored = color_counts(pairs, asked, obj)
        per_video.append({"video": item.path, "prompt": item.prompt, "color": asked, "object": obj,
                          "object_frames": counted, "color_frames": colored,
                          "score": colored / counted if counted else None, "counted": counted > 0,
                          "captions": [f.captions for f in found]})
    scored = [r["score"] for r in per_video if r["counted"]]
    if not scored:
        raise ValueError(f"color: in none of the {len(per_video)} videos did GRiT find the prompt's object with a "
                         "colour word in its caption; VBench's mean over such videos is 0/0")
    return DimensionResult("color", sum(scored) / len(scored), per_video,
                           {**_settings(grit),
                            "rule": "frames whose first ObjectDet name is the object and whose DenseCap captions "
                                    f"name a colour ({', '.join(COLOR_WORDS)}); success when a caption contains "
                                    "the asked colour",
                            "aggregate": "mean over videos with counted frames", "videos_counted": len(scored)})


def spatial_relationship(grit: GRiT, vocab: BertVocab, videos: list[VideoItem], device: str = "cpu",
                         batch: int = 16, reader: Callable[[str], Video] = read_video) -> DimensionResult:
    """Mean over all frames of the best pair score of boxes named object_a / object_b."""
    per_video, all_scores = [], []
    for item, found in _run("spatial_relationship", grit, vocab, videos, device, batch, reader):
        info = _aux(item, "spatial_relationship", "spatial_relationship")
        missing = [k for k in ("object_a", "object_b", "relationship") if k not in info]
        if missing:
            raise ValueError(f"spatial_relationship: {item.path} (prompt {item.prompt!r}): auxiliary_info lacks "
                             f"{missing}")
        scores = spatial_frame_scores([list(zip(f.names, f.boxes)) for f in found], info)
        all_scores += scores
        named = (info["object_a"], info["object_b"])
        per_video.append({"video": item.path, "prompt": item.prompt, "object_a": named[0], "object_b": named[1],
                          "relationship": info["relationship"], "frame_scores": scores,
                          "score": float(np.mean(scores)),
                          "boxes": [[[n, b] for n, b in zip(f.names, f.boxes) if n in named] for f in found]})
    return DimensionResult("spatial_relationship", float(np.mean(all_scores)), per_video,
                           {**_settings(grit),
                            "rule": "best pair of object_a/object_b boxes: along the relation's axis, "
                                    "1 if IoU < 0.1 else 0.1 / IoU",
                            "aggregate": "mean over all frames"})


def run_grit(dimension: Callable[..., DimensionResult], hub: Any, videos: list[VideoItem], batch: int
             ) -> DimensionResult:
    """A dimension above on the hub's GRiT-B and BERT vocabulary (one load shared by the four dimensions)."""
    return dimension(hub.get(GRIT_WEIGHTS), vocab_of(hub.get(VOCAB_WEIGHTS)), videos, hub.device, batch)
