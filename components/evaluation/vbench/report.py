"""vbench.json, one JSON per dimension with its per-video scores, and the radar + bar chart.

vbench.json follows docs/tracking.md: `scores.<dimension>` records (value + settings, or value null + reason),
`scores.total/quality/semantic` with the official constants (Total only when all 16 dimensions were scored;
Quality or Semantic only when their whole group was), and, when anything is missing, `scores.partial.*`: the
same formula over the dimensions present, clearly labelled partial. Per-dimension files live in dimensions/
(not read by the registry gate: their per-video lists are for people and the MLflow artifact view).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.evaluation.vbench.aggregate import (DIMENSIONS, QUALITY, QUALITY_WEIGHT, SEMANTIC, SEMANTIC_WEIGHT,
                                                    Aggregate, aggregate, bounds, weight)
from components.evaluation.vbench.compute import Outcome
from components.evaluation.vbench.scores import not_computed

MAIN = "vbench.json"
CHART = "vbench_chart.png"
FORMULA = {
    "quality": "sum((raw-Min)/(Max-Min)*w) over the 7 quality dimensions / 6.5 (dynamic_degree w=0.5)",
    "semantic": "sum((raw-Min)/(Max-Min)) over the 9 semantic dimensions / 9",
    "total": f"({QUALITY_WEIGHT:g} Quality + {SEMANTIC_WEIGHT:g} Semantic) / {QUALITY_WEIGHT + SEMANTIC_WEIGHT:g}",
}


def _group_record(name: str, value: float | None, group: tuple[str, ...], agg: Aggregate) -> dict[str, Any]:
    absent = [d for d in group if d in agg.missing]
    if value is None or absent:
        return not_computed(f"needs all of its dimensions; not computed: {', '.join(absent)}",
                            formula=FORMULA[name])
    return {"value": value, "formula": FORMULA[name]}


def scores(outcome: Outcome) -> tuple[dict[str, Any], Aggregate]:
    """The `scores` block: aggregates, partial aggregates when incomplete, and every dimension's record."""
    agg = aggregate({d: r.value for d, r in outcome.results.items()})
    block: dict[str, Any] = {
        "quality": _group_record("quality", agg.quality, QUALITY, agg),
        "semantic": _group_record("semantic", agg.semantic, SEMANTIC, agg),
        "total": _group_record("total", agg.total, DIMENSIONS, agg) if agg.complete else
        not_computed(f"Total needs all 16 dimensions; {len(agg.missing)} not computed: {', '.join(agg.missing)}",
                     formula=FORMULA["total"]),
    }
    if not agg.complete and agg.present:
        block["partial"] = {
            "note": f"PARTIAL: {len(agg.present)} of 16 dimensions; each group divided by the weights of the "
                    "dimensions it has; not comparable to published VBench totals",
            "dimensions": len(agg.present),
            **{k: v for k, v in (("quality", agg.quality), ("semantic", agg.semantic), ("total", agg.total))
               if v is not None},
        }
    for dim in DIMENSIONS:
        low, high = bounds(dim)
        if dim in outcome.results:
            block[dim] = {**outcome.results[dim].record(), "normalized": agg.normalized[dim], "min": low,
                          "max": high, "weight": weight(dim), "seconds": round(outcome.seconds.get(dim, 0.0), 3)}
        elif dim in outcome.not_computed:
            block[dim] = not_computed(outcome.not_computed[dim])
        else:
            block[dim] = not_computed("not requested (dimensions in the stage config)")
    return block, agg


def write_dimension_files(outcome: Outcome, folder: Path) -> list[Path]:
    """dimensions/<name>.json: value, settings and per-video scores of each computed dimension."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for dim, result in outcome.results.items():
        path = folder / f"{dim}.json"
        path.write_text(json.dumps({"dimension": dim, "value": result.value, "settings": result.settings,
                                    "videos": result.per_video}, indent=2) + "\n")
        paths.append(path)
    return paths


def write_chart(block: dict[str, Any], path: Path) -> Path:
    """Radar of (raw - Min)/(Max - Min) per dimension (0 where not computed) beside a bar chart of raw scores."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = {d: block[d]["value"] for d in DIMENSIONS}
    scaled = [0.0 if values[d] is None else block[d]["normalized"] / weight(d) for d in DIMENSIONS]
    fig = Figure(figsize=(13, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    radar = fig.add_subplot(1, 2, 1, projection="polar")
    angles = np.linspace(0, 2 * np.pi, len(DIMENSIONS), endpoint=False)
    closed = np.concatenate([angles, angles[:1]])
    radar.plot(closed, scaled + scaled[:1], color="#2f6db5")
    radar.fill(closed, scaled + scaled[:1], color="#2f6db5", alpha=0.25)
    radar.set_xticks(angles)
    radar.set_xticklabels([d.replace("_", "\n") for d in DIMENSIONS], fontsize=6)
    radar.set_ylim(0, max(1.0, max(scaled)))
    radar.set_title("normalised (raw - Min) / (Max - Min); 0 = not computed", fontsize=8)
    bars = fig.add_subplot(1, 2, 2)
    heights = [0.0 if values[d] is None else values[d] for d in DIMENSIONS]
    colours = ["#bbbbbb" if values[d] is None else ("#2f6db5" if d in QUALITY else "#d0822c") for d in DIMENSIONS]
    bars.barh(range(len(DIMENSIONS)), heights, color=colours)
    for i, d in enumerate(DIMENSIONS):
        bars.annotate("not computed" if values[d] is None else f"{values[d]:.4f}", (heights[i], i),
                      xytext=(3, 0), textcoords="offset points", va="center", fontsize=6)
    bars.set_yticks(range(len(DIMENSIONS)))
    bars.set_yticklabels(DIMENSIONS, fontsize=7)
    bars.invert_yaxis()
    total = block["total"]["value"]
    partial = block.get("partial", {}).get("total")
    title = f"VBench Total {total:.4f}" if total is not None else (
        f"PARTIAL total {partial:.4f} ({block['partial']['dimensions']}/16 dimensions)" if partial is not None
        else "no dimension computed")
    bars.set_title(f"raw scores (blue quality, orange semantic) - {title}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def metrics(block: dict[str, Any], prefix: str = "eval.vbench/") -> dict[str, float]:
    """The numbers to log: computed aggregates and dimensions, partial ones under partial.*."""
    out = {f"{prefix}{k}": block[k]["value"] for k in ("total", "quality", "semantic", *DIMENSIONS)
           if block[k]["value"] is not None}
    for key in ("quality", "semantic", "total", "dimensions"):
        if key in block.get("partial", {}):
            out[f"{prefix}partial.{key}"] = float(block["partial"][key])
    return out
