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
# Where each stage is defined, by name prefix: a stage process imports only its own module (importing them all
# costs seconds per process: Great Expectations, diffusers, ...). tests/unit/test_stage_homes.py keeps it exact.
STAGE_HOMES = {
    "data.ingest": "components.data.ingest",
    "data.version": "components.data.version",
    "data.validate": "components.validation.validate",
    "curate.split": "components.curation.split",
    "curate.score": "components.curation.score",
    "curate.caption": "components.curation.caption",
    "curate.tier": "components.curation.tier",
    "train.smoke": "components.training.smoke",
    "vae.": "components.training.vae_stages",
    "dit.": "components.dit.stages",
    "cache.latents": "components.dit.latent_stage",
    "pretrain.": "components.dit.pretrain",
    "eval.vae": "components.evaluation.eval_vae",
    "eval.adherence": "components.evaluation.adherence_stage",
    "eval.vbench": "components.evaluation.vbench.stage",
    "eval.loss": "components.evaluation.val_loss",
}
STAGE_MODULES = list(dict.fromkeys(STAGE_HOMES.values()))


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


def home(name: str) -> str | None:
    """The module that defines stage `name` (STAGE_HOMES), or None when no prefix matches."""
    return next((module for prefix, module in STAGE_HOMES.items()
                 if name == prefix or (prefix.endswith(".") and name.startswith(prefix))), None)


def get(name: str) -> StageSpec:
    """The registered stage `name`, with the list of known names in the error otherwise."""
    module = home(name) if name not in REGISTRY else None
    if module:
        importlib.import_module(module)
    if name in REGISTRY:
        return REGISTRY[name]
    registry = load_all()
    if name not in registry:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
