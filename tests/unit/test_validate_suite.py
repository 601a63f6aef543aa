"""The metadata suite, its check columns and the failure report (small tables, real GX runs)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from components.data.schema import KNOWN_CODECS, METADATA_COLUMNS
from components.errors import EXIT_VALIDATION
from components.stage import REGISTRY
from components.validation import ValidationFailed
from components.validation.checkpoint import run_checkpoint
from components.validation.checks import FILE_EXISTS, SIZE_CONSISTENT, add_check_columns, files_exist, size_consistent
from components.validation.config import ValidateConfig
from components.validation.report import build_report, plain, summary
from components.validation.suite import build_expectations, build_suite
from components.validation.validate import validate


def row(folder: Path, i: int, media: str = "video") -> dict:
    """One schema-conform row whose path is a real file."""
    data = f"clip {i}".encode()
    path = folder / f"clip{i}.{'png' if media == 'image' else 'mp4'}"
    path.write_bytes(data)
    return {
        "id": hashlib.sha256(path.name.encode()).hexdigest()[:16], "path": str(path), "relpath": path.name,
        "text": f"a red square {i}", "media": media, "num_frames": 1 if media == "image" else 48,
        "height": 64, "width": 96, "aspect_ratio": 64 / 96, "resolution": 64 * 96,
        "fps": 120.0 if media == "image" else 24.0, "duration": 0.0 if media == "image" else 2.0,
        "codec": "png" if media == "image" else "h264", "rotation": 0, "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def table(folder: Path, n: int = 4) -> pd.DataFrame:
    return pd.DataFrame([row(folder, i, "image" if i == n - 1 else "video") for i in range(n)])


def validate_df(df: pd.DataFrame, cfg: ValidateConfig, docs: Path) -> dict:
    checked = add_check_columns(df, cfg)
    success, results = run_checkpoint(checked, build_suite(cfg), docs, cfg.max_examples)
    return build_report(success, results, checked, "meta.parquet", cfg.max_examples)


def failed(report: dict) -> dict[tuple[str, str | None], dict]:
    return {(e["expectation"], e["column"]): e for e in report["results"] if not e["success"]}


def test_config_rejects_inverted_sides_and_unknown_fields():
    with pytest.raises(ValidationError, match=r"min_side \(900\) must not exceed max_side \(800\)"):
        ValidateConfig(min_side=900, max_side=800)
    with pytest.raises(ValidationError, match="max_fsp"):
        ValidateConfig(max_fsp=30)


def test_stage_is_registered_with_metadata_input_under_the_workspace(tmp_path):
    spec = REGISTRY["data.validate"]
    assert spec.fn is validate and spec.output == "data/validate" and spec.config is ValidateConfig
    assert spec.inputs(ValidateConfig(), tmp_path) == {"metadata": str(tmp_path / "data/ingest/metadata.parquet")}
    remote = ValidateConfig(metadata="s3://bucket/meta.parquet")
    assert spec.inputs(remote, tmp_path) == {"metadata": "s3://bucket/meta.parquet"}


def test_default_suite_covers_the_schema():
    exps = build_expectations(ValidateConfig())
    kinds = [(e.expectation_type, getattr(e, "column", None)) for e in exps]
    assert len(exps) == 2 + len(METADATA_COLUMNS) + 17
    assert {c for k, c in kinds if k == "expect_column_values_to_not_be_null"} == set(METADATA_COLUMNS)
    assert {c for k, c in kinds if k == "expect_column_values_to_be_unique"} == {"id", "path"}
    by_col = {(k, c): e for (k, c), e in zip(kinds, exps)}
    fps = by_col[("expect_column_values_to_be_between", "fps")]
    assert (fps.min_value, fps.max_value, fps.strict_min) == (0, 240.0, True)
    assert by_col[("expect_column_values_to_be_in_set", "codec")].value_set == list(KNOWN_CODECS)
    assert by_col[("expect_column_values_to_match_regex", "sha256")].regex == r"^[0-9a-f]{64}$"
    assert kinds[-1] == ("expect_column_values_to_be_in_set", FILE_EXISTS)
    assert ("expect_column_values_to_match_regex", "text") not in kinds


def test_switches_add_and_remove_expectations():
    kinds = [(e.expectation_type, getattr(e, "column", None))
             for e in build_expectations(ValidateConfig(require_captions=True, check_files_exist=False))]
    assert ("expect_column_values_to_match_regex", "text") in kinds
    assert ("expect_column_values_to_be_in_set", FILE_EXISTS) not in kinds


def test_files_exist_local_memory_uri_and_blanks(tmp_path):
    real = tmp_path / "a.mp4"
    real.write_bytes(b"x")
    fsspec.filesystem("memory").pipe("/bucket/b.mp4", b"y")
    paths = [str(real), str(tmp_path / "gone.mp4"), "memory://bucket/b.mp4", "memory://bucket/none.mp4", None, "",
             str(tmp_path)]  # a folder is not a file
    assert files_exist(paths, workers=4) == [True, False, True, False, False, False, False]


def test_size_consistent_closed_form():
    df = pd.DataFrame({
        "height": [64, 64, 64, 64, None], "width": [96, 96, 96, 96, 96],
        "aspect_ratio": [0.67, 0.6667, 0.69, 0.6667, 0.6667],  # 0.67 is 64/96 rounded to 2 decimals
        "resolution": [6144, 6144, 6144, 6000, 6144],
    })
    assert size_consistent(df, tolerance=0.01).tolist() == [True, True, False, False, False]


def test_check_columns_number_rows_from_zero(tmp_path):
    df = table(tmp_path, 3).set_axis([10, 20, 30])
    out = add_check_columns(df, ValidateConfig())
    assert out["_row"].tolist() == [0, 1, 2]
    assert out[FILE_EXISTS].tolist() == [True, True, True] and out[SIZE_CONSISTENT].tolist() == [True, True, True]


def test_good_table_passes(tmp_path):
    report = validate_df(table(tmp_path), ValidateConfig(require_captions=True), tmp_path / "docs")
    assert report["success"] and report["failed"] == 0 and report["rows"] == 4
    assert report["expectations"] == 36
    assert (tmp_path / "docs" / "index.html").is_file()


def test_failures_report_rows_ids_paths_and_values(tmp_path):
    df = table(tmp_path, 5)
    df.loc[1, "fps"] = 0.0
    df.loc[2, "text"] = "   "
    df.loc[4, "num_frames"] = 3  # an image with 3 frames
    df.loc[3, "resolution"] = 1
    cfg = ValidateConfig(require_captions=True, max_examples=1)
    report = validate_df(df, cfg, tmp_path / "docs")
    bad = failed(report)
    assert set(bad) == {
        ("expect_column_values_to_be_between", "fps"), ("expect_column_values_to_match_regex", "text"),
        ("expect_column_values_to_be_between", "num_frames"), ("expect_column_values_to_be_in_set", SIZE_CONSISTENT),
    }
    fps = bad[("expect_column_values_to_be_between", "fps")]
    assert fps["unexpected_count"] == 1
    assert fps["examples"] == [{"row": 1, "id": df.id[1], "path": df.path[1], "value": 0.0}]
    frames = bad[("expect_column_values_to_be_between", "num_frames")]
    assert frames["kwargs"]["row_condition"]["parameter"] == "image" and frames["examples"][0]["value"] == 3
    size = bad[("expect_column_values_to_be_in_set", SIZE_CONSISTENT)]["examples"][0]
    assert size["value"] == {"height": 64, "width": 96, "aspect_ratio": 64 / 96, "resolution": 1}
    text = summary(report)
    assert text.startswith("metadata validation failed: 4 of 36 expectations failed on 5 rows of meta.parquet")
    assert "- expect_column_values_to_be_between column=fps (min_value=0.0, max_value=240.0, strict_min=True)" in text
    assert f"row 1: id={df.id[1]} path={df.path[1]} value=0.0" in text
    assert "(where media == 'image', min_value=1.0, max_value=1.0): 1 of 5 rows unexpected" in text
    json.dumps(report, allow_nan=False)  # plain JSON: no numpy scalars, no NaN


def test_missing_columns_named_once(tmp_path):
    df = table(tmp_path, 2).drop(columns=["fps", "codec"])
    report = validate_df(df, ValidateConfig(), tmp_path / "docs")
    text = summary(report)
    assert "missing columns ['codec', 'fps']" in text
    assert f"- {report['failed'] - 1} more expectations could not run on the missing columns" in text
    errors = [e for e in report["results"] if "error" in e]
    assert {e["column"] for e in errors} == {"fps", "codec"}
    assert 'The column "fps" in BatchData does not exist.' in {e["error"] for e in errors}


def test_plain_values_and_error_exit_code():
    assert plain({"a": np.int64(3), "b": [np.float64("nan"), np.bool_(True)], "c": pd.NA}) == {
        "a": 3, "b": [None, True], "c": None}
    err = ValidationFailed("x", {"failed": 1})
    assert err.exit_code == EXIT_VALIDATION and err.report == {"failed": 1}
