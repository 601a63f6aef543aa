"""Build, initialise, freeze and export the video VAE of a training stage; load an exported one for downstream use.

An export is a folder (workspace/vae/stageN) holding model.safetensors (the VideoVAE state dict, latent shift
and scale buffers included), vae_config.json (the VideoVAEConfig as `dataclasses.asdict`, measured shift/scale
included: the form components/evaluation/vae_source.load_vae rebuilds the VAE from) and vae.json (size, stage,
which parts it holds and how the perceptual term ran). vae.stage0 exports the 2D VAE alone (parts ["spatial"]).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from components import weights
from components.training.checkpoint import export_safetensors, load_safetensors
from models.vae import VAE_models, VideoVAE
from models.vae.losses import LogVariance

EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "vae.json"
EXPORT_ARCH = "vae_config.json"
# module prefixes of each trainable part (AutoencoderKL: quant_conv belongs to the encoder side)
PARTS = {
    "spatial_encoder": ("spatial.encoder.", "spatial.quant_conv."),
    "spatial_decoder": ("spatial.decoder.", "spatial.post_quant_conv."),
    "temporal": ("temporal.",),
}


class VAETrainModule(nn.Module):
    """What the engine trains: the VideoVAE, the learnable log-variance and the stage's forward pass.

    Stage 0 runs the 2D VAE on every frame; stages 1-2 stop at the 2D latents (their losses never need
    pixels); stage 3 decodes to pixels. The forward returns a dict of tensors, the form DDP and DeepSpeed
    pass through untouched.
    """

    def __init__(self, vae: VideoVAE, stage: int, logvar_init: float = 0.0, sample: bool = True):
        super().__init__()
        if stage not in (0, 1, 2, 3):
            raise ValueError(f"VAETrainModule: stage must be 0..3, got {stage}")
        self.vae = vae
        self.stage = stage
        self.sample = sample
        self.logvar = LogVariance(logvar_init)  # a 1-element parameter: ZeRO partitions it like any other

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """x: (B, 3, T, H, W) in [-1, 1]."""
        if self.stage == 0:
            b, c, t, h, w = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B*T, 3, H, W)
            post = self.vae.spatial.encode(frames).latent_dist
            z = post.sample() if self.sample else post.mode()
            rec = self.vae.spatial.decode(z).sample  # (B*T, 3, H, W)
            x_rec = rec.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
            return {"x_rec": x_rec, "kl": post.kl(), "logvar": self.logvar()}
        z2d = self.vae.encode_frames(x, sample=self.sample)  # (B, C, T, h, w)
        posterior = self.vae.encode_temporal(z2d)  # over (B, C, t, h, w)
        z = posterior.sample() if self.sample else posterior.mode()
        z2d_rec = self.vae.decode_temporal(z, x.shape[2])  # (B, C, T, h, w)
        x_rec = self.vae.decode_frames(z2d_rec) if self.stage == 3 else None
        return {"x_rec": x_rec, "z2d": z2d, "z2d_rec": z2d_rec, "z": z, "mean": posterior.mean,
                "post_logvar": posterior.logvar, "logvar": self.logvar()}


def set_trainable(vae: VideoVAE, parts: list[str]) -> dict[str, int]:
    """Freeze every parameter outside `parts`; returns trainable and frozen parameter counts."""
    prefixes = tuple(p for part in parts for p in PARTS[part])
    known = tuple(p for group in PARTS.values() for p in group)
    counts = {"trainable_params": 0, "frozen_params": 0}
    for name, param in vae.named_parameters():
        if not name.startswith(known):
            raise ValueError(f"set_trainable: parameter {name} belongs to no part of {sorted(PARTS)}")
        param.requires_grad_(name.startswith(prefixes))
        counts["trainable_params" if param.requires_grad else "frozen_params"] += param.numel()
    return counts


def load_sdxl_vae(profile: str) -> nn.Module:
    """SDXL's AutoencoderKL from the weights store (sdxl-vae, sdxl-vae-config); a missing file is an error."""
    from diffusers import AutoencoderKL

    from components.workspace import filesystem

    paths = weights.require(profile, ["sdxl-vae", "sdxl-vae-config"])
    fs, inner = filesystem(paths["sdxl-vae-config"])
    with fs.open(inner, "r") as handle:
        config = json.load(handle)
    model = AutoencoderKL.from_config(config)
    fs, inner = filesystem(paths["sdxl-vae"])
    with fs.open(inner, "rb") as handle:
        from safetensors.torch import load as load_bytes

        state = load_bytes(handle.read())
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{paths['sdxl-vae']}: does not match the AutoencoderKL of {paths['sdxl-vae-config']} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def read_export(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and vae.json of an export folder; errors name the missing file."""
    folder = Path(folder)
    for name in (EXPORT_WEIGHTS, EXPORT_CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(f"VAE export {folder}: {name} is missing (run the stage that writes it first)")
    return load_safetensors(folder / EXPORT_WEIGHTS), json.loads((folder / EXPORT_CONFIG).read_text())


def load_init(vae: VideoVAE, folder: Path) -> list[str]:
    """Load an export into `vae`; only a 2D-only export (stage 0) may leave the temporal VAE at its init.

    Returns the parts loaded.
    """
    state, meta = read_export(folder)
    missing, unexpected = vae.load_state_dict(state, strict=False)
    allowed = [k for k in missing if k.startswith("temporal.") or k in ("shift", "scale")]
    if unexpected or (set(missing) - set(allowed)) or (allowed and meta.get("parts") != ["spatial"]):
        raise ValueError(f"{folder / EXPORT_WEIGHTS}: does not fit VAE {meta.get('model')!r} "
                         f"(missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]})")
    return list(meta.get("parts", []))


def init_posterior_logvar(vae: VideoVAE, value: float, spatial: bool = True) -> None:
    """Set the log-variance bias of both posterior heads, so fresh posteriors start with std exp(value / 2).

    A fresh head outputs log-variance ~0: latents drawn with std ~1 drown the small means, and the decoders learn
    nothing until the encoders shrink that noise, which takes far more steps than a CPU run has. Heads loaded
    from an export (SDXL's, a previous stage's) are overwritten afterwards, so only fresh parts keep this value.
    """
    c = vae.cfg.spatial.latent_channels
    with torch.no_grad():
        if spatial:
            vae.spatial.quant_conv.bias[c:] = value  # AutoencoderKL moments: mean (c), then logvar (c)
        vae.temporal.encoder.quant_conv.conv.bias[vae.cfg.temporal.latent_channels:] = value


def build_vae(model: str, spatial: str, init: Path | None, profile: str, seed: int,
              posterior_logvar_init: float | None = None) -> VideoVAE:
    """The VideoVAE a stage starts from: seeded fresh parts, SDXL's 2D VAE (spatial=sdxl), then the init export."""
    torch.manual_seed(seed)  # every rank builds the same fresh weights
    spatial_module = load_sdxl_vae(profile) if spatial == "sdxl" else None
    vae = VAE_models[model](spatial=spatial_module)
    if posterior_logvar_init is not None:  # SDXL's 2D head stays as the store has it
        init_posterior_logvar(vae, posterior_logvar_init, spatial=spatial != "sdxl")
    if init is not None:
        load_init(vae, init)
    return vae


def export_vae(vae: VideoVAE, folder: Path, meta: dict[str, Any], parts: list[str] | None = None) -> None:
    """Write model.safetensors (only `parts`' keys when given, e.g. ["spatial"]), vae_config.json and vae.json."""
    state = vae.state_dict()
    if parts is not None:
        state = {k: v for k, v in state.items() if k.split(".")[0] in parts}
    shift = tuple(float(v) for v in vae.shift.flatten())
    scale = tuple(float(v) for v in vae.scale.flatten())
    arch = dataclasses.asdict(dataclasses.replace(vae.cfg, shift=shift, scale=scale))
    folder = Path(folder)
    export_safetensors(state, folder / EXPORT_WEIGHTS, {k: str(v) for k, v in meta.items()})
    (folder / EXPORT_ARCH).write_text(json.dumps(arch, indent=2) + "\n")
    info = {**meta, "parts": parts or ["spatial", "temporal"], "shift": list(shift), "scale": list(scale)}
    (folder / EXPORT_CONFIG).write_text(json.dumps(info, indent=2) + "\n")
