"""Stage data.ingest: probe every raw video and image into metadata.parquet; quarantine the bad ones.

Every file under the source is accounted for: media files are accepted or quarantined (with the error kind),
other files (caption sidecars, captions.csv, json) are counted as ignored. Outputs are sorted by relpath and
hold no timestamps, so a re-run over the same source writes byte-identical files.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from components.config import StageConfig
from components.data.probe import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Limits, ProbeError, ProbeResult, \
    file_digest, probe
from components.data.schema import METADATA_COLUMNS, OPENSORA_COLUMNS, QUARANTINE_COLUMNS, QUARANTINE_KINDS
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.workspace import filesystem, is_remote, project_root

OUTPUT = "data/ingest"
_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}


class IngestConfig(StageConfig):
    """Where the raw data is and what counts as a usable file."""

    source: str = "data"  # folder relative to the project root, absolute path, or fsspec URI (s3://bucket/prefix)
    video_extensions: list[str] = list(VIDEO_EXTENSIONS)
    image_extensions: list[str] = list(IMAGE_EXTENSIONS)
    captions_csv: str = "captions.csv"  # optional table (path,text) at the source root; wins over sidecars
    min_side: int = Field(32, ge=1)
    max_side: int = Field(8192, ge=1)
    max_aspect: float = Field(6.0, ge=1.0)
    default_fps: float = Field(24.0, gt=0)  # a video whose container gives no rate
    image_fps: float = Field(120.0, gt=0)  # Open-Sora's convention for still images
    decode: Literal["full", "headers"] = "full"  # full: decode every frame; headers: first frame + header count
    workers: int = Field(1, ge=1)
    progress: bool = True  # rich progress bar (never under pytest)

    @field_validator("video_extensions", "image_extensions")
    @classmethod
    def _dotted(cls, extensions: list[str]) -> list[str]:
        return [e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions]


def resolve_source(source: str) -> str:
    """A URI as is; a local folder made absolute against the project root."""
    if is_remote(source):
        return source
    path = Path(source)
    return str(path if path.is_absolute() else project_root() / path)


def list_files(source: str) -> list[tuple[str, str]]:
    """(relpath, uri) of every file under source, sorted by relpath."""
    fs, root = filesystem(source)
    if not fs.isdir(root):
        raise FileNotFoundError(f"ingest source {source!r} is not a folder (resolved to {root!r})")
    root = root.rstrip("/")
    out = []
    for path in fs.find(root):
        relpath = posixpath.relpath(path, root)
        # URIs keep the spelling of the source the user gave (s3://bucket/prefix/...)
        out.append((relpath, f"{source.rstrip('/')}/{relpath}" if is_remote(source) else path))
    return sorted(out)


def load_captions(source: str, files: dict[str, str], media: Iterable[str], csv_name: str) -> dict[str, str]:
    """relpath -> caption: the sidecar `<file>.txt` (or `<stem>.txt`), overridden by captions.csv rows."""
    fs, _ = filesystem(source)
    captions = {}
    for relpath in media:
        stem = posixpath.splitext(relpath)[0]
        for sidecar in (f"{relpath}.txt", f"{stem}.txt"):
            if sidecar in files:
                captions[relpath] = fs.cat_file(files[sidecar]).decode("utf-8").strip()
                break
    if csv_name in files:
        table = pd.read_csv(io.BytesIO(fs.cat_file(files[csv_name])), dtype=str, keep_default_na=False)
        missing = {"path", "text"} - set(table.columns)
        if missing:
            raise ValueError(f"{files[csv_name]}: captions table lacks column(s) {sorted(missing)}; "
                             f"expected path,text")
        prefix = source.rstrip("/") + "/"
        for row in table.itertuples(index=False):
            # Open-Sora tables hold absolute paths; ours may be relative to the source
            relpath = row.path[len(prefix):] if row.path.startswith(prefix) else row.path.removeprefix("./")
            captions[posixpath.normpath(relpath)] = row.text.strip()
    return captions


def _media_of(relpath: str, cfg: IngestConfig) -> str | None:
    suffix = posixpath.splitext(relpath)[1].lower()
    if suffix in cfg.video_extensions:
        return "video"
    if suffix in cfg.image_extensions:
        return "image"
    return None


def _row(relpath: str, uri: str, text: str, r: ProbeResult, cfg: IngestConfig) -> dict:
    fps = cfg.image_fps if r.media == "image" else (r.fps or cfg.default_fps)
    return {
        "id": hashlib.sha256(relpath.encode()).hexdigest()[:16], "path": uri, "relpath": relpath, "text": text,
        "media": r.media, "num_frames": r.num_frames, "height": r.height, "width": r.width,
        "aspect_ratio": r.height / r.width, "resolution": r.height * r.width, "fps": fps,
        "duration": r.num_frames / fps, "codec": r.codec, "rotation": r.rotation, "size_bytes": r.size_bytes,
        "sha256": r.sha256,
    }


def _table(rows: list[dict], columns: dict[str, str]) -> pa.Table:
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns.items()])
    return pa.Table.from_pylist(rows, schema=schema)


def _show_progress(cfg: IngestConfig) -> bool:
    return cfg.progress and "PYTEST_CURRENT_TEST" not in os.environ


def _probe_all(jobs: list[tuple[str, str, str]], cfg: IngestConfig) -> list[ProbeResult | ProbeError]:
    """Probe (relpath, uri, media) jobs in order, on cfg.workers threads, with a progress bar."""
    limits = Limits(cfg.min_side, cfg.max_side, cfg.max_aspect)

    def one(job: tuple[str, str, str]) -> ProbeResult | ProbeError:
        _, uri, media = job
        try:
            return probe(uri, media=media, decode=cfg.decode, limits=limits)
        except ProbeError as err:
            return err

    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    results = []
    with Progress(*columns, disable=not _show_progress(cfg)) as bar, \
            ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        task = bar.add_task("ingest", total=len(jobs))
        for result in pool.map(one, jobs):  # map keeps job order, so outputs do not depend on timing
            results.append(result)
            bar.advance(task)
    return results


def inputs_digest(hashes: dict[str, str]) -> str:
    """sha256 over sorted 'relpath sha256' lines: the content digest of a raw folder."""
    lines = "".join(f"{relpath}\t{sha}\n" for relpath, sha in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@stage("data.ingest", IngestConfig, output=OUTPUT, inputs=lambda cfg, ws: {"raw": resolve_source(cfg.source)})
def ingest(ctx: StageContext) -> dict[str, float]:
    """Probe raw videos and images into metadata.parquet, quarantine the bad ones, count the rest."""
    cfg: IngestConfig = ctx.cfg
    source = ctx.inputs.get("raw") or resolve_source(cfg.source)
    files = list_files(source)
    by_rel = dict(files)
    jobs = [(rel, uri, media) for rel, uri in files if (media := _media_of(rel, cfg))]
    ignored = [rel for rel, _ in files if not _media_of(rel, cfg)]
    captions = load_captions(source, by_rel, [rel for rel, _, _ in jobs], cfg.captions_csv)

    accepted, quarantined, hashes = [], [], {}
    for (rel, uri, _), result in zip(jobs, _probe_all(jobs, cfg)):
        hashes[rel] = result.sha256
        if isinstance(result, ProbeError):
            quarantined.append({"path": uri, "relpath": rel, "error_kind": result.kind, "error": str(result),
                                "size_bytes": result.size_bytes, "sha256": result.sha256})
        else:
            accepted.append(_row(rel, uri, captions.get(rel, ""), result, cfg))
    for rel in ignored:
        hashes[rel] = file_digest(by_rel[rel])[1]

    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    metadata = _table(accepted, METADATA_COLUMNS)
    pq.write_table(metadata, out / "metadata.parquet")
    pq.write_table(_table(quarantined, QUARANTINE_COLUMNS), out / "quarantine.parquet")
    df = metadata.to_pandas()
    df[OPENSORA_COLUMNS + [c for c in METADATA_COLUMNS if c not in OPENSORA_COLUMNS]].to_csv(
        out / "metadata.csv", index=False)
    by_kind = {kind: sum(q["error_kind"] == kind for q in quarantined) for kind in QUARANTINE_KINDS}
    summary = {
        "ingested": len(jobs), "accepted": len(accepted), "quarantined": len(quarantined), "ignored": len(ignored),
        "by_kind": by_kind,
        "by_media": {m: sum(r["media"] == m for r in accepted) for m in ("video", "image")},
        "raw_digest": inputs_digest(hashes),
    }
    assert summary["ingested"] == summary["accepted"] + summary["quarantined"], summary
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    metrics = {f"ingest/{k}": float(summary[k]) for k in ("accepted", "quarantined", "ingested", "ignored")}
    tracker = ctx.tracker or NoopTracker()
    tracker.log_metrics(metrics)
    tracker.log_artifact(out / "quarantine.parquet")
    tracker.log_artifact(out / "summary.json")
    tracker.log_dataset(name="raw", source=cfg.source, digest=summary["raw_digest"], context="ingest")
    tracker.log_dataset(name="metadata", source=str(Path(ctx.workspace) / OUTPUT / "metadata.parquet"),
                        digest=hashlib.sha256((out / "metadata.parquet").read_bytes()).hexdigest(),
                        context="ingest", df=df)
    return metrics
