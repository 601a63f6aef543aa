"""Helpers of the sampling and adherence tests: a random-init tiny video DiT exported beside a tiny video VAE."""
from __future__ import annotations

from pathlib import Path

import torch

from components.dit.config import DiffusionConfig, LatentVAEConfig
from components.dit.model_io import export_model
from components.dit.text_encoders import TextEncoderConfig
from components.training.vae_model import export_vae
from models.stdit import STDiT_models
from models.vae import VAE_models

MAX_LENGTH = 8  # text tokens: micro


def write_video_vae(ws: Path, seed: int = 0) -> Path:
    """vae/stage3: a random-init tiny video VAE with a per-channel latent shift/scale, as vae.stage3 exports it."""
    torch.manual_seed(seed)
    vae = VAE_models["tiny"]()
    vae.set_latent_stats((0.01, -0.02, 0.0, 0.03), (0.05, 0.08, 0.12, 0.09))  # a random VAE's latents are small
    export_vae(vae, ws / "vae" / "stage3", {"model": "tiny", "stage": 3})
    return ws / "vae" / "stage3"


def write_dit_export(ws: Path, name: str = "dit/adapt8", seed: int = 0, kind: str = "rflow") -> Path:
    """A tiny video STDiT (QK-norm, fps, temporal blocks) with every weight random, incl. the zero-init ones."""
    if not (ws / "vae/stage3/model.safetensors").exists():
        write_video_vae(ws)
    torch.manual_seed(seed)
    model = STDiT_models["tiny"](qk_norm=True, temporal=True, fps_cond=True, caption_channels=384,
                                 model_max_length=MAX_LENGTH, input_sq_size=64)
    with torch.no_grad():  # zero-initialised output layers would make every output 0, and sampling trivial
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                param.normal_(0.0, 0.05)
    info = {"stage": "dit.adapt8", "profile": "tiny", "step": 0,
            "diffusion": DiffusionConfig(kind=kind, shift=True, shift_base_resolution=4096).model_dump(),
            "vae": LatentVAEConfig(kind="video", dir="vae/stage3").model_dump(),
            "text": TextEncoderConfig(kind="minilm", max_length=MAX_LENGTH).model_dump(), "init": "random"}
    export_model(ws / name, model, None, info)
    return ws / name
