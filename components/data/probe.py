"""Probe one media file (local path or fsspec URI): its facts, or a ProbeError carrying the quarantine kind.

Videos are read with PyAV (through an fsspec file object for remote URIs), images with Pillow. Checks run
cheapest first (size, container structure, header dimensions) so an absurd file is rejected before decoding.
"""
from __future__ import annotations

import contextlib
import hashlib
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import av
from PIL import Image, UnidentifiedImageError

from components.workspace import filesystem, is_remote

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
IMAGE_CODECS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "BMP": "bmp"}
EXIF_ROTATION = {3: 180, 6: 90, 8: 270}  # EXIF orientation tag -> clockwise degrees to display upright
_BMFF_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}  # MP4/MOV top-level boxes
_CHUNK = 1 << 20
_MAX_BOXES = 10_000


@dataclass(frozen=True)
class Limits:
    """Dimensions outside these are absurd_dimensions (checked on the header, before decoding)."""

    min_side: int = 32
    max_side: int = 8192
    max_aspect: float = 6.0  # long side / short side


@dataclass(frozen=True)
class ProbeResult:
    """What a good file is: display dimensions (after rotation), decoded frame count, hashes."""

    media: str  # video | image
    num_frames: int
    width: int
    height: int
    fps: float | None  # None when the container gives no rate (and for images)
    duration: float | None  # num_frames / fps; None without fps
    codec: str
    rotation: int  # 0, 90, 180, 270
    size_bytes: int
    sha256: str


class ProbeError(Exception):
    """A bad input: `kind` is one of schema.QUARANTINE_KINDS; the message names the file."""

    def __init__(self, kind: str, uri: str, message: str, size_bytes: int = 0, sha256: str = ""):
        super().__init__(f"{uri}: {message}")
        self.kind, self.uri, self.size_bytes, self.sha256 = kind, uri, size_bytes, sha256


def media_kind(uri: str) -> str | None:
    """'video' or 'image' by file extension, None for anything else."""
    suffix = PurePosixPath(str(uri)).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def file_digest(uri: str) -> tuple[int, str, bytes]:
    """(size in bytes, sha256 hex, first 64 bytes) of a file, streamed in chunks."""
    fs, path = filesystem(uri)
    digest, size, head = hashlib.sha256(), 0, b""
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if not head:
                head = chunk[:64]
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest(), head


def check_dimensions(uri: str, width: int, height: int, limits: Limits) -> None:
    """Raise absurd_dimensions when a side or the aspect ratio is outside the limits."""
    short, long = min(width, height), max(width, height)
    if short < limits.min_side or long > limits.max_side:
        raise ProbeError("absurd_dimensions", uri, f"{width}x{height} has a side outside "
                         f"[{limits.min_side}, {limits.max_side}] px")
    if long / short > limits.max_aspect:
        raise ProbeError("absurd_dimensions", uri, f"{width}x{height} has aspect {long / short:.1f} "
                         f"> max_aspect {limits.max_aspect}")


def bmff_problem(f, size: int) -> tuple[str | None, list[str]]:
    """Walk the top-level MP4/MOV boxes: (why the file looks cut short or None, the box types seen)."""
    offset, kinds = 0, []
    for _ in range(_MAX_BOXES):
        if offset >= size:
            return None, kinds
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return f"box header at byte {offset} is cut short (file ends at byte {size})", kinds
        box, kind = struct.unpack(">I4s", header[:8])
        kinds.append(kind.decode("latin-1"))
        if box == 1 and len(header) == 16:  # 64-bit size follows the type
            box = struct.unpack(">Q", header[8:16])[0]
        if box == 0:  # the last box runs to the end of the file
            return None, kinds
        if box < 8:  # not a box structure we understand: leave the verdict to the demuxer
            return None, kinds
        if offset + box > size:
            return (f"'{kinds[-1]}' box at byte {offset} declares {box} bytes but the file ends at byte {size}",
                    kinds)
        offset += box
    return None, kinds


def _rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4 * 90


def _frames(container, stream, uri: str, decode: str) -> tuple[int, int, int]:
    """(frames, packets, rotation): decode every frame ('full') or the first and trust the header ('headers')."""
    frames = packets = rotation = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
            if decode == "headers" and frames:
                if stream.frames:
                    break  # the header's frame count stands in for decoding
                continue  # no count in the header (mkv, webm): count packets without decoding
            for frame in packet.decode():
                if frames == 0:
                    rotation = _rotation(frame.rotation or 0)
                frames += 1
    except av.FFmpegError as err:
        raise ProbeError("undecodable", uri, f"decoding failed after {frames} frames "
                         f"({packets} packets read): {err}") from None
    if decode == "headers" and frames:
        frames = stream.frames or packets
    return frames, packets, rotation


def _probe_video(uri: str, size: int, sha: str, head: bytes, decode: str, limits: Limits) -> ProbeResult:
    fs, path = filesystem(uri)
    with contextlib.ExitStack() as stack:
        boxes: list[str] = []
        if len(head) >= 8 and head[4:8] in _BMFF_BOXES:
            problem, boxes = bmff_problem(stack.enter_context(fs.open(path, "rb")), size)
            if problem:
                raise ProbeError("truncated", uri, f"file ends early: {problem}")
        source = stack.enter_context(fs.open(path, "rb")) if is_remote(uri) else path
        try:
            container = stack.enter_context(av.open(source, "r"))
        except av.FFmpegError as err:
            if boxes and "moov" not in boxes:
                raise ProbeError("truncated", uri, f"MP4 has no 'moov' index (boxes {boxes}): the file was "
                                 f"cut before its index was written") from None
            raise ProbeError("not_media", uri, f"no container format recognised ({err})") from None
        if not container.streams.video:
            found = ", ".join(s.type for s in container.streams) or "none"
            raise ProbeError("no_frames", uri, f"container holds no video stream (streams: {found})")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        check_dimensions(uri, width, height, limits)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else None
        frames, packets, rotation = _frames(container, stream, uri, decode)
        if frames == 0 and packets == 0:
            raise ProbeError("no_frames", uri, "video stream holds no packets")
        if frames == 0:
            raise ProbeError("undecodable", uri, f"{packets} video packets but the decoder produced no frame")
        codec = stream.codec_context.name
    if rotation in (90, 270):
        width, height = height, width
    return ProbeResult("video", frames, width, height, fps, frames / fps if fps else None, codec, rotation,
                       size, sha)


def _probe_image(uri: str, size: int, sha: str, limits: Limits) -> ProbeResult:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        try:
            img = Image.open(f)
        except UnidentifiedImageError:
            raise ProbeError("not_media", uri, "no image format recognised") from None
        except Image.DecompressionBombError as err:
            raise ProbeError("absurd_dimensions", uri, str(err)) from None
        with img:
            width, height = img.size
            check_dimensions(uri, width, height, limits)
            codec = IMAGE_CODECS.get(img.format or "", (img.format or "unknown").lower())
            try:
                img.load()
                rotation = EXIF_ROTATION.get(img.getexif().get(0x0112, 1), 0)  # PNG reads EXIF by loading
            except (OSError, SyntaxError, ValueError) as err:
                kind = "truncated" if "truncated" in str(err).lower() else "undecodable"
                raise ProbeError(kind, uri, f"{codec} decoding failed: {err}") from None
    if rotation in (90, 270):
        width, height = height, width
    return ProbeResult("image", 1, width, height, None, None, codec, rotation, size, sha)


def probe(uri: str, media: str | None = None, decode: Literal["full", "headers"] = "full",
          limits: Limits = Limits()) -> ProbeResult:
    """Facts of one video or image; raises ProbeError(kind, ...) for a bad one."""
    uri = str(uri)
    media = media or media_kind(uri)
    try:
        size, sha, head = file_digest(uri)
    except OSError as err:
        raise ProbeError("unreadable", uri, f"cannot read the file: {err}") from None
    try:
        if size == 0:
            raise ProbeError("empty_file", uri, "file is empty (0 bytes)")
        if media == "video":
            return _probe_video(uri, size, sha, head, decode, limits)
        if media == "image":
            return _probe_image(uri, size, sha, limits)
        raise ProbeError("not_media", uri, f"extension is neither video {VIDEO_EXTENSIONS} nor image "
                         f"{IMAGE_EXTENSIONS}")
    except ProbeError as err:
        err.size_bytes, err.sha256 = size, sha
        raise
    except OSError as err:  # I/O failing mid-read (network, permissions), not a verdict on the content
        raise ProbeError("unreadable", uri, f"I/O error while probing: {err}", size, sha) from None
