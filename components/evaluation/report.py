"""The evaluation report: Markdown and HTML with tables, matplotlib plots and a grid of sample GIFs.

Built from the eval stages' JSON outputs (components.evaluation.results); a stage without outputs is listed as
"not run", a score without a value as "not computed" with its reason. The folder is self-contained
(report.md, report.html, plots/, gifs/) so it can be logged as one MLflow artifact.
"""
from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.evaluation.gate import Decision
from components.evaluation.results import NOT_RUN, StageResult, all_metrics

COMPARE_PLOT = "plots/compare.png"
MAX_COMPARE = 12  # small multiples beyond this stop being readable


@dataclass
class ReportInfo:
    """Who is evaluated: the registered model, its version and where the version's files are."""

    model: str
    version: str | None
    kind: str
    profile: str
    source: str = ""
    champion_version: str | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # run ids, git commit…


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _rows(result: StageResult, champion: dict[str, float]) -> list[list[str]]:
    rows = []
    for name, value in sorted(result.metrics.items()):
        old = champion.get(name)
        delta = "" if old is None else f"{value - old:+.4g}"
        settings = json.dumps(result.settings.get(name, {}), sort_keys=True, default=str)
        rows.append([name, _fmt(value), _fmt(old), delta, settings if settings != "{}" else ""])
    for name, reason in sorted(result.not_computed.items()):
        rows.append([name, "not computed", _fmt(champion.get(name)), "", reason])
    return rows


STAGE_HEADER = ["metric", "candidate", "champion", "Δ", "settings / reason"]
GATE_HEADER = ["metric", "direction", "tolerance", "candidate", "champion", "improvement", "beats"]


def _gate_rows(decision: Decision) -> list[list[str]]:
    return [[c.metric, c.direction, f"{c.tolerance:g}", _fmt(c.candidate), _fmt(c.champion), _fmt(c.improvement),
             "yes" if c.beats else "no"] for c in decision.comparisons]


def plot_compare(metrics: dict[str, float], champion: dict[str, float], path: Path) -> Path | None:
    """One small bar chart per metric (candidate vs champion), since the metrics have unrelated scales."""
    names = sorted(metrics)[:MAX_COMPARE]
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        labels, values = ["candidate"], [metrics[name]]
        if name in champion:
            labels.append("champion")
            values.append(champion[name])
        ax.bar(labels, values, color=["tab:blue", "tab:gray"][: len(values)])
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_series(result: StageResult, path: Path) -> Path | None:
    """Line plot of a stage's numeric lists (loss per timestep, per bucket…), one line each."""
    if not result.series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in sorted(result.series.items()):
        ax.plot(range(len(values)), values, marker="o", markersize=3, label=name)
    ax.set_xlabel("index")
    ax.set_title(result.stage)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _copy_gifs(results: list[StageResult], out: Path) -> list[tuple[str, str]]:
    """Copy every stage's GIFs into gifs/ as <stage>-<name>.gif; returns (relative path, caption) pairs."""
    copied = []
    for result in results:
        if result.status != "ran":
            continue
        for gif in result.gifs:
            rel = f"gifs/{result.stage.replace('.', '_')}-{gif.stem}.gif"
            (out / "gifs").mkdir(parents=True, exist_ok=True)
            shutil.copy2(gif, out / rel)
            copied.append((rel, f"{result.stage}: {gif.stem}"))
    return copied


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in esc])


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(info: ReportInfo, results: list[StageResult], decision: Decision | None,
              plots: dict[str, str], gifs: list[tuple[str, str]]) -> list[tuple[str, str, Any]]:
    """The report as (kind, title, payload) blocks, rendered to Markdown and HTML alike."""
    facts = [["model", info.model], ["version", info.version or "—"], ["kind", info.kind],
             ["profile", info.profile], ["source", info.source or "—"],
             ["champion compared", f"v{info.champion_version}" if info.champion_version else "none"]]
    facts += [[k, v] for k, v in sorted(info.extra.items())]
    blocks: list[tuple[str, str, Any]] = [("table", "Model", (["", ""], facts))]
    if decision is not None:
        blocks.append(("text", "Gate decision", f"**{decision.outcome}** (promote: {decision.promote}): "
                       f"{decision.reason}"))
        if decision.comparisons:
            blocks.append(("table", "", (GATE_HEADER, _gate_rows(decision))))
    if "compare" in plots:
        blocks.append(("image", "Candidate vs champion", plots["compare"]))
    for result in results:
        title = f"{result.stage}"
        if result.status != "ran":
            blocks.append(("text", title, f"{result.status}" + (": no outputs under the workspace"
                                                                 if result.status == NOT_RUN else "")))
            continue
        rows = _rows(result, info.champion_metrics)
        blocks.append(("table", title, (STAGE_HEADER, rows)) if rows else ("text", title, "no scores in its files"))
        if result.errors:
            blocks.append(("text", "", "; ".join(result.errors)))
        if result.stage in plots:
            blocks.append(("image", "", plots[result.stage]))
    if gifs:
        blocks.append(("gifs", "Samples", gifs))
    return blocks


def _markdown(info: ReportInfo, blocks: list[tuple[str, str, Any]]) -> str:
    lines = [f"# Evaluation of {info.model} v{info.version or '?'}", ""]
    for kind, title, payload in blocks:
        if title:
            lines += [f"## {title}", ""]
        if kind == "text":
            lines.append(payload)
        elif kind == "table":
            lines.append(_md_table(*payload))
        elif kind == "image":
            lines.append(f"![{title or payload}]({payload})")
        elif kind == "gifs":
            cells = [f"![{cap}]({rel})<br>{cap}" for rel, cap in payload]
            rows = [cells[i:i + 4] + [""] * (4 - len(cells[i:i + 4])) for i in range(0, len(cells), 4)]
            lines.append(_md_table(["", "", "", ""], rows))
        lines.append("")
    return "\n".join(lines)


CSS = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}"
       "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
       ".grid{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}.grid figure{margin:0}"
       ".grid img{width:100%;image-rendering:pixelated}figcaption{font-size:12px}")


def _html(info: ReportInfo, blocks: list[tuple[str, str, Any]]) -> str:
    title = f"Evaluation of {info.model} v{info.version or '?'}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for kind, heading, payload in blocks:
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if kind == "text":
            parts.append(f"<p>{html.escape(payload).replace('**', '')}</p>")
        elif kind == "table":
            parts.append(_html_table(*payload))
        elif kind == "image":
            parts.append(f"<img src='{html.escape(payload)}' alt='{html.escape(heading or payload)}'>")
        elif kind == "gifs":
            figs = "".join(f"<figure><img src='{html.escape(rel)}' alt='{html.escape(cap)}'>"
                           f"<figcaption>{html.escape(cap)}</figcaption></figure>" for rel, cap in payload)
            parts.append(f"<div class='grid'>{figs}</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: Path, info: ReportInfo, results: list[StageResult], decision: Decision | None = None,
                 tracker: Any = None) -> dict[str, Path]:
    """Write report.md, report.html, plots/ and gifs/ into `out`; log the folder as artifact `report`."""
    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    if plot_compare(all_metrics(results), info.champion_metrics, out / COMPARE_PLOT):
        plots["compare"] = COMPARE_PLOT
    for result in results:
        rel = f"plots/{result.stage.replace('.', '_')}.png"
        if result.status == "ran" and plot_series(result, out / rel):
            plots[result.stage] = rel
    blocks = _sections(info, results, decision, plots, _copy_gifs(results, out))
    paths = {"markdown": out / "report.md", "html": out / "report.html"}
    paths["markdown"].write_text(_markdown(info, blocks))
    paths["html"].write_text(_html(info, blocks))
    if tracker is not None:
        tracker.log_artifact(out, "report")
    return paths
