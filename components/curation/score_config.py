"""ScoreConfig: which scorers curate.score runs, with their options, and how it batches, parallelises and dedups."""
from __future__ import annotations

import importlib
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.config import StageConfig
from components.curation.dedup_features import DedupSpec

# Scorer name -> "module:Class". A spec may name any other class with `target` (a scorer of your own).
SCORER_TARGETS: dict[str, str] = {
    "motion": "components.curation.scorers.motion:MotionScorer",
    "flow": "components.curation.scorers.flow:FlowScorer",
    "temporal": "components.curation.scorers.temporal:TemporalScorer",
    "ocr": "components.curation.scorers.ocr:OcrScorer",
    "aes": "components.curation.scorers.aesthetic:AestheticScorer",
    "aes_classical": "components.curation.scorers.aesthetic_classical:ClassicalAestheticScorer",
}


class ScorerSpec(BaseModel):
    """One enabled scorer: a registry name (or an explicit class) and the options its config takes."""

    model_config = ConfigDict(extra="forbid")
    name: str
    target: str | None = None  # "module:Class"; default SCORER_TARGETS[name]
    options: dict[str, Any] = Field(default_factory=dict)

    def resolved_target(self) -> str:
        if self.target:
            return self.target
        if self.name not in SCORER_TARGETS:
            raise ValueError(f"scorer {self.name!r}: not a known scorer ({', '.join(SCORER_TARGETS)}); "
                             f"give its class as target: 'module:Class'")
        return SCORER_TARGETS[self.name]


class ScoreConfig(StageConfig):
    """curate.score: scorers, batching, worker processes and the shard store."""

    clips: str = "curate/split/clips.parquet"  # relative to the workspace, or a URI
    scorers: list[ScorerSpec] = Field(default_factory=list)
    dedup: DedupSpec = DedupSpec()  # features per clip in the shards; compared over all clips at the end
    batch_size: int = Field(16, ge=1)  # clips per scorer call
    workers: int = Field(1, ge=1)  # processes, each scoring whole videos
    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"  # spawn: no threads or torch state inherited
    # one decoding pass per video serves every frame request while its native frames fit this budget
    # (estimated from the clip table's size); above it, each request decodes on its own
    max_decode_mib: int = Field(512, ge=0)
    max_frames_per_read: int = Field(4096, ge=1)  # per request: above this, frames are read clip by clip
    shard_dir: str = "curate/shards/score"  # relative to the workspace; outside the stage output on purpose
    torch_threads: int = Field(1, ge=1)  # per worker: processes, not threads, use the cores
    progress: bool = True

    @model_validator(mode="after")
    def _unique_names(self) -> "ScoreConfig":
        names = [s.name for s in self.scorers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scorers listed twice: {dupes}")
        return self


def load_object(target: str) -> Any:
    """The object named by 'package.module:attribute'."""
    module, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"{target!r}: expected 'module:attribute'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"cannot load {target!r}: {err}") from err


def _config_class(cls: type) -> type[BaseModel] | None:
    """The pydantic config class a scorer's __init__ takes as its first argument, if it takes one."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        return None
    for name, hint in hints.items():
        if name == "return":
            continue
        for candidate in typing.get_args(hint) or (hint,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                return candidate
    return None


def build_scorer(spec: ScorerSpec) -> Any:
    """An instance of the spec's scorer: Class(ConfigClass(**options)) when it takes a config, else Class(**options)."""
    cls = load_object(spec.resolved_target())
    config_cls = _config_class(cls)
    try:
        return cls(config_cls(**spec.options)) if config_cls else cls(**spec.options)
    except Exception as err:
        raise ValueError(f"scorer {spec.name!r} ({spec.resolved_target()}): bad options {spec.options}: {err}") from err
