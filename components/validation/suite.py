"""The metadata expectation suite, built from a ValidateConfig alone (check columns come from checks.py)."""
from __future__ import annotations

from collections.abc import Sequence

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from components.validation.checks import FILE_EXISTS, SIZE_CONSISTENT
from components.validation.config import ValidateConfig

SUITE_NAME = "reelforge.metadata"


def table_expectations(min_rows: int, required_columns: Sequence[str]) -> list[gxe.Expectation]:
    """What every suite opens with: enough rows, the required columns present, and none of them null."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
        gxe.ExpectTableColumnsToMatchSet(column_set=list(required_columns), exact_match=False),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in required_columns),
    ]


def build_expectations(cfg: ValidateConfig) -> list[gxe.Expectation]:
    """The expectations in report order: table shape, nulls, identity, categories, ranges, then files."""
    between = gxe.ExpectColumnValuesToBeBetween
    exps = table_expectations(cfg.min_rows, cfg.required_columns)
    exps += [
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeUnique(column="path"),
        gxe.ExpectColumnValuesToMatchRegex(column="id", regex=r"^[0-9a-f]{16}$"),
        gxe.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
        gxe.ExpectColumnValuesToBeInSet(column="media", value_set=list(cfg.media)),
        gxe.ExpectColumnValuesToBeInSet(column="codec", value_set=list(cfg.codecs)),
        gxe.ExpectColumnValuesToBeInSet(column="rotation", value_set=list(cfg.rotations)),
        between(column="height", min_value=cfg.min_side, max_value=cfg.max_side),
        between(column="width", min_value=cfg.min_side, max_value=cfg.max_side),
        between(column="aspect_ratio", min_value=1.0 / cfg.max_aspect, max_value=cfg.max_aspect),
        gxe.ExpectColumnValuesToBeInSet(
            column=SIZE_CONSISTENT, value_set=[True],
            description=f"resolution = height*width and aspect_ratio = height/width (within {cfg.aspect_tolerance})",
        ),
        between(column="num_frames", min_value=1, max_value=cfg.max_frames),
        # an image is one frame; more means the ingest mistook a video container for an image
        between(column="num_frames", min_value=1, max_value=1, row_condition=Column("media") == "image"),
        between(column="fps", min_value=0, max_value=cfg.max_fps, strict_min=True),
        between(column="duration", min_value=0),
        between(column="size_bytes", min_value=1),
    ]
    if cfg.require_captions:
        exps.append(gxe.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"))
    if cfg.check_files_exist:
        exps.append(gxe.ExpectColumnValuesToBeInSet(
            column=FILE_EXISTS, value_set=[True], description="the file at `path` exists (fsspec isfile)",
        ))
    return exps


def build_suite(cfg: ValidateConfig) -> gx.ExpectationSuite:
    """An ExpectationSuite holding build_expectations(cfg), not yet added to any context."""
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=build_expectations(cfg))
