"""VBench's frame sampling and preprocessing, reproduced without torchvision.

  middle_indices  "16 frames": split [0, vlen) into n equal segments (np.linspace(...).astype(int)) and take the
                  middle frame (a + b) // 2 of each segment [a, b]; short videos are padded with the last index
                  (VBench utils.get_frame_indices, sample="middle")
  clip_tensor     CLIP: torchvision Resize(224, bicubic) of the short side, CenterCrop(224), /255, CLIP mean/std
                  VBench resizes float32 tensors (load_video returns torch.Tensor(frames)) with torchvision < 0.16,
                  whose tensor default is antialias=False: plain F.interpolate, no rounding, no clamping
                  (ViCLIP's frames arrive as uint8 tensors: clamped and rounded, `uint8=True`)
  clip_pil        the same on PIL images (appearance_style's clip_transform_Image): PIL bicubic, crop, /255
  dino_tensor     DINO: Resize(224) bilinear (same float path), short side, no crop, /255, ImageNet mean/std
Long sides follow torchvision: int(224 * long / short), truncated; crops start at int(round((H - 224) / 2)).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from components.curation.frames import iter_frames, open_media

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224  # CLIP and DINO input side in VBench


@dataclass
class Video:
    """Every frame of a video as (T, H, W, 3) uint8 RGB, and its frame rate."""

    path: str
    frames: np.ndarray
    fps: float


def video_fps(path: str) -> float:
    """Average frame rate of the first video stream (what OpenCV's CAP_PROP_FPS reports)."""
    with open_media(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise ValueError(f"{path}: the video stream has no frame rate")
        return float(Fraction(rate))


def read_video(path: str) -> Video:
    """Decode all frames of a video (VBench's load_video without num_frames)."""
    frames = list(iter_frames(path))
    if not frames:
        raise ValueError(f"{path}: no decodable video frames")
    return Video(path, np.stack(frames), video_fps(path))


def middle_indices(num_frames: int, vlen: int) -> list[int]:
    """VBench's "middle" sampling: the middle frame of each of num_frames equal segments of [0, vlen)."""
    if vlen < 1 or num_frames < 1:
        raise ValueError(f"middle_indices needs vlen >= 1 and num_frames >= 1, got vlen={vlen}, num={num_frames}")
    count = min(num_frames, vlen)
    edges = np.linspace(0, vlen, count + 1).astype(int)
    picked = [int(a + (b - 1)) // 2 for a, b in zip(edges[:-1], edges[1:])]
    return picked + [picked[-1]] * (num_frames - len(picked))


def resized_size(height: int, width: int, short: int) -> tuple[int, int]:
    """torchvision's output size for Resize(short): the short side to `short`, the long side truncated."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (T, 3, H, W) float32 in [0, 255]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()


def resize_short(x: torch.Tensor, short: int, mode: str) -> torch.Tensor:
    """torchvision Resize(short, mode) of a float (T, 3, H, W) tensor, antialias=False: values stay unrounded."""
    h, w = x.shape[-2:]
    size = resized_size(h, w, short)
    if size == (h, w):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=False)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision CenterCrop(size) of (…, H, W) at least size x size."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"center_crop({size}) of a {h}x{w} image: resize first")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(T, 3, H, W) in [0, 255] → /255, then (x - mean) / std per channel."""
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return (x / 255.0 - mean_t) / std_t


def clip_tensor(frames: np.ndarray, size: int = INPUT_SIZE, uint8: bool = False) -> torch.Tensor:
    """VBench clip_transform: (T, H, W, 3) uint8 → (T, 3, size, size) CLIP-normalised float.

    uint8=True is the path of ViCLIP's dimensions, whose frames reach the resize as uint8 tensors
    (read_frames_decord_by_fps): torchvision then clamps the bicubic result to [0, 255] and rounds it.
    """
    x = resize_short(_to_tensor(frames), size, "bicubic")
    if uint8:
        x = x.clamp(0, 255).round()
    return normalize(center_crop(x, size), CLIP_MEAN, CLIP_STD)


def dino_tensor(frames: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """VBench dino_transform: (T, H, W, 3) uint8 → (T, 3, H', W') ImageNet-normalised, short side `size`."""
    return normalize(resize_short(_to_tensor(frames), size, "bilinear"), IMAGENET_MEAN, IMAGENET_STD)


def clip_pil(frames: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """VBench clip_transform_Image: PIL bicubic resize of the short side, centre crop, /255, CLIP mean/std."""
    from PIL import Image

    out = []
    for frame in frames:
        h, w = frame.shape[:2]
        nh, nw = resized_size(h, w, size)
        image = Image.fromarray(frame)
        if (nh, nw) != (h, w):
            image = image.resize((nw, nh), Image.BICUBIC)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        out.append(np.asarray(image.crop((left, top, left + size, top + size))))
    return normalize(_to_tensor(np.stack(out)), CLIP_MEAN, CLIP_STD)
