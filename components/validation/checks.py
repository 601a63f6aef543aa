"""Check columns computed before validation: facts pandas cannot read from one column.

Whether a file exists, and whether height/width/aspect_ratio/resolution agree, become boolean columns that a
stock GX expectation checks. A custom GX expectation would need its own metric provider registered process-wide
and would make the same fsspec calls; a column keeps the suite built-in only, so the data docs render it as is.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from components.validation.config import ValidateConfig
from components.workspace import filesystem

ROW = "_row"  # position of the row in the table, so every example names its row
FILE_EXISTS = "_file_exists"
SIZE_CONSISTENT = "_size_consistent"
# what the report shows as the bad value of a check column: the columns it was computed from
CHECK_SOURCES: dict[str, tuple[str, ...]] = {
    FILE_EXISTS: ("path",),
    SIZE_CONSISTENT: ("height", "width", "aspect_ratio", "resolution"),
}


def files_exist(paths: list, workers: int) -> list[bool]:
    """fsspec isfile() for each local path or URI; a null or empty path counts as missing."""

    def one(path) -> bool:
        if not isinstance(path, str) or not path:
            return False
        fs, inner = filesystem(path)
        return bool(fs.isfile(inner))

    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return list(pool.map(one, paths))


def size_consistent(df: pd.DataFrame, tolerance: float) -> pd.Series:
    """resolution == height*width and |aspect_ratio - height/width| <= tolerance (False where any is null)."""
    height, width, aspect, resolution = (
        pd.to_numeric(df[c], errors="coerce") for c in CHECK_SOURCES[SIZE_CONSISTENT]
    )
    ok = (resolution == height * width) & ((aspect - height / width).abs() <= tolerance)
    return ok.fillna(False).astype(bool)


def add_check_columns(df: pd.DataFrame, cfg: ValidateConfig) -> pd.DataFrame:
    """A copy of the table with the row number and the computed boolean check columns."""
    out = df.reset_index(drop=True).copy()
    out[ROW] = range(len(out))
    if cfg.check_files_exist and "path" in out:
        out[FILE_EXISTS] = files_exist(out["path"].tolist(), cfg.exists_workers)
    if all(c in out for c in CHECK_SOURCES[SIZE_CONSISTENT]):
        out[SIZE_CONSISTENT] = size_consistent(out, cfg.aspect_tolerance)
    return out
