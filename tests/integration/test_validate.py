"""Stage data.validate end to end on a 50-row Parquet table with real files: pass, planted failures, data docs."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from components.errors import EXIT_VALIDATION
from components.stage import StageContext
from components.tracking import NoopTracker
from components.validation import ValidationFailed
from components.validation.config import ValidateConfig
from components.validation.validate import validate

pytestmark = pytest.mark.slow
ROWS = 50


def metadata(folder: Path, n: int = ROWS) -> pd.DataFrame:
    """n schema-conform rows (every 10th an image) whose paths are real files."""
    media_dir = folder / "media"
    media_dir.mkdir()
    rows = []
    for i in range(n):
        image = i % 10 == 9
        data = f"clip {i}".encode()
        path = media_dir / f"clip{i:03d}.{'png' if image else 'mp4'}"
        path.write_bytes(data)
        height, width = (48, 64) if i % 2 else (64, 64)
        rows.append({
            "id": hashlib.sha256(path.name.encode()).hexdigest()[:16], "path": str(path), "relpath": path.name,
            "text": f"shape {i}", "media": "image" if image else "video", "num_frames": 1 if image else 24 + i,
            "height": height, "width": width, "aspect_ratio": height / width, "resolution": height * width,
            "fps": 120.0 if image else 24.0, "duration": 0.0 if image else (24 + i) / 24.0,
            "codec": "png" if image else "h264", "rotation": 0, "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    return pd.DataFrame(rows)


def context(ws: Path, table: pd.DataFrame, out: str, **cfg) -> StageContext:
    """A hand-built context whose input is `table` written where data.ingest puts it."""
    config = ValidateConfig(**cfg)
    source = ws / config.metadata
    source.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(source)
    (ws / out).mkdir()
    return StageContext(
        name="data.validate", profile="tiny", cfg=config, workspace=ws, out=ws / out,
        inputs={"metadata": str(source)}, checkpoint_dir=ws / "checkpoints", tracker=NoopTracker(),
    )


def test_good_table_passes_with_report_and_data_docs(tmp_path):
    ctx = context(tmp_path, metadata(tmp_path), "out")
    metrics = validate(ctx)
    assert metrics["validate/rows"] == ROWS and metrics["validate/failed"] == 0
    assert metrics["validate/expectations"] == 35
    report = json.loads((ctx.out / "validation.json").read_text())
    assert report["success"] and report["rows"] == ROWS
    assert all(e["success"] for e in report["results"])
    docs = ctx.out / "data_docs"
    assert (docs / "index.html").is_file()
    assert len(list((docs / "validations").rglob("*.html"))) == 1


def test_report_is_deterministic(tmp_path):
    table = metadata(tmp_path)
    first = context(tmp_path, table, "one")
    validate(first)
    second = context(tmp_path, table, "two")
    validate(second)
    text = (first.out / "validation.json").read_text()
    assert text == (second.out / "validation.json").read_text()
    assert "run_id" not in text and "time" not in text


def test_planted_bad_rows_fail_with_a_readable_summary(tmp_path):
    table = metadata(tmp_path)
    table.loc[4, "id"] = table.loc[3, "id"]  # duplicate id
    table.loc[7, "fps"] = 0.0
    table.loc[12, "num_frames"] = 0
    table.loc[15, "codec"] = "divx"
    table.loc[21, "path"] = str(tmp_path / "media" / "gone.mp4")
    table.loc[30, "sha256"] = "not-a-hash"
    ctx = context(tmp_path, table, "out")
    with pytest.raises(ValidationFailed) as caught:
        validate(ctx)
    err = caught.value
    text = str(err)
    assert err.exit_code == EXIT_VALIDATION
    assert text.startswith(f"metadata validation failed: 6 of 35 expectations failed on {ROWS} rows of ")
    expected = {
        "expect_column_values_to_be_unique column=id": [3, 4],
        "expect_column_values_to_be_between column=fps": [7],
        "expect_column_values_to_be_between column=num_frames (min_value=1.0, max_value=1000000.0)": [12],
        "expect_column_values_to_be_in_set column=codec": [15],
        "expect_column_values_to_be_in_set column=_file_exists": [21],
        "expect_column_values_to_match_regex column=sha256": [30],
    }
    blocks = text.split("\n- ")
    for head, rows in expected.items():
        (block,) = [b for b in blocks if b.startswith(head)]
        for r in rows:
            assert f"row {r}: id={table.id[r]} path={table.path[r]}" in block, (head, r)
    assert "value='divx'" in text and "value='not-a-hash'" in text and "value=0.0" in text
    # the report and data docs are in ctx.out before the raise (and on the exception)
    report = json.loads((ctx.out / "validation.json").read_text())
    assert report == err.report and report["failed"] == 6
    assert (ctx.out / "data_docs" / "index.html").is_file()
    missing = [e for e in report["results"] if e["column"] == "_file_exists"][0]
    assert missing["examples"] == [{"row": 21, "id": table.id[21], "path": table.path[21], "value": table.path[21]}]
