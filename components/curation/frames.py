"""Read frames of a clip with PyAV: a frame range, evenly spaced samples, resized, as uint8 RGB arrays."""
from __future__ import annotations

from typing import Iterator, Sequence

import av
import cv2
import numpy as np

from components.workspace import filesystem, is_remote


def open_media(path: str):
    """A PyAV container for a local path or an fsspec URI (s3://…)."""
    if is_remote(path):
        fs, inner = filesystem(path)
        return av.open(fs.open(inner, "rb"))
    return av.open(path)


def iter_frames(path: str, format: str = "rgb24") -> Iterator[np.ndarray]:
    """Every decoded frame of a video, in order, as (H, W, 3) uint8 arrays."""
    from av.video.reformatter import VideoReformatter

    with open_media(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        convert = VideoReformatter()  # kept across frames: a fresh conversion context per frame costs ~1 ms
        for frame in container.decode(stream):
            yield convert.reformat(frame, format=format).to_ndarray()


def resize_short(frame: np.ndarray, short: int) -> np.ndarray:
    """Resize so the shorter side is `short` (downscale only: never upscale)."""
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    if scale >= 1:
        return frame
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def read_frames(path: str, start: int = 0, end: int | None = None, indices: Sequence[int] | None = None,
                short_side: int | None = None, gray: bool = False) -> np.ndarray:
    """Frames [start, end) of a video, or only `indices` (absolute frame numbers), as (T, H, W, 3) uint8 RGB.

    Decodes sequentially from the start of the file: exact frame numbers matter more here than seek speed
    (the clips are short; keyframe seeking lands on the wrong frame with B-frames).
    """
    wanted = set(indices) if indices is not None else None
    last = max(wanted) + 1 if wanted else end
    out = []
    frames = iter_frames(path)
    try:
        for i, img in enumerate(frames):
            if last is not None and i >= last:
                break
            if i < start or (wanted is not None and i not in wanted):
                continue
            if short_side:
                img = resize_short(img, short_side)
            out.append(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if gray else img)
    finally:
        frames.close()  # stop decoding and close the container when only the first frames are wanted
    if not out:
        raise ValueError(f"{path}: no frames in [{start}, {end}) / indices {sorted(wanted) if wanted else None}")
    return np.stack(out)


def sample_indices(start: int, end: int, n: int) -> list[int]:
    """n frame numbers spread evenly over [start, end): first, …, last (VBench-style middle-of-segment if n > 2)."""
    length = end - start
    if n >= length:
        return list(range(start, end))
    if n == 1:
        return [start + length // 2]
    return [start + round(i * (length - 1) / (n - 1)) for i in range(n)]
