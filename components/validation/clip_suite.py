"""The expectation suite of clip tables (curate.tier's tier tables), before any training reads them.

build_expectations() in suite.py is the metadata table's: it expects id, sha256, codec, rotation, duration and
size_bytes, which a clip table does not have. Clips get their own small suite here, built from ClipValidateConfig
alone, and run through the same checkpoint, check columns and report (checkpoint.py, checks.py, report.py).
"""
from __future__ import annotations

from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.validation.checkpoint import run_checkpoint
from components.validation.checks import FILE_EXISTS, SIZE_CONSISTENT, add_check_columns
from components.validation.report import build_report
from components.validation.suite import table_expectations

SUITE_NAME = "reelforge.clips"
RANGE_CONSISTENT = "_range_consistent"
CLIP_ID_REGEX = r"^[0-9a-f]{16}-\d{6}-\d{6}$"


class ClipValidateConfig(BaseModel):
    """Thresholds of the clip-table suite (the field names check_columns() shares with ValidateConfig)."""

    model_config = ConfigDict(extra="forbid")
    required_columns: list[str] = Field(default_factory=lambda: [
        "clip_id", "video_id", "path", "text", "media", "start_frame", "end_frame", "num_frames", "fps",
        "height", "width", "aspect_ratio", "resolution"])
    min_rows: int = Field(0, ge=0)  # a tier may be empty on a small corpus; raise for production runs
    min_side: int = Field(16, ge=1)
    max_side: int = Field(8192, ge=1)
    max_fps: float = Field(240.0, gt=0)
    media: list[str] = Field(default_factory=lambda: ["video", "image"])
    require_captions: bool = True  # training reads `text`: an empty caption is a broken sample
    aesthetic_range: tuple[float, float] = (0.0, 10.0)
    aspect_tolerance: float = Field(0.01, ge=0)
    check_files_exist: bool = True
    exists_workers: int = Field(16, ge=1)
    max_examples: int = Field(5, ge=1)


def build_clip_expectations(cfg: ClipValidateConfig, columns: list[str]) -> list[gxe.Expectation]:
    """Expectations for a clip table with these columns (aesthetic ranges only for the aesthetic columns present)."""
    between = gxe.ExpectColumnValuesToBeBetween
    exps = table_expectations(cfg.min_rows, cfg.required_columns)
    exps += [
        gxe.ExpectColumnValuesToBeUnique(column="clip_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="clip_id", regex=CLIP_ID_REGEX),
        gxe.ExpectColumnValuesToBeInSet(column="media", value_set=list(cfg.media)),
        between(column="height", min_value=cfg.min_side, max_value=cfg.max_side),
        between(column="width", min_value=cfg.min_side, max_value=cfg.max_side),
        between(column="num_frames", min_value=1),
        between(column="start_frame", min_value=0),
        between(column="fps", min_value=0, max_value=cfg.max_fps, strict_min=True),
        gxe.ExpectColumnValuesToBeInSet(column=SIZE_CONSISTENT, value_set=[True],
                                        description="resolution = height*width and aspect_ratio = height/width"),
        gxe.ExpectColumnValuesToBeInSet(column=RANGE_CONSISTENT, value_set=[True],
                                        description="num_frames = end_frame - start_frame"),
    ]
    low, high = cfg.aesthetic_range
    exps += [between(column=c, min_value=low, max_value=high, mostly=1.0)
             for c in ("aes", "aes_classical") if c in columns]
    if cfg.require_captions:
        exps.append(gxe.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"))
    if cfg.check_files_exist:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=FILE_EXISTS, value_set=[True],
                                                    description="the source file at `path` exists"))
    return exps


def check_columns(df: pd.DataFrame, cfg: ClipValidateConfig) -> pd.DataFrame:
    """The table with the row number and the computed boolean check columns the suite reads."""
    out = add_check_columns(df, cfg)  # duck-typed: reads check_files_exist, exists_workers, aspect_tolerance
    if {"start_frame", "end_frame", "num_frames"} <= set(out.columns):
        out[RANGE_CONSISTENT] = (out["end_frame"] - out["start_frame"] == out["num_frames"]).fillna(False)
    return out


def validate_clips(df: pd.DataFrame, cfg: ClipValidateConfig, docs_dir: Path, source: str) -> dict:
    """Run the clip suite on df; the report dict of report.build_report (success, failed, examples)."""
    checked = check_columns(df, cfg)
    suite = gx.ExpectationSuite(name=SUITE_NAME, expectations=build_clip_expectations(cfg, list(df.columns)))
    success, results = run_checkpoint(checked, suite, docs_dir, cfg.max_examples)
    return build_report(success, results, checked, source, cfg.max_examples)
