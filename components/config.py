"""Typed stage configs: recipe YAML per profile + params.yaml overrides + --set overrides, validated once."""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.workspace import project_root


class ConfigError(ValueError):
    """A recipe, override or value that does not fit a stage's config; the message names the field."""


class Launch(BaseModel):
    """How `reelforge stage run` starts a stage: in-process, or under torchrun with N processes."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["inprocess", "torchrun"] = "inprocess"
    nproc_per_node: int = Field(1, ge=1)
    nnodes: str = "1"  # torchrun accepts "2" or an elastic range "1:4"
    rdzv_backend: str = "c10d"
    rdzv_endpoint: str = "localhost:0"  # port 0: torchrun picks a free one (single node)
    rdzv_id: str = "reelforge"
    max_restarts: int = 0
    backend: Literal["auto", "gloo", "nccl"] = "auto"


class StageConfig(BaseModel):
    """Fields every stage has; each stage's config subclasses it."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    launch: Launch = Launch()


def deep_merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; values in `over` win, nested dicts merge."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(items: list[str]) -> dict:
    """Turn ["a.b=3", "c=x"] into {"a": {"b": 3}, "c": "x"}; values are parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    """YAML scalar, plus floats YAML 1.1 leaves as strings (1e-15 has no dot)."""
    if raw == "":
        return ""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(raw)
        except ValueError:
            return value
    return value


def recipe_file(profile: str, stage: str) -> Path:
    """configs/<profile>/<group>.yaml holds the sections for every stage of a group (data, curate, vae…)."""
    return project_root() / "configs" / profile / f"{stage.split('.')[0]}.yaml"


def _section(doc: dict, stage: str, path: Path, seen: tuple = ()) -> dict:
    """A stage's section; `extends: other` derives it from another section of the same file."""
    name = stage.split(".", 1)[1] if "." in stage else stage
    if name not in doc:
        return {}
    section = dict(doc[name] or {})
    parent = section.pop("extends", None)
    if parent:
        if parent in seen:
            raise ConfigError(f"{path}: 'extends' cycle through {parent!r}")
        section = deep_merge(_section(doc, f"x.{parent}", path, seen + (name,)), section)
    return section


def load_params(root: Path | None = None) -> dict:
    """params.yaml: the values DVC tracks (profile and per-stage overrides)."""
    path = (root or project_root()) / "params.yaml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def stage_overrides(stage: str) -> dict:
    """params.yaml `overrides.<group>.<name>`: the per-stage values DVC tracks as params."""
    node = load_params().get("overrides") or {}
    for part in stage.split("."):
        node = (node or {}).get(part) or {}
    return node


def resolve(stage: str, config_cls: type[StageConfig], profile: str, sets: list[str] | None = None) -> StageConfig:
    """Recipe section + params.yaml `overrides.<stage>` + --set, validated into the stage's config class."""
    path = recipe_file(profile, stage)
    doc = yaml.safe_load(path.read_text()) or {} if path.exists() else {}
    merged = deep_merge(doc.get("defaults", {}) or {}, _section(doc, stage, path))
    merged = deep_merge(merged, stage_overrides(stage))
    merged = deep_merge(merged, parse_set(sets or []))
    try:
        return config_cls.model_validate(merged)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"stage {stage} (profile {profile}, {path}): {problems}") from None


def to_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML, the form logged to MLflow and written beside outputs."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=True)


def params_hash(cfg: BaseModel, exclude: set[str] | None = None) -> str:
    """sha256 of the canonical JSON of a resolved config (less the `exclude` fields)."""
    blob = json.dumps(cfg.model_dump(mode="json", exclude=exclude), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def flat_params(cfg: BaseModel) -> dict[str, Any]:
    """{'a.b': value} for MLflow params, so the compare view lines up config keys."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        else:
            out[prefix] = node

    walk("", cfg.model_dump(mode="json"))
    return out
