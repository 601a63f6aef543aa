"""The validation report: a deterministic dict for validation.json and the readable failure summary."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from components.errors import EXIT_VALIDATION, StageError
from components.validation.checks import CHECK_SOURCES, ROW

REPORT_FILES = "validation.json and data_docs/index.html"


class ValidationFailed(StageError):
    """The metadata failed its expectations; the message names each failed one with example rows."""

    exit_code = EXIT_VALIDATION

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report or {}


def plain(value: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN/NA as None, containers recursed."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _cell(df: pd.DataFrame, row: int, column: str) -> Any:
    return plain(df.at[row, column]) if column in df else None


def _bad_value(df: pd.DataFrame, row: int, column: str | None) -> Any:
    """The offending value; for a computed check column, the source columns it was computed from."""
    if column in CHECK_SOURCES:
        sources = CHECK_SOURCES[column]
        if len(sources) == 1:
            return _cell(df, row, sources[0])
        return {c: _cell(df, row, c) for c in sources}
    return _cell(df, row, column) if column else None


def _error(result: dict) -> str | None:
    """The first exception message GX caught for this expectation, or None."""
    info = result.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception", True) and entry.get("exception_message"):
            return str(entry["exception_message"]).strip().splitlines()[0].removeprefix("Error: ")
    return None


def expectation_entry(result: dict, df: pd.DataFrame, max_examples: int) -> dict:
    """One expectation's outcome: type, column, kwargs, success, unexpected counts and example rows."""
    config = result["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    column = kwargs.get("column")
    found = result.get("result") or {}
    rows = [i[ROW] for i in found.get("partial_unexpected_index_list") or [] if isinstance(i, dict) and ROW in i]
    examples = [
        {"row": int(r), "id": _cell(df, r, "id"), "path": _cell(df, r, "path"), "value": _bad_value(df, r, column)}
        for r in rows[:max_examples]
    ]
    entry = {
        "expectation": config["type"],
        "column": column,
        "kwargs": plain(kwargs),
        "description": config.get("description"),
        "success": bool(result["success"]),
        "unexpected_count": plain(found.get("unexpected_count")),
        "unexpected_percent": plain(found.get("unexpected_percent")),
        "observed_value": plain(found.get("observed_value")),
        "missing": plain((found.get("details") or {}).get("mismatched", {}).get("missing")),
        "error": _error(result),
        "examples": examples,
    }
    return {k: v for k, v in entry.items() if v is not None or k in ("column", "examples")}


def build_report(success: bool, results: list[dict], df: pd.DataFrame, source: str, max_examples: int) -> dict:
    """The whole report; deterministic (no run ids or timestamps) so equal tables give equal files."""
    entries = [expectation_entry(r, df, max_examples) for r in results]
    failed = sum(not e["success"] for e in entries)
    return {
        "success": bool(success) and failed == 0,
        "source": source,
        "rows": len(df),
        "expectations": len(entries),
        "failed": failed,
        "results": entries,
    }


def _value_text(key: str, value: Any) -> str:
    """kwargs as written in the suite; a row condition as `column op value` rather than its JSON form."""
    if key == "row_condition" and isinstance(value, dict) and "column" in value and "operator" in value:
        return f"where {value['column'].get('name')} {value['operator']} {value.get('parameter')!r}"
    return f"{key}={value!r}"


def _kwargs_text(kwargs: dict) -> str:
    return ", ".join(_value_text(k, v) for k, v in kwargs.items() if k != "column")


def _head(entry: dict, rows: int) -> str:
    """`- type column=c (kwargs) [description]: what went wrong`."""
    where = f" column={entry['column']}" if entry["column"] else ""
    kwargs = _kwargs_text(entry["kwargs"])
    head = f"- {entry['expectation']}{where}" + (f" ({kwargs})" if kwargs else "")
    if "description" in entry:
        head += f" [{entry['description']}]"
    if "error" in entry:
        return head + f": error: {entry['error']}"
    if entry.get("missing"):
        return head + f": missing columns {entry['missing']}"
    if entry.get("unexpected_count") is not None:
        return head + f": {entry['unexpected_count']} of {rows} rows unexpected"
    return head + f": observed {entry.get('observed_value')!r}"


def summary(report: dict) -> str:
    """A readable failure message: each failed expectation (type, column, kwargs) with its example rows."""
    lines = [
        f"metadata validation failed: {report['failed']} of {report['expectations']} expectations failed "
        f"on {report['rows']} rows of {report['source']}"
    ]
    missing = {c for e in report["results"] for c in e.get("missing") or []}
    # a missing column makes every expectation on it error out; one line says so instead of one per expectation
    skipped = [
        e for e in report["results"]
        if "error" in e and (e["column"] in missing or missing & set(CHECK_SOURCES.get(e["column"], ())))
    ]
    for entry in report["results"]:
        if entry["success"] or entry in skipped:
            continue
        lines.append(_head(entry, report["rows"]))
        lines += [
            f"    row {ex['row']}: id={ex['id']} path={ex['path']} value={ex['value']!r}" for ex in entry["examples"]
        ]
    if skipped:
        lines.append(f"- {len(skipped)} more expectations could not run on the missing columns")
    lines.append(f"full report: {REPORT_FILES} in the stage output, also logged to the MLflow run")
    return "\n".join(lines)
