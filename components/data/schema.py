"""Column contracts of the metadata tables (Open-Sora compatible where Open-Sora has a column)."""
from __future__ import annotations

# Ingested metadata (workspace/data/ingest/metadata.parquet), one row per accepted video or image.
METADATA_COLUMNS: dict[str, str] = {
    "id": "string",  # 16 hex chars: sha256 of the path relative to the source; unique
    "path": "string",  # absolute local path or fsspec URI (Open-Sora `path`)
    "relpath": "string",  # path relative to the ingest source
    "text": "string",  # caption from a sidecar (.txt next to the file) or captions.csv; may be ""
    "media": "string",  # "video" | "image"
    "num_frames": "int64",  # decoded frame count (1 for images)
    "height": "int64",  # display height after rotation
    "width": "int64",
    "aspect_ratio": "float64",  # height / width, as Open-Sora defines it
    "resolution": "int64",  # height * width, as Open-Sora defines it
    "fps": "float64",  # images: 120 (Open-Sora convention); missing fps in a video: 24
    "duration": "float64",  # seconds
    "codec": "string",  # h264, hevc, vp9, av1, mpeg4, png, mjpeg, ...
    "rotation": "int64",  # 0, 90, 180, 270 (display matrix)
    "size_bytes": "int64",
    "sha256": "string",  # content hash, 64 hex chars
}

# Open-Sora CSV export: required columns first, then the optional ones we have.
OPENSORA_COLUMNS = ["path", "text", "num_frames", "height", "width", "aspect_ratio", "fps", "resolution"]

# Quarantine table (workspace/data/ingest/quarantine.parquet): every rejected input with its reason.
QUARANTINE_COLUMNS: dict[str, str] = {
    "path": "string",
    "relpath": "string",
    "error_kind": "string",  # one of QUARANTINE_KINDS
    "error": "string",  # the message, naming what was wrong
    "size_bytes": "int64",
    "sha256": "string",
}

QUARANTINE_KINDS = (
    "empty_file",  # zero bytes
    "not_media",  # no container or image format recognised
    "truncated",  # container or stream ends early
    "no_frames",  # container opens but holds no video frames
    "undecodable",  # frames present but the decoder fails
    "absurd_dimensions",  # width/height outside [min_side, max_side] or extreme aspect ratio
    "unreadable",  # I/O error (permissions, network)
)

KNOWN_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "mjpeg", "prores", "png", "jpeg", "webp", "bmp")
