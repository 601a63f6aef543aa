"""What a dimension computation returns: the score, each video's score, and the settings that produced it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DimensionResult:
    """One dimension's raw score (VBench's own aggregation over its videos) and its per-video scores."""

    dimension: str
    value: float
    per_video: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The score as stored under `scores` in vbench.json: value plus every setting (docs/tracking.md)."""
        return {"value": self.value, "videos": len(self.per_video), **self.settings}


def not_computed(reason: str, **settings: Any) -> dict[str, Any]:
    """A "not computed" record: value null and why (results.py shows the reason)."""
    return {"value": None, "status": "not computed", "reason": reason, **settings}
