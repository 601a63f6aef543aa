"""Clip sizes under the shorter-side cap, and optional H.264 re-encoding of clips (one decode per video)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2

from components.curation.frames import iter_frames


def capped_size(width: int, height: int, max_short_side: int) -> tuple[int, int]:
    """(width, height) with the shorter side at most max_short_side, aspect kept, even when scaled; never larger."""
    short = min(width, height)
    if short <= max_short_side:
        return width, height
    scale = max_short_side / short
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def write_clips(source: str, clips: list[dict], clips_dir: Path, cfg: Any) -> None:
    """Encode each clip's frames of `source` to clips_dir/<clip_id>.mp4 and point the clip rows at the files.

    Rows are updated in place: path, start_frame 0, end_frame num_frames (they address the new file), and
    width/height rounded down to even numbers where yuv420p needs it.
    """
    clips_dir.mkdir(parents=True, exist_ok=True)
    by_start = sorted(clips, key=lambda c: c["start_frame"])
    writers: dict[str, tuple[Any, Any]] = {}
    try:
        for index, rgb in enumerate(iter_frames(source, format="rgb24")):
            for clip in by_start:
                if clip["start_frame"] <= index < clip["end_frame"]:
                    container, stream = writers.get(clip["clip_id"]) or _open_writer(clip, clips_dir, cfg)
                    writers[clip["clip_id"]] = (container, stream)
                    if rgb.shape[1] != stream.width or rgb.shape[0] != stream.height:
                        rgb = cv2.resize(rgb, (stream.width, stream.height), interpolation=cv2.INTER_AREA)
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts = index - clip["start_frame"]
                    container.mux(stream.encode(frame))
    finally:
        for container, stream in writers.values():
            container.mux(stream.encode())
            container.close()
    for clip in clips:
        clip.update(path=str(clips_dir / f"{clip['clip_id']}.mp4"), start_frame=0, end_frame=clip["num_frames"])


def _open_writer(clip: dict, clips_dir: Path, cfg: Any) -> tuple[Any, Any]:
    width, height = clip["width"] - clip["width"] % 2, clip["height"] - clip["height"] % 2
    clip.update(width=width, height=height, aspect_ratio=height / width, resolution=height * width)
    container = av.open(str(clips_dir / f"{clip['clip_id']}.mp4"), "w", format="mp4")
    stream = container.add_stream("libx264", rate=Fraction(clip["fps"]).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": cfg.preset, "crf": str(cfg.crf)}
    return container, stream
