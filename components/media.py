"""Sample media for runs and reports: side-by-side frame grids, MP4 via PyAV (H.264) and GIF previews via Pillow."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def _check(frames: np.ndarray, name: str) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"{name}: expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")


def side_by_side(videos: list[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Clips (T, H, W, 3) of equal T and H placed left to right with a `gap`-pixel bar between them."""
    for v in videos:
        _check(v, "side_by_side")
    if len({(v.shape[0], v.shape[1]) for v in videos}) != 1:
        raise ValueError(f"side_by_side: clips differ in frames or height: {[v.shape for v in videos]}")
    t, h = videos[0].shape[:2]
    bar = np.full((t, h, gap, 3), fill, np.uint8)
    parts = [p for v in videos for p in (v, bar)][:-1]
    return np.concatenate(parts, axis=2)


def stack_rows(rows: list[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Clips of equal T and W stacked top to bottom with a `gap`-pixel bar between them."""
    t, _, w = rows[0].shape[:3]
    bar = np.full((t, gap, w, 3), fill, np.uint8)
    parts = [p for r in rows for p in (r, bar)][:-1]
    return np.concatenate(parts, axis=1)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor, so tiny training clips are visible."""
    if factor <= 1:
        return frames
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 8.0, crf: int = 18) -> Path:
    """Encode (T, H, W, 3) uint8 RGB as H.264/yuv420p MP4; odd sizes are padded by one black row/column."""
    _check(frames, "write_mp4")
    t, h, w, _ = frames.shape
    # yuv420p halves the chroma planes, so both sides must be even
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 8.0) -> Path:
    """A looping GIF preview of (T, H, W, 3) uint8 RGB frames."""
    _check(frames, "write_gif")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    # GIF delays are whole centiseconds; Pillow rounds the millisecond duration
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)), loop=0,
                   optimize=False)
    return path
