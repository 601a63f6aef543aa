"""The split report: per video, the boundaries found by rule and where every frame went; totals for MLflow."""
from __future__ import annotations

import os
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

BOUNDARY_RULES = ("scene", "fade", "motion_peak")


def video_entry(row: dict, clips: list[dict], dropped: list[dict], found: dict) -> dict:
    """One video's report: boundaries by rule, clips, dropped ranges and frames by rule, frame accounting."""
    kept = sum(c["num_frames"] for c in clips)
    lost = Counter()
    for d in dropped:
        lost[d["rule"]] += d["end"] - d["start"]
    entry = {
        "path": row["path"], "relpath": row.get("relpath", ""), "media": row["media"],
        "num_frames": found["num_frames"], "clips": len(clips), "frames_kept": kept,
        "boundaries": found["boundaries"],
        "by_rule": {rule: sum(b["rule"] == rule for b in found["boundaries"]) for rule in BOUNDARY_RULES},
        "dropped": dict(sorted(Counter(d["rule"] for d in dropped).items())),
        "dropped_frames": dict(sorted(lost.items())),
    }
    for key in ("error", "note"):
        if key in found:
            entry[key] = found[key]
    if kept + sum(lost.values()) != found["num_frames"]:  # a bug in the split logic, never a bad input
        raise RuntimeError(f"{row['path']}: {kept} kept + {sum(lost.values())} dropped frames != "
                           f"{found['num_frames']} decoded")
    return entry


def summarise(rows: list[dict], results: list[tuple[list[dict], list[dict], dict]]) -> dict[str, Any]:
    """The whole report: {'totals': {...}, 'videos': {video id: entry}}; every input row has an entry."""
    videos = {row["id"]: video_entry(row, *result) for row, result in zip(rows, results)}
    entries = list(videos.values())
    totals: dict[str, Any] = {
        "inputs": len(rows),
        "videos": sum(e["media"] == "video" for e in entries),
        "images": sum(e["media"] == "image" for e in entries),
        "unreadable": sum("error" in e for e in entries),
        "inputs_with_clips": sum(e["clips"] > 0 for e in entries),
        "clips": sum(e["clips"] for e in entries),
        "frames": sum(e["num_frames"] for e in entries),
        "frames_kept": sum(e["frames_kept"] for e in entries),
    }
    for rule in BOUNDARY_RULES:
        totals[f"boundaries_{rule}"] = sum(e["by_rule"][rule] for e in entries)
    dropped, frames = Counter(), Counter()
    for e in entries:
        dropped.update(e["dropped"])
        frames.update(e["dropped_frames"])
    totals.update({f"dropped_{rule}": n for rule, n in sorted(dropped.items())})
    totals.update({f"dropped_frames_{rule}": n for rule, n in sorted(frames.items())})
    return {"totals": totals, "videos": videos}


@contextmanager
def progress(cfg: Any, total: int) -> Iterator[Callable[[Any], Any]]:
    """A rich progress bar (off under pytest or with cfg.progress false); yields advance(result) -> result."""
    columns = (TextColumn("split"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    show = cfg.progress and "PYTEST_CURRENT_TEST" not in os.environ
    with Progress(*columns, disable=not show) as bar:
        task = bar.add_task("split", total=total)

        def advance(result: Any) -> Any:
            bar.advance(task)
            return result

        yield advance
