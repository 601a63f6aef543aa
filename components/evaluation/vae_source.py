"""A trained video VAE from a stage output folder: weights (safetensors) + its architecture (JSON or a size name).

The architecture comes from `config_file` in the folder when present, either a full VideoVAEConfig
(`dataclasses.asdict` form: {"spatial": {...}, "temporal": {...}, "chunk_frames": 17, "shift": [...], ...})
or a size plus overrides ({"size": "tiny", "chunk_frames": null}); without that file, from `size`.
The latent shift/scale are buffers in the weights, so the normalisation the VAE was trained with comes along.
"""
from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict

from components.evaluation.loaders import WeightFile, read_bytes, sha256_bytes
from components.hashing import exists
from models.vae import VAE_configs, VideoVAE, VideoVAEConfig


class VAESource(BaseModel):
    """Where the trained VAE lives and how to rebuild it."""

    model_config = ConfigDict(extra="forbid")
    dir: str = "vae/stage3"  # stage output folder, relative to the workspace, or a URI
    weights: str = "model.safetensors"  # or ema.safetensors
    config_file: str = "vae_config.json"  # optional; falls back to `size`
    size: Literal["tiny", "full"] = "tiny"  # VAE_configs entry used when config_file is absent


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _replace(obj: Any, values: dict[str, Any], source: str, where: str) -> Any:
    known = {f.name for f in fields(obj)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {where} field(s) {unknown}; known: {sorted(known)}")
    return replace(obj, **_tuples(values))


def vae_config_from_dict(doc: dict[str, Any], source: str) -> VideoVAEConfig:
    """VideoVAEConfig from a JSON dict (full form or `size` + overrides); errors name the file and field."""
    doc = dict(doc)
    size = doc.pop("size", None)
    if size is not None and size not in VAE_configs:
        raise ValueError(f"{source}: size {size!r} is not one of {sorted(VAE_configs)}")
    base = VAE_configs[size] if size else VideoVAEConfig()
    spatial = _replace(base.spatial, doc.pop("spatial", {}), source, "spatial")
    temporal = _replace(base.temporal, doc.pop("temporal", {}), source, "temporal")
    return _replace(replace(base, spatial=spatial, temporal=temporal), doc, source, "top-level")


def load_vae(folder: str, src: VAESource) -> tuple[VideoVAE, dict[str, Any]]:
    """The VAE in eval mode, and what was loaded (weights file, sha256, where the architecture came from)."""
    from safetensors.torch import load as load_safetensors

    weights_uri = f"{folder.rstrip('/')}/{src.weights}"
    if not exists(weights_uri):
        raise FileNotFoundError(f"eval.vae: no VAE weights at {weights_uri} (vae.dir={src.dir}, "
                                f"vae.weights={src.weights})")
    config_uri = f"{folder.rstrip('/')}/{src.config_file}"
    if exists(config_uri):
        try:
            doc = json.loads(read_bytes(config_uri))
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_uri}: not valid JSON ({err})") from None
        cfg, arch = vae_config_from_dict(doc, config_uri), config_uri
    else:
        cfg, arch = VAE_configs[src.size], f"VAE_configs[{src.size!r}] ({src.config_file} not in {folder})"
    data = read_bytes(weights_uri)
    vae = VideoVAE(cfg)
    try:
        vae.load_state_dict(load_safetensors(data), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights_uri}: does not fit the VAE built from {arch}: {err}") from None
    info = {**WeightFile(weights_uri, sha256_bytes(data)).as_dict(), "architecture": arch}
    return vae.eval().requires_grad_(False), info


@torch.no_grad()
def reconstruct(vae: VideoVAE, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> its reconstruction through the posterior mode, clamped to [-1, 1]."""
    z = vae.encode(x, sample=False)
    return vae.decode(z, x.shape[2]).clamp(-1, 1)
