"""Write synthetic media bit-for-bit reproducibly (libx264 with one thread, fixed options) and plant bad files."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import cv2
import numpy as np

from components.data.synth_config import SynthConfig

# Planted bad files: plain names (nothing in the name gives the defect away) -> expected quarantine kind.
BAD_FILES = {
    "videos/upload_01.mp4": "empty_file",
    "videos/upload_02.mp4": "not_media",
    "videos/upload_03.mp4": "truncated",
    "videos/upload_04.mp4": "no_frames",
    "videos/upload_05.mp4": "undecodable",
    "videos/upload_06.mp4": "absurd_dimensions",
    "images/scan_01.png": "absurd_dimensions",
}
_BAD_CLIP = (64, 64, 24, 12)  # width, height, frames, fps of the valid clip that gets truncated or corrupted
_TRUNCATE_AT = 0.6  # keep this share of the bytes: the index (moov), written last, is lost
_TINY = (2, 2, 12)  # width, height, frames of the absurd video
_TALL = (4, 4000)  # width, height of the absurd image
_AUDIO = (8000, 1024, 8)  # sample rate, samples per frame, frames of the audio-only file


def encode_video(path: Path, frames: Iterable[np.ndarray], fps: int, width: int, height: int,
                 cfg: SynthConfig) -> int:
    """Encode RGB frames to H.264/yuv420p MP4; returns the number of frames written."""
    n = 0
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1  # x264 with several threads is not bit-reproducible
        # mbtree reads uninitialised lookahead memory on some frame sizes (144x144, 96x54): same input,
        # different bytes from one encode to the next. Off, the output is a pure function of the frames.
        stream.options = {"preset": cfg.preset, "crf": str(cfg.crf), "x264-params": "mbtree=0"}
        for n, rgb in enumerate(frames, start=1):
            frame = yuv420_frame(rgb)
            frame.pts = n - 1
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return n


def yuv420_frame(rgb: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame whose every byte, row padding included, is set from the RGB pixels.

    The encoder's input is then fully determined: cv2's conversion (BT.601 limited range, as swscale's
    default) is exact integer code, and PyAV would otherwise leave row padding uninitialised.
    """
    height, width = rgb.shape[:2]
    flat = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).reshape(-1)
    frame = av.VideoFrame(width, height, "yuv420p")
    offset = 0
    for plane in frame.planes:
        rows = plane.buffer_size // plane.line_size
        pixels = flat[offset:offset + plane.width * rows].reshape(rows, plane.width)
        offset += plane.width * rows
        padded = np.pad(pixels, ((0, 0), (0, plane.line_size - plane.width)), mode="edge")
        plane.update(np.ascontiguousarray(padded).tobytes())
    return frame


def write_image(path: Path, rgb: np.ndarray, cfg: SynthConfig) -> None:
    """PNG or JPEG by suffix, with fixed encoder settings."""
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"{path}: cv2 could not write the image")


def _clip_frames(width: int, height: int, count: int) -> Iterable[np.ndarray]:
    for i in range(count):
        img = np.full((height, width, 3), 40, np.uint8)
        img[:, : (i * 5) % width + 1] = (200, 120, 40)
        yield img


def _garble_mdat(data: bytes, seed: int) -> bytes:
    """Replace the payload of the mp4 'mdat' box with random bytes; the index (moov) stays valid."""
    out, offset = bytearray(data), 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"mdat":
            out[offset + 8:offset + size] = np.random.default_rng(seed).bytes(size - 8)
            return bytes(out)
        offset += size
    raise ValueError("no mdat box in the clip to garble")


def _audio_only(path: Path) -> None:
    """An MP4 holding only an AAC stream of silence: a container with no video frames."""
    rate, samples, count = _AUDIO
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        stream.codec_context.thread_count = 1
        for i in range(count):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i * samples
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def plant_bad_files(out_dir: Path, cfg: SynthConfig) -> list[dict]:
    """Write the files ingest must quarantine; returns [{path, kind}] for the ground truth."""
    videos = out_dir / "videos"
    width, height, count, fps = _BAD_CLIP
    clip = out_dir / ".clip.mp4"
    encode_video(clip, _clip_frames(width, height, count), fps, width, height, cfg)
    data = clip.read_bytes()
    clip.unlink()
    (videos / "upload_01.mp4").write_bytes(b"")
    (videos / "upload_02.mp4").write_text("This is a text file that only pretends to be a video.\n")
    (videos / "upload_03.mp4").write_bytes(data[: int(len(data) * _TRUNCATE_AT)])
    _audio_only(videos / "upload_04.mp4")
    (videos / "upload_05.mp4").write_bytes(_garble_mdat(data, cfg.seed))
    w, h, n = _TINY
    encode_video(videos / "upload_06.mp4", _clip_frames(w, h, n), fps, w, h, cfg)
    w, h = _TALL
    write_image(out_dir / "images" / "scan_01.png", np.full((h, w, 3), 128, np.uint8), cfg)
    return [{"path": path, "kind": kind} for path, kind in BAD_FILES.items()]
