"""Read what the evaluation stages wrote (JSON under workspace/eval/) into one flat set of named metrics.

Convention for an eval stage's JSON (eval.vae's metrics.json follows it): scores sit under `scores` (or
`metrics`), each either a number or a record {"value": x, ...the settings that produced it}; a record whose
value is null is "not computed" and its `reason` says why. Nested groups without a value (VBench dimensions)
are named with dots. A stage's main file (`metrics.json` or `<short>.json`, e.g. adherence.json) gives
`<stage>/<name>`; any other file of the stage gives `<stage>/<file stem>.<name>`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# stage -> (its output folder under the workspace, the JSON files to read there)
RESULT_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "eval.loss": ("eval/loss", ("*.json",)),
    "eval.vbench": ("eval/vbench", ("*.json",)),
    "eval.adherence": ("eval/adherence", ("adherence.json",)),
    "eval.vae": ("eval/vae", ("metrics.json",)),
}
NOT_RUN = "not run"


@dataclass
class StageResult:
    """One eval stage as the report sees it: its status, scores, not-computed reasons, files and GIFs."""

    stage: str
    status: str  # ran | not run | stale (outputs from an earlier evaluation, left out)
    metrics: dict[str, float] = field(default_factory=dict)  # full names: <stage>/<name>
    not_computed: dict[str, str] = field(default_factory=dict)  # full name -> reason
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # full name -> settings beside the score
    series: dict[str, list[float]] = field(default_factory=dict)  # full name -> numeric list (curves)
    files: list[str] = field(default_factory=list)
    gifs: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scores_node(doc: Any) -> Any:
    if isinstance(doc, dict):
        for key in ("scores", "metrics"):
            if isinstance(doc.get(key), dict):
                return doc[key]
    return doc


def extract(doc: Any, prefix: str, out: StageResult) -> None:
    """Add the scores of one JSON document to `out`, names starting with `prefix` (e.g. 'eval.vae/')."""
    node = _scores_node(doc)
    if not isinstance(node, dict):
        return

    def walk(name: str, value: Any) -> None:
        full = prefix + name
        if _number(value):
            out.metrics[full] = float(value)
        elif isinstance(value, dict) and "value" in value:
            if _number(value["value"]):
                out.metrics[full] = float(value["value"])
            else:
                out.not_computed[full] = str(value.get("reason") or value.get("status") or "not computed")
            out.settings[full] = {k: v for k, v in value.items() if k not in ("value", "status", "reason")}
        elif isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{name}.{key}", sub)
        elif isinstance(value, list) and len(value) >= 2 and all(_number(v) for v in value):
            out.series[full] = [float(v) for v in value]

    for key, value in node.items():
        walk(str(key), value)


def read_stage(ws: Path, stage: str, max_gifs: int = 12) -> StageResult:
    """The result files of one eval stage, or status 'not run' when its folder holds none."""
    folder_name, patterns = RESULT_FILES[stage]
    folder = ws / folder_name
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}) if folder.is_dir() else []
    if not files:
        return StageResult(stage, NOT_RUN)
    result = StageResult(stage, "ran", files=[str(p) for p in files])
    short = stage.split(".", 1)[-1]
    for path in files:
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            result.errors.append(f"{path}: unreadable JSON ({err})")
            continue
        main = path.stem in ("metrics", short)
        extract(doc, f"{stage}/" if main else f"{stage}/{path.stem}.", result)
    result.gifs = sorted(folder.rglob("*.gif"))[:max_gifs]
    return result


def collect(ws: Path, stages: list[str] | None = None, fresh: set[str] | None = None,
            max_gifs: int = 12) -> list[StageResult]:
    """Every known eval stage's result; with `fresh`, outputs of stages not in it are marked stale and emptied.

    A stage that did not run in this evaluation may still have outputs from an earlier model: they must not be
    credited to the version under evaluation.
    """
    out = []
    for stage in stages or list(RESULT_FILES):
        if stage not in RESULT_FILES:
            raise KeyError(f"no result files known for stage {stage!r}; known: {', '.join(RESULT_FILES)}")
        result = read_stage(ws, stage, max_gifs)
        if fresh is not None and stage not in fresh and result.status == "ran":
            result = StageResult(stage, "stale (outputs from an earlier evaluation, left out)", files=result.files)
        out.append(result)
    return out


def all_metrics(results: list[StageResult]) -> dict[str, float]:
    """The metrics of every stage that ran, in one dict keyed by full name."""
    return {name: value for r in results for name, value in r.metrics.items()}
