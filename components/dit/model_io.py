"""Build a stage's STDiT, start it from its predecessor's export (or PixArt-Σ), and export it for the next stage.

Loading a predecessor is strict except for the modules the stage adds (RECIPE §5): every key the predecessor
has must exist with the same shape, and every key it lacks must be one of convert.NEW_MODULES (QK-norm,
fps embedder, temporal blocks), which keep their no-op initialisation. Anything else is an error naming keys.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from components.dit.config import DiTModelConfig
from components.dit.convert import NEW_MODULES
from components.training.checkpoint import export_safetensors, load_safetensors
from models.stdit import STDiT, STDiT_models, STDiTConfig

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
INFO_FILE = "dit.json"
MAX_LISTED = 20


def build_model(cfg: DiTModelConfig, seed: int) -> STDiT:
    """The stage's STDiT, seeded so every rank (and every rerun) builds the same fresh weights."""
    torch.manual_seed(seed)
    return STDiT_models[cfg.size](**cfg.stdit_kwargs())


def new_module_reason(key: str) -> str | None:
    """Why `key` may be absent from a predecessor (a module this stage adds), or None."""
    for pattern, reason in NEW_MODULES.items():
        if re.search(pattern, key):
            return reason
    return None


@dataclass
class InitReport:
    """How a model was initialised: from where, how many tensors loaded, which new ones kept their init."""

    source: str
    loaded: int = 0
    new: dict[str, str] = field(default_factory=dict)  # key -> why it is new

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _listed(keys: list[str]) -> str:
    shown = sorted(keys)[:MAX_LISTED]
    more = f" … and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    return ", ".join(shown) + more


def load_state(model: STDiT, state: dict[str, torch.Tensor], source: str) -> InitReport:
    """Load a predecessor's state dict into `model`; only NEW_MODULES keys may be missing (they keep their init)."""
    target = model.state_dict()
    unexpected = [k for k in state if k not in target]
    if unexpected:
        raise ValueError(f"{source}: holds {len(unexpected)} tensor(s) this model lacks (a switch turned off, or "
                         f"another size?): {_listed(unexpected)}")
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in state
             if tuple(state[k].shape) != tuple(target[k].shape)]
    if wrong:
        raise ValueError(f"{source}: shape mismatch (predecessor vs this model): {_listed(wrong)}")
    report = InitReport(source=source, loaded=len(state))
    unexplained = []
    for key in target:
        if key not in state:
            reason = new_module_reason(key)
            if reason is None:
                unexplained.append(key)
            else:
                report.new[key] = reason
    if unexplained:
        raise ValueError(f"{source}: lacks {len(unexplained)} tensor(s) that are not new modules of this stage: "
                         f"{_listed(unexplained)}")
    model.load_state_dict(state, strict=False)
    return report


def load_export(model: STDiT, folder: Path, weights: str = "model") -> InitReport:
    """Start `model` from a previous stage's export folder (model.safetensors or ema.safetensors)."""
    path = Path(folder) / (MODEL_FILE if weights == "model" else EMA_FILE)
    if not path.exists():
        raise FileNotFoundError(f"DiT export {path} is missing: run the stage that writes {folder} first")
    return load_state(model, load_safetensors(path), str(path))


def load_pixart_weights(model: STDiT, profile: str, entry: str) -> InitReport:
    """Convert PixArt-Σ from the weights store into `model` (components/dit/load_pixart.py)."""
    from components.dit.load_pixart import load_pixart
    from components.weights import require

    uri = require(profile, [entry])[entry]
    conversion = load_pixart(model, uri)
    return InitReport(source=uri, loaded=len(conversion.mapped), new=dict(conversion.kept_init))


def export_model(folder: Path, model: STDiT, ema: dict[str, torch.Tensor] | None, info: dict[str, Any]) -> None:
    """model.safetensors (+ ema.safetensors) and dit.json: the STDiT config and how the stage trained it."""
    folder = Path(folder)
    meta = {"stage": str(info.get("stage", "")), "format": "stdit"}
    export_safetensors(model.state_dict(), folder / MODEL_FILE, meta)
    if ema is not None:
        export_safetensors(ema, folder / EMA_FILE, meta)
    doc = {"stdit": dataclasses.asdict(model.cfg), **info}
    (folder / INFO_FILE).write_text(json.dumps(doc, indent=2, default=str) + "\n")


def load_dit(folder: Path, weights: str = "model") -> tuple[STDiT, dict[str, Any]]:
    """An exported DiT in eval mode, rebuilt from its dit.json, and that file's contents (diffusion, vae, text…)."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"DiT export {folder}: {INFO_FILE} is missing (not written by a dit.* stage?)")
    info = json.loads(info_path.read_text())
    model = STDiT(STDiTConfig(**info["stdit"]))
    path = folder / (MODEL_FILE if weights == "model" else EMA_FILE)
    if not path.exists():
        raise FileNotFoundError(f"DiT export {folder}: {path.name} is missing")
    try:
        model.load_state_dict(load_safetensors(path), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit the STDiT of {info_path}: {err}") from None
    return model.eval(), info
