"""The curation report: counts per step (Open-Sora-Plan's table), per rule and per tier: report.json, report.md."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from components.curation.accounting import STEPS
from components.curation.tier_rules import RULES, TIERS


def _row(step: str, videos: int | None, clips: int | None, note: str = "") -> dict[str, Any]:
    return {"step": step, "videos": videos, "clips": clips, "note": note}


def step_counts(videos: pd.DataFrame, decided: pd.DataFrame, split_dropped: int,
                enabled: list[str]) -> list[dict[str, Any]]:
    """Rows of the counts table: ingest, split, quarantines, what is left after each rule, each tier."""
    q = videos[videos["status"] == "quarantined"]
    at = {step: q[q["step"] == step] for step in STEPS}
    ingested = len(videos)
    rows = [_row("ingested", ingested, None),
            _row("quarantined at ingest", len(at["ingest"]), None),
            _row("accepted", ingested - len(at["ingest"]), None),
            _row("quarantined at split", len(at["split"]), None),
            _row("clips after split", int((videos["clips"] > 0).sum()), int(videos["clips"].sum()),
                 f"{split_dropped} segments dropped by the split's own rules")]
    for step in ("score", "caption"):
        rows.append(_row(f"quarantined at {step}", len(at[step]), int(at[step]["clips"].sum())))
    rows.append(_row("scored and captioned", int(decided["video_id"].nunique()), len(decided)))
    remaining = decided
    for rule in [r for r in RULES if r in enabled]:
        dropped = remaining["drop_rule"] == rule
        remaining = remaining[~dropped]
        rows.append(_row(f"after {rule}", int(remaining["video_id"].nunique()), len(remaining),
                         f"-{int(dropped.sum())} clips"))
    for tier in TIERS:
        members = decided[decided[f"in_{tier}"]]
        rows.append(_row(tier, int(members["video_id"].nunique()), len(members)))
    return rows


def rule_counts(decided: pd.DataFrame) -> list[dict[str, Any]]:
    """Per rule: clips it dropped first, and clips failing it at all (a clip may fail several)."""
    return [{"rule": rule, "dropped_first": int((decided["drop_rule"] == rule).sum()),
             "failing": int(decided["failed_rules"].map(lambda rules: rule in rules).sum())} for rule in RULES]


def score_summary(decided: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, float | None]]:
    """min / median / mean / max of each numeric score column over every decided clip."""
    out = {}
    for column in columns:
        values = pd.to_numeric(decided[column], errors="coerce").dropna()
        out[column] = {k: (None if values.empty else float(getattr(values, k)()))
                       for k in ("min", "median", "mean", "max")} | {"count": int(len(values))}
    return out


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]


def markdown(report: dict[str, Any]) -> str:
    """report.md: the counts table, rules, tiers, score summary, plots and quarantined videos."""
    lines = ["# Curation report", "", f"Profile `{report['profile']}`; aesthetic score used for tiers: "
             f"`{report['aesthetic']['method']}` (tier 2 ≥ {report['aesthetic']['tier2']}, tier 3 ≥ "
             f"{report['aesthetic']['tier3']} and short side ≥ {report['aesthetic']['tier3_min_short_side']}).",
             "", "## Counts per step", ""]
    lines += _table(report["steps"], ["step", "videos", "clips", "note"])
    totals = report["accounting"]
    lines += ["", f"Accounting: {totals['kept']} kept + {totals['filtered']} filtered + {totals['quarantined']} "
              f"quarantined = {totals['ingested']} ingested videos.", "", "## Rules (fixed order)", ""]
    enabled = [r | {"threshold": report["thresholds"][r["rule"]]} for r in report["rules"]
               if r["rule"] in report["thresholds"]]
    lines += _table(enabled, ["rule", "threshold", "dropped_first", "failing"])
    lines += ["", "## Scores", ""]
    lines += _table([{"score": k, **v} for k, v in report["scores"].items()],
                    ["score", "count", "min", "median", "mean", "max"])
    if report["plots"]:
        lines += ["", "## Distributions", ""] + [f"![{p}]({p})" for p in report["plots"]]
    quarantined = report["quarantined"]
    if quarantined:
        lines += ["", "## Quarantined videos", ""]
        lines += _table(quarantined, ["video_id", "step", "reason"])
    filtered = report["filtered_videos"]
    if filtered:
        lines += ["", "## Filtered videos (every clip dropped)", ""]
        lines += _table(filtered, ["video_id", "step", "reason"])
    return "\n".join(lines) + "\n"
