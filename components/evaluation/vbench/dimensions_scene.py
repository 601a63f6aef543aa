"""scene: does Tag2Text's caption of a frame name the scene the prompt asked for? (VBench scene.py)

Per video: decord decodes an .mp4 at 384x384 (its ffmpeg `scale` filter: swscale bilinear, aspect ratio not
kept) and keeps 16 frames (middle of 16 segments); /255, ImageNet mean/std; Tag2Text captions each frame. A frame
succeeds when every space-separated word of the scene label is a substring of its caption (`q in pred`, so
"bar" matches "barn"). A video's score is its fraction of successful frames; the dimension is successful
frames over all frames (equal to the mean over videos when each has 16 frames). The label is the prompt's
auxiliary info {"scene": {"scene": "alley"}}.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from components.curation.frames import iter_frames, open_media
from components.evaluation.vbench.frames import IMAGENET_MEAN, IMAGENET_STD, middle_indices, normalize
from components.evaluation.vbench.prompts import VideoItem
from components.evaluation.vbench.scores import DimensionResult
from components.evaluation.vbench.tag2text_caption import CaptionSettings, bert_tokenizer, caption
from models.vbench.tag2text import Tag2Text

FRAMES, SIZE = 16, 384
SCALER = "BILINEAR"  # ffmpeg 4's `scale` filter default, which decord's VideoReader(width, height) runs


def read_scene_frames(path: str, size: int = SIZE, frames: int = FRAMES) -> np.ndarray:
    """VBench's load_video(num_frames=16, width=size, height=size) → (frames, size, size, 3) uint8.

    .mp4: decord scales while decoding (swscale bilinear, one call from the decoded format to rgb24). Other
    formats (.gif) ignore width/height there and reach tag2text_transform's PIL Resize((size, size)) bilinear.
    """
    from av.video.reformatter import VideoReformatter

    resized = []
    if path.lower().endswith(".mp4"):
        with open_media(path) as container:
            convert = VideoReformatter()
            for frame in container.decode(container.streams.video[0]):
                resized.append(convert.reformat(frame, width=size, height=size, format="rgb24",
                                                interpolation=SCALER).to_ndarray())
    else:
        resized = list(iter_frames(path))
    if not resized:
        raise ValueError(f"{path}: no decodable video frames")
    picked = np.stack([resized[i] for i in middle_indices(frames, len(resized))])
    if picked.shape[1:3] != (size, size):
        picked = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in picked])
    return picked


def scene_label(item: VideoItem) -> str:
    """The scene words of a video's auxiliary info ({"scene": {"scene": "..."}})."""
    try:
        label = item.aux["scene"]["scene"]
    except (TypeError, KeyError):
        raise ValueError(f"{item.path}: prompt {item.prompt!r} has no scene label; scene needs auxiliary info "
                         f"{{'scene': {{'scene': '<label>'}}}}, got {item.aux!r:.120}") from None
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{item.path}: scene label must be a non-empty string, got {label!r}")
    return label


def frame_success(label: str, captions: list[str]) -> list[bool]:
    """VBench check_generate: every word of the label (split on ' ') occurs in the caption as a substring."""
    words = label.split(" ")
    return [all(word in text for word in words) for text in captions]


@torch.no_grad()
def scene(tag2text: Tag2Text, tokenizer: Any, tag_names: list[str], videos: list[VideoItem], device: str = "cpu",
          settings: CaptionSettings = CaptionSettings(),
          reader: Callable[[str], np.ndarray] = read_scene_frames) -> DimensionResult:
    """Fraction of frames whose Tag2Text caption contains every word of the video's scene label."""
    if not videos:
        raise ValueError("scene: no videos to score")
    model, tokenizer = tag2text.to(device).eval(), bert_tokenizer(tokenizer)
    per_video, hits, total = [], 0, 0
    for item in videos:
        label = scene_label(item)
        frames = torch.from_numpy(reader(item.path)).permute(0, 3, 1, 2).float()  # (T, 3, 384, 384)
        images = normalize(frames, IMAGENET_MEAN, IMAGENET_STD).to(device)
        captions, tags = caption(model, tokenizer, tag_names, images, settings)
        success = frame_success(label, captions)
        hits, total = hits + sum(success), total + len(success)
        per_video.append({"video": item.path, "prompt": item.prompt, "label": label, "captions": captions,
                          "tags": tags, "success_frames": sum(success), "frames": len(success),
                          "score": sum(success) / len(success)})
    return DimensionResult("scene", hits / total, per_video,
                           {"captioner": "Tag2Text Swin-B 384 (tag2text_swin_14m)",
                            "frames": f"{FRAMES} (segment middles) at {SIZE}x{SIZE} (.mp4: swscale bilinear while "
                                      "decoding, as decord; other formats: PIL bilinear)",
                            "preprocess": "/255, ImageNet mean/std",
                            "generate": settings.model_dump(mode="json"),
                            "rule": "every word of the scene label is a substring of the frame's caption",
                            "aggregate": "successful frames / all frames"})
