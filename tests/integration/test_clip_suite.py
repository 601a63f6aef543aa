"""The clip-table GX suite that tier tables pass before use: a good table passes, planted faults are named."""
from __future__ import annotations

import pandas as pd
import pytest

from components.validation.clip_suite import RANGE_CONSISTENT, ClipValidateConfig, validate_clips

pytestmark = pytest.mark.slow


def clips(folder, n: int = 6) -> pd.DataFrame:
    video = folder / "v.mp4"
    video.write_bytes(b"not decoded here")
    rows = [{"clip_id": f"{'a' * 16}-{i * 10:06d}-{i * 10 + 8:06d}", "video_id": "a" * 16, "path": str(video),
             "text": f"a red circle {i}.", "media": "video", "start_frame": i * 10, "end_frame": i * 10 + 8,
             "num_frames": 8, "fps": 24.0, "height": 72, "width": 128, "aspect_ratio": 72 / 128,
             "resolution": 72 * 128, "aes_classical": 5.0} for i in range(n)]
    return pd.DataFrame(rows)


def failed(report: dict) -> dict:
    return {(e["expectation"], e["column"]): e for e in report["results"] if not e["success"]}


def test_good_clip_table_passes(tmp_path):
    report = validate_clips(clips(tmp_path), ClipValidateConfig(min_rows=1), tmp_path / "docs", "tier1.parquet")
    assert report["success"] and report["rows"] == 6 and report["failed"] == 0
    assert (tmp_path / "docs" / "index.html").is_file()


def test_planted_faults_are_named_with_their_rows(tmp_path):
    table = clips(tmp_path)
    table.loc[1, "clip_id"] = table.loc[0, "clip_id"]  # a duplicate id
    table.loc[2, "num_frames"] = 9  # disagrees with its range
    table.loc[3, "text"] = " "  # no caption
    table.loc[4, "path"] = str(tmp_path / "gone.mp4")
    table.loc[5, "aes_classical"] = 11.0
    report = validate_clips(table, ClipValidateConfig(), tmp_path / "docs", "tier1.parquet")
    bad = failed(report)
    assert set(bad) == {("expect_column_values_to_be_unique", "clip_id"),
                        ("expect_column_values_to_be_in_set", RANGE_CONSISTENT),
                        ("expect_column_values_to_match_regex", "text"),
                        ("expect_column_values_to_be_in_set", "_file_exists"),
                        ("expect_column_values_to_be_between", "aes_classical")}
    assert [e["row"] for e in bad[("expect_column_values_to_be_in_set", RANGE_CONSISTENT)]["examples"]] == [2]
    assert bad[("expect_column_values_to_be_in_set", "_file_exists")]["examples"][0]["path"].endswith("gone.mp4")
