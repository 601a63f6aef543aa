"""The registry gate: a candidate takes the `champion` alias only when its evaluation beats the champion's.

Each gate metric has a direction (higher or lower is better) and a tolerance: the candidate beats the champion
on a metric when it is better by more than the tolerance (a tie keeps the champion). Rule `first`: the first
listed metric that the candidate and the champion both have decides (later entries are fallbacks for profiles
that cannot compute the earlier ones, e.g. rFVD without I3D weights). Rule `all`: every listed metric must be
present on both and the candidate must beat the champion on each. A candidate missing the metric is never
promoted; the first version with the metric and no champion becomes champion. Decision and numbers are
written on the version as tags and in its description.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components import registry


class GateMetric(BaseModel):
    """One compared metric, named as in the evaluation run (`<stage>/<name>`, e.g. eval.vae/psnr)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    direction: Literal["higher", "lower"]
    tolerance: float = Field(0.0, ge=0)  # the candidate must be better by more than this


class GateConfig(BaseModel):
    """Which metrics decide a promotion and how they combine."""

    model_config = ConfigDict(extra="forbid")
    rule: Literal["first", "all"] = "first"
    metrics: list[GateMetric] = Field(min_length=1)


@dataclass
class Comparison:
    """One metric of the candidate against the champion; `improvement` > 0 means the candidate is better."""

    metric: str
    direction: str
    tolerance: float
    candidate: float | None
    champion: float | None
    improvement: float | None = None
    beats: bool = False


@dataclass
class Decision:
    """The gate's verdict on one candidate version."""

    promote: bool
    outcome: str  # promoted | first_champion | kept_champion | missing_metric | already_champion
    reason: str
    champion_version: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(metric: GateMetric, candidate: float, champion: float) -> Comparison:
    """Candidate vs champion on one metric, with its direction and tolerance."""
    improvement = candidate - champion if metric.direction == "higher" else champion - candidate
    return Comparison(metric.name, metric.direction, metric.tolerance, candidate, champion, improvement,
                      improvement > metric.tolerance)


def _describe(c: Comparison) -> str:
    verdict = "beats" if c.beats else "does not beat"
    return (f"{c.metric} {c.candidate:.6g} {verdict} {c.champion:.6g} ({c.direction} is better; "
            f"improvement {c.improvement:.6g}, needs more than {c.tolerance:g})")


def decide(cfg: GateConfig, candidate: dict[str, float], champion: dict[str, float] | None,
           champion_version: str | None = None) -> Decision:
    """The verdict for a candidate's metrics against the champion's (None: there is no champion yet)."""
    names = [m.name for m in cfg.metrics]
    have = [m for m in cfg.metrics if candidate.get(m.name) is not None]
    if cfg.rule == "all" and len(have) < len(cfg.metrics):
        missing = [n for n in names if candidate.get(n) is None]
        return Decision(False, "missing_metric", f"candidate has no {', '.join(missing)} (rule all needs {names})",
                        champion_version)
    if not have:
        return Decision(False, "missing_metric", f"candidate has none of the gate metrics {names}", champion_version)
    if champion is None:
        first = have[0]
        return Decision(True, "first_champion", f"no champion yet; first version with {first.name} "
                        f"({candidate[first.name]:.6g}) becomes champion", None,
                        [Comparison(m.name, m.direction, m.tolerance, candidate[m.name], None) for m in have])
    both = [m for m in have if champion.get(m.name) is not None]
    if cfg.rule == "all" and len(both) < len(cfg.metrics):
        missing = [n for n in names if champion.get(n) is None]
        return Decision(False, "missing_metric", f"champion v{champion_version} has no {', '.join(missing)} "
                        f"(rule all needs {names}); promote by hand if intended", champion_version)
    if not both:
        return Decision(False, "missing_metric", f"champion v{champion_version} shares none of the gate metrics "
                        f"the candidate has ({[m.name for m in have]}); promote by hand if intended", champion_version)
    used = both if cfg.rule == "all" else both[:1]
    comparisons = [compare(m, candidate[m.name], champion[m.name]) for m in used]
    wins = all(c.beats for c in comparisons)
    text = "; ".join(_describe(c) for c in comparisons)
    return Decision(wins, "promoted" if wins else "kept_champion",
                    f"{text} (champion v{champion_version})", champion_version, comparisons)


def decision_tags(decision: Decision, eval_run_id: str | None) -> dict[str, str]:
    """What the version records about its gate: outcome, reason, the numbers, when and by which run."""
    tags = {"reelforge.gate.outcome": decision.outcome, "reelforge.gate.promoted": str(decision.promote).lower(),
            "reelforge.gate.reason": decision.reason[:5000],
            "reelforge.gate.champion_version": decision.champion_version or "",
            "reelforge.gate.time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reelforge.gate.eval_run_id": eval_run_id or ""}
    for c in decision.comparisons:
        tags[f"reelforge.gate.candidate.{c.metric}"] = "" if c.candidate is None else f"{c.candidate:.10g}"
        tags[f"reelforge.gate.champion.{c.metric}"] = "" if c.champion is None else f"{c.champion:.10g}"
    return tags


def apply(name: str, version: str, metrics: dict[str, float], cfg: GateConfig,
          eval_run_id: str | None = None) -> Decision:
    """Record a version's metrics, decide against the current champion, and move `champion` if it wins."""
    version = str(version)
    current = registry.alias_version(name, registry.CHAMPION)
    registry.record(name, version, {f"{registry.METRIC_TAG}{k}": f"{v:.10g}" for k, v in metrics.items()})
    if current is not None and str(current.version) == version:
        decision = Decision(True, "already_champion", f"v{version} already holds the champion alias", version)
    else:
        decision = decide(cfg, metrics, registry.version_metrics(current) if current is not None else None,
                          str(current.version) if current is not None else None)
    if decision.promote and decision.outcome != "already_champion":
        registry.set_alias(name, registry.CHAMPION, version)
        if current is not None:
            registry.record(name, str(current.version), {"reelforge.gate.replaced_by": version})
    registry.record(name, version, decision_tags(decision, eval_run_id),
                    description=f"gate {decision.outcome}: {decision.reason}")
    return decision
