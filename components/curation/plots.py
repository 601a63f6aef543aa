"""Score distribution plots for the curation report: one PNG histogram per score, kept vs dropped, with thresholds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def histogram(values_kept: np.ndarray, values_dropped: np.ndarray, title: str, lines: dict[str, float],
              path: Path, bins: int) -> Path:
    """A stacked histogram of kept and dropped clips with a dashed line per threshold, saved as PNG."""
    # the Agg canvas straight from matplotlib.figure: no pyplot, so no global backend or figure state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    both = np.concatenate([values_kept, values_dropped])
    edges = np.histogram_bin_edges(both if both.size else np.array([0.0, 1.0]), bins=bins)
    ax.hist([values_kept, values_dropped], bins=edges, stacked=True, label=["kept", "dropped"],
            color=["#4c9f70", "#c9594c"])
    for name, value in lines.items():
        ax.axvline(value, color="black", linestyle="--", linewidth=1)
        ax.annotate(name, (value, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                    fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(title, fontsize=8)
    ax.set_ylabel("clips", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def score_plots(decided: pd.DataFrame, columns: dict[str, dict[str, float]], folder: Path, bins: int) -> list[Path]:
    """One histogram per score column present in `decided`; columns maps column -> {threshold name: value}."""
    kept = decided["drop_rule"] == ""
    paths = []
    for column, lines in columns.items():
        if column not in decided:
            continue
        values = pd.to_numeric(decided[column], errors="coerce")
        ok = values.notna()
        if not ok.any():
            continue
        paths.append(histogram(values[ok & kept].to_numpy(float), values[ok & ~kept].to_numpy(float), column,
                               lines, folder / f"{column}.png", bins))
    return paths
