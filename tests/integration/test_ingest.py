"""Stage data.ingest over a synthetic corpus: accounting, quarantine kinds, GT facts, Open-Sora CSV, determinism."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

from components.data.ingest import IngestConfig, ingest, inputs_digest
from components.data.schema import METADATA_COLUMNS, OPENSORA_COLUMNS, QUARANTINE_COLUMNS, QUARANTINE_KINDS
from components.data.synth import SynthConfig, synthesize
from components.stage import REGISTRY, StageContext
from components.tracking import NoopTracker

pytestmark = pytest.mark.slow

SMALL = dict(n_videos=4, n_images=3, shots_per_video=(2, 3), shot_seconds=(0.7, 1.0), fps_choices=[8, 12, 24],
             frame_sizes=[(128, 72), (96, 96), (72, 128)], image_sizes=[(96, 64)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("raw")
    return root, synthesize(root, SynthConfig(seed=5, **SMALL))


def _run(source: str, out: Path, **overrides) -> dict:
    cfg = IngestConfig(source=source, **overrides)
    ctx = StageContext(name="data.ingest", profile="tiny", cfg=cfg, workspace=out.parent, out=out,
                       inputs={"raw": source}, checkpoint_dir=out.parent / "ckpt", tracker=NoopTracker())
    return ingest(ctx)


def test_ingest_accounts_for_every_file(corpus, tmp_path):
    root, gt = corpus
    metrics = _run(str(root), tmp_path / "out")
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    n_good, n_bad = len(gt["videos"]) + len(gt["images"]), len(gt["bad_files"])
    sidecars = n_good  # one caption .txt per good file, plus ground_truth.json
    assert summary["ingested"] == summary["accepted"] + summary["quarantined"] == n_good + n_bad
    assert (summary["accepted"], summary["quarantined"], summary["ignored"]) == (n_good, n_bad, sidecars + 1)
    assert summary["by_kind"] == {k: sum(b["kind"] == k for b in gt["bad_files"]) for k in QUARANTINE_KINDS}
    assert metrics == {"ingest/accepted": n_good, "ingest/quarantined": n_bad, "ingest/ingested": n_good + n_bad,
                       "ingest/ignored": sidecars + 1}


def test_planted_bad_files_quarantined_with_kind_and_name(corpus, tmp_path):
    root, gt = corpus
    _run(str(root), tmp_path / "out")
    q = pd.read_parquet(tmp_path / "out/quarantine.parquet")
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    assert dict(zip(q["relpath"], q["error_kind"])) == {b["path"]: b["kind"] for b in gt["bad_files"]}
    for row in q.itertuples():
        assert row.error.startswith(str(root / row.relpath) + ": "), row.error
        assert row.path == str(root / row.relpath)
        assert row.size_bytes == (root / row.relpath).stat().st_size and len(row.sha256) == 64


def test_metadata_equals_ground_truth(corpus, tmp_path):
    root, gt = corpus
    _run(str(root), tmp_path / "out")
    table = pq.read_table(tmp_path / "out/metadata.parquet")
    assert table.schema.names == list(METADATA_COLUMNS)
    assert [str(t) for t in table.schema.types] == [
        {"string": "string", "int64": "int64", "float64": "double"}[k] for k in METADATA_COLUMNS.values()]
    df = table.to_pandas().set_index("relpath")
    assert list(df.index) == sorted(df.index) and df["id"].is_unique
    for video in gt["videos"]:
        row = df.loc[video["path"]]
        assert (row.media, row.num_frames, row.fps, row.width, row.height, row.codec) == (
            "video", video["num_frames"], video["fps"], video["width"], video["height"], "h264")
        assert row.text == video["caption"] and " Then " in row.text
        assert row.aspect_ratio == video["height"] / video["width"]
        assert row.resolution == video["height"] * video["width"]
        assert row.duration == pytest.approx(video["num_frames"] / video["fps"])
    for image in gt["images"]:
        row = df.loc[image["path"]]
        assert (row.media, row.num_frames, row.fps, row.width, row.height, row.text) == (
            "image", 1, 120.0, image["width"], image["height"], image["caption"])


def test_csv_has_open_sora_columns_first(corpus, tmp_path):
    root, _ = corpus
    _run(str(root), tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out/metadata.csv")
    rest = [c for c in METADATA_COLUMNS if c not in OPENSORA_COLUMNS]
    assert list(csv.columns) == OPENSORA_COLUMNS + rest
    assert list(csv.columns[:8]) == ["path", "text", "num_frames", "height", "width", "aspect_ratio", "fps",
                                     "resolution"]
    assert csv["num_frames"].tolist() == pd.read_parquet(tmp_path / "out/metadata.parquet")["num_frames"].tolist()


def test_rerun_is_byte_identical(corpus, tmp_path):
    root, _ = corpus
    _run(str(root), tmp_path / "a", workers=2)
    _run(str(root), tmp_path / "b", workers=1)
    for name in ("metadata.parquet", "metadata.csv", "quarantine.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_captions_csv_overrides_sidecars(corpus, tmp_path):
    root, gt = corpus
    raw = tmp_path / "raw"
    shutil.copytree(root, raw)
    first, second = gt["videos"][0]["path"], gt["videos"][1]["path"]
    # one path relative to the source, one absolute as in an Open-Sora table
    pd.DataFrame({"path": [first, str(raw / second)], "text": ["a caption from the table", "absolute"]}).to_csv(
        raw / "captions.csv", index=False)
    (raw / f"{first}.txt").unlink()
    (raw / "images" / "image_000.txt").write_text("stem sidecar\n")  # <stem>.txt is found too
    (raw / f"{gt['images'][0]['path']}.txt").unlink()
    _run(str(raw), tmp_path / "out")
    df = pd.read_parquet(tmp_path / "out/metadata.parquet").set_index("relpath")
    assert df.loc[first, "text"] == "a caption from the table"
    assert df.loc[second, "text"] == "absolute"  # the table wins over the sidecar
    assert df.loc[gt["images"][0]["path"], "text"] == "stem sidecar"
    # sidecars (one video's removed) + ground_truth.json + captions.csv
    ignored = (len(gt["videos"]) - 1) + len(gt["images"]) + 2
    assert json.loads((tmp_path / "out/summary.json").read_text())["ignored"] == ignored


def test_fsspec_source_gives_the_same_rows(corpus, tmp_path):
    root, gt = corpus
    fs = fsspec.filesystem("memory")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            fs.pipe(f"/ingest-test/{path.relative_to(root).as_posix()}", path.read_bytes())
    try:
        _run("memory://ingest-test", tmp_path / "remote")
    finally:
        fs.rm("/ingest-test", recursive=True)
    _run(str(root), tmp_path / "local")
    remote = pd.read_parquet(tmp_path / "remote/metadata.parquet")
    local = pd.read_parquet(tmp_path / "local/metadata.parquet")
    assert remote["path"].iloc[0].startswith("memory://ingest-test/")
    pd.testing.assert_frame_equal(remote.drop(columns="path"), local.drop(columns="path"))
    assert len(pd.read_parquet(tmp_path / "remote/quarantine.parquet")) == len(gt["bad_files"])


def test_stage_registration_and_errors(tmp_path):
    spec = REGISTRY["data.ingest"]
    assert (spec.output, spec.config) == ("data/ingest", IngestConfig)
    assert spec.inputs(IngestConfig(source="s3://bucket/raw"), tmp_path) == {"raw": "s3://bucket/raw"}
    assert IngestConfig(video_extensions=["MP4", ".mov"]).video_extensions == [".mp4", ".mov"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _run(str(tmp_path / "nowhere"), tmp_path / "out")
    assert inputs_digest({"b": "2", "a": "1"}) == inputs_digest({"a": "1", "b": "2"})
