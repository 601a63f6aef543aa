"""Where a trained DiT comes from, and everything sampling needs with it: weights, sampler, VAE, text encoder.

A model reference is one of
  a stage output folder            dit/adapt8 (workspace-relative) or an absolute path
  an MLflow run                    runs:/<run id> or the bare 32-hex run id: the output folder is `outputs.dir` of
                                   the run's manifest.json artifact (every `reelforge stage run` logs it), else the
                                   run's `reelforge.output_dir` tag
  a registered model version       models:/<name>@<alias> or models:/<name>/<version> (also without "models:/";
                                   a bare name means its champion: components/registry.py)
Registry convention (components/registry.py registers): a version's `source` is a folder laid out like the stage
output it came from (an immutable snapshot); a `runs:/` source resolves as a run; a version without a usable
source falls back to its `reelforge.output_dir` tag.
The folder holds model.safetensors and dit.json (components/dit/model_io.py): the STDiT config, the diffusion
kind, the VAE folder (workspace-relative) and the text encoder the model was trained with.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.dit.captions import CaptionEmbeddings, caption_embeddings
from components.dit.config import DiffusionConfig, LatentVAEConfig
from components.dit.latents import LatentCodec, build_codec
from components.dit.model_io import EMA_FILE, INFO_FILE, MODEL_FILE
from components.dit.objective import Objective
from components.dit.text_cache import TextCacheConfig
from components.dit.text_encoders import TextEncoderConfig
from models.stdit import STDiT, STDiTConfig

OUTPUT_TAG = "reelforge.output_dir"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def run_output(run_id: str) -> str:
    """The output folder of a stage run: its manifest.json artifact's outputs.dir, else its output tag."""
    import mlflow

    from components.registry import client

    tracking = client()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="manifest.json", dst_path=tmp,
                                                       tracking_uri=tracking.tracking_uri)
            return json.loads(Path(path).read_text())["outputs"]["dir"]
        except Exception as err:  # noqa: BLE001 - no manifest: fall back to the tag, and name both when missing
            manifest_error = f"{type(err).__name__}: {err}"
    tag = tracking.get_run(run_id).data.tags.get(OUTPUT_TAG)
    if not tag:
        raise FileNotFoundError(f"MLflow run {run_id}: no manifest.json artifact ({manifest_error}) and no "
                                f"{OUTPUT_TAG} tag; it is not a stage run")
    return tag


def registered_output(ref: str) -> str:
    """The folder a registered version points at: its source, a runs:/ source's output, else its output tag."""
    from components.registry import get_version

    version = get_version(ref)
    source = version.source or ""
    if source.startswith("runs:/"):
        return run_output(source[len("runs:/"):].split("/")[0])
    if source and not source.startswith("models:/"):
        return source
    tag = (version.tags or {}).get(OUTPUT_TAG)
    if not tag:
        raise FileNotFoundError(f"registered model {ref}: source {source!r} is not a stage output folder and the "
                                f"version has no {OUTPUT_TAG} tag")
    return tag


def resolve_model(ref: str, workspace: Path) -> Path:
    """The local stage output folder a model reference names (see the module docstring)."""
    from components.registry import RegistryError, parse_ref

    path = Path(ref) if Path(ref).is_absolute() else Path(workspace) / ref
    if path.is_dir():
        return path
    if ref.startswith("runs:/"):
        return Path(run_output(ref[len("runs:/"):].split("/")[0]))
    if RUN_ID.match(ref):
        return Path(run_output(ref))
    try:
        parse_ref(ref)
    except RegistryError:
        raise FileNotFoundError(f"model {ref!r}: not a folder (looked at {path}), a run id (runs:/<id>) or a "
                                "registered model (models:/name@alias, models:/name/version)") from None
    return Path(registered_output(ref))


@dataclass
class DiTBundle:
    """A trained DiT with its sampler, VAE and caption encoder, read from one stage output folder."""

    folder: Path
    model: STDiT
    info: dict[str, Any]
    objective: Objective
    codec: LatentCodec
    captions: CaptionEmbeddings
    vae_dir: Path
    image_fps: float = 120.0  # fps condition of one-frame samples (Open-Sora's IMG_FPS)

    @property
    def diffusion(self) -> DiffusionConfig:
        return self.objective.cfg


def load_dit(folder: Path, workspace: Path, vae_dir: str | Path | None = None, weights: str = "model",
             device: str | torch.device = "cpu") -> DiTBundle:
    """Read dit.json and the weights; the VAE is dit.json's (workspace-relative) unless vae_dir is given."""
    folder = Path(folder)
    info_path, weights_path = folder / INFO_FILE, folder / (MODEL_FILE if weights == "model" else EMA_FILE)
    for path in (info_path, weights_path):
        if not path.exists():
            raise FileNotFoundError(f"DiT folder {folder}: {path.name} is missing (not a dit.* stage output?)")
    from safetensors.torch import load_file

    info = json.loads(info_path.read_text())
    model = STDiT(STDiTConfig(**info["stdit"]))
    try:
        model.load_state_dict(load_file(str(weights_path)), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights_path}: does not fit the STDiT of {info_path}: {err}") from None
    model = model.to(device).eval().requires_grad_(False)
    vae_cfg = LatentVAEConfig(**info["vae"])
    if vae_dir is not None:
        vae_cfg = vae_cfg.model_copy(update={"dir": str(vae_dir)})
    profile = info.get("profile", "tiny")
    codec = build_codec(vae_cfg, workspace, profile, device)
    captions = caption_embeddings(TextEncoderConfig(**info["text"]), TextCacheConfig(), profile, workspace)
    objective = Objective(DiffusionConfig(**info["diffusion"]), model.cfg.learn_sigma)
    return DiTBundle(folder, model, info, objective, codec, captions, Path(workspace) / vae_cfg.dir)
