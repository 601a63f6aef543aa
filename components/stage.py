"""The stage contract: a function in components with a typed config, named inputs and named outputs.

A stage module declares itself with `@stage(...)`; `reelforge stage run NAME` resolves its config, launches it
(in-process or under torchrun), opens its MLflow run, and moves its outputs into place atomically.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from components.config import StageConfig

# Modules that define stages; importing them fills REGISTRY. Later capabilities append here.
STAGE_MODULES = [
    "components.data.ingest",
    "components.data.version",
    "components.curation.split",
    "components.curation.score",
    "components.curation.caption",
    "components.curation.tier",
    "components.evaluation.eval_vae",
    "components.validation.validate",
    "components.training.smoke",
    "components.training.vae_stages",
    "components.dit.stages",
    "components.dit.latent_stage",
    "components.evaluation.adherence_stage",
    "components.evaluation.vbench.stage",
    "components.dit.pretrain",
    "components.evaluation.val_loss",
]


@dataclass
class StageSpec:
    """One registered stage: its function, config class, and where its inputs and output live."""

    name: str
    fn: Callable[["StageContext"], dict[str, float] | None]
    config: type[StageConfig]
    # name -> path or URI; a callable gets (cfg, workspace) so inputs can come from config (a source URI…)
    inputs: Callable[[Any, Path], dict[str, str]]
    # output folder relative to the workspace; written atomically as one unit
    output: str
    description: str = ""
    dvc: bool = True  # False for stages that drive DVC themselves (data.version) and cannot run inside repro


@dataclass
class StageContext:
    """What a stage function receives. `out` is a temporary folder that becomes the output on success."""

    name: str
    profile: str
    cfg: Any
    workspace: Path
    out: Path
    inputs: dict[str, str]
    checkpoint_dir: Path  # survives failures, so a retry resumes from the last checkpoint
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    tracker: Any = None  # components.tracking.Tracker; a no-op on ranks other than 0
    extra: dict = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


REGISTRY: dict[str, StageSpec] = {}


def stage(
    name: str,
    config: type[StageConfig],
    output: str,
    inputs: Callable[[Any, Path], dict[str, str]] | None = None,
    description: str = "",
    dvc: bool = True,
) -> Callable:
    """Register a stage function under `name` (group.step, e.g. data.ingest)."""

    def wrap(fn: Callable) -> Callable:
        REGISTRY[name] = StageSpec(
            name=name,
            fn=fn,
            config=config,
            inputs=inputs or (lambda cfg, ws: {}),
            output=output,
            description=description or (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else description,
            dvc=dvc,
        )
        return fn

    return wrap


def load_all() -> dict[str, StageSpec]:
    """Import every stage module so the registry is complete."""
    for module in STAGE_MODULES + [m for m in os.environ.get("REELFORGE_STAGE_MODULES", "").split(",") if m]:
        importlib.import_module(module)
    return REGISTRY


def get(name: str) -> StageSpec:
    """The registered stage `name`, with the list of known names in the error otherwise."""
    if name in REGISTRY:
        return REGISTRY[name]
    registry = load_all()
    if name not in registry:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
