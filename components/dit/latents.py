"""Latents of training samples: the VAE codecs (2D image VAE, video VAE) and the LatentSource the DiT data reads.

A sample is a LatentRequest: which source frames of which clip, at which bucket size. OnTheFlyLatents decodes
those frames and encodes them with the stage's VAE (posterior mean, so a request always maps to the same
latents), memoised in memory for the tiny profile. The latent cache stage (cache.latents) can serve the same
requests from disk by implementing LatentSource; nothing else in the DiT data path changes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from components.data.video_decode import decode_frames, to_tensor
from components.dit.config import LatentVAEConfig
from components.training.checkpoint import load_safetensors
from models.vae import VAE_configs, VideoVAE, VideoVAEConfig
from models.vae.spatial import build_autoencoder_kl
from models.vae.spatial import decode_frames as decode_2d
from models.vae.spatial import encode_frames as encode_2d

EXPORT_WEIGHTS = "model.safetensors"  # what the vae.* stages write (components/training/vae_model.py)
EXPORT_ARCH = "vae_config.json"


@dataclass(frozen=True)
class LatentRequest:
    """One sample: source frames `frames` (absolute numbers) of a clip, resized and centre-cropped to height x width."""

    clip_id: str
    path: str
    frames: tuple[int, ...]
    height: int
    width: int


class LatentCodec(Protocol):
    """Pixels (B, 3, T, H, W) in [-1, 1] <-> latents (B, C, t, H/stride, W/stride)."""

    channels: int
    stride: int

    def latent_frames(self, num_frames: int) -> int: ...

    def encode(self, video: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor: ...


class ImageCodec:
    """A 2D AutoencoderKL applied frame by frame; latents are the scaled posterior means (PixArt's)."""

    def __init__(self, autoencoder: nn.Module, scaling_factor: float, micro_batch: int = 4,
                 device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        # NHWC weights, as VideoVAE keeps its 2D VAE: channels-last convolutions are faster (models/vae/video_vae.py)
        self.autoencoder = autoencoder.to(self.device, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.scaling_factor = scaling_factor
        self.micro_batch = micro_batch
        config = autoencoder.config
        self.channels = int(config.latent_channels)
        self.stride = 2 ** (len(config.block_out_channels) - 1)

    def latent_frames(self, num_frames: int) -> int:
        return num_frames

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return encode_2d(self.autoencoder, video.to(self.device), self.scaling_factor, self.micro_batch)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        return decode_2d(self.autoencoder, z.to(self.device), self.scaling_factor, self.micro_batch)[:, :, :num_frames]


class VideoCodec:
    """The video VAE (2D + causal temporal, 4x8x8); latents normalised per channel by its shift and scale."""

    def __init__(self, vae: VideoVAE, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        self.channels = int(vae.cfg.temporal.latent_channels)
        self.stride = int(vae.space_factor)

    def latent_frames(self, num_frames: int) -> int:
        return self.vae.latent_frames(num_frames)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(video.to(self.device), sample=False)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.vae.decode(z.to(self.device), num_frames)


class LatentSource(Protocol):
    """Where the DiT data gets a sample's latents (C, t, h, w) from."""

    def get(self, request: LatentRequest) -> torch.Tensor: ...


class OnTheFlyLatents:
    """Decode the requested frames and encode them with the codec; with memo, each request is encoded once."""

    def __init__(self, codec: LatentCodec, memo: bool = True):
        self.codec = codec
        self.memo = memo
        self._store: dict[LatentRequest, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def get(self, request: LatentRequest) -> torch.Tensor:
        """Latents (C, t, h, w) float32 on the CPU."""
        if request in self._store:
            self.hits += 1
            return self._store[request]
        self.misses += 1
        frames = decode_frames(request.path, list(request.frames), (request.height, request.width))
        video = to_tensor(frames, len(frames))[None]  # (1, 3, T, H, W)
        z = self.codec.encode(video)[0].float().cpu()  # (C, t, h, w)
        if self.memo:
            self._store[request] = z
        return z


def _vae_config(folder: Path) -> VideoVAEConfig:
    """The architecture an export was written with (vae_config.json), else the tiny size's."""
    from components.evaluation.vae_source import vae_config_from_dict

    arch = folder / EXPORT_ARCH
    if arch.exists():
        return vae_config_from_dict(json.loads(arch.read_text()), str(arch))
    return VAE_configs["tiny"]


def _export_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / EXPORT_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"VAE export {folder}: {EXPORT_WEIGHTS} is missing (run the vae stage that writes it)")
    return load_safetensors(path)


def load_image_codec(folder: Path, scaling_factor: float | None, device: torch.device | str) -> ImageCodec:
    """The 2D VAE of an export (vae.stage0 writes it alone; a video VAE export holds it under spatial.)."""
    cfg = _vae_config(folder)
    state = {k.removeprefix("spatial."): v for k, v in _export_weights(folder).items() if k.startswith("spatial.")}
    autoencoder = build_autoencoder_kl(cfg.spatial)
    try:
        autoencoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{folder / EXPORT_WEIGHTS}: its spatial.* weights do not fit the 2D VAE of "
                         f"{folder / EXPORT_ARCH}: {err}") from None
    return ImageCodec(autoencoder, scaling_factor or cfg.spatial.scaling_factor, cfg.spatial.micro_batch_frames,
                      device)


def load_video_codec(folder: Path, device: torch.device | str) -> VideoCodec:
    """The whole video VAE of an export (vae.stage3), with the latent shift/scale it measured."""
    vae = VideoVAE(_vae_config(folder))
    try:
        vae.load_state_dict(_export_weights(folder), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{folder / EXPORT_WEIGHTS}: does not fit the video VAE of {folder / EXPORT_ARCH} "
                         f"(a 2D-only export such as vae/stage0 cannot encode videos): {err}") from None
    return VideoCodec(vae, device)


def build_codec(cfg: LatentVAEConfig, workspace: Path, profile: str, device: torch.device | str) -> LatentCodec:
    """The codec a stage's config names: an export of the vae stages, or SDXL's 2D VAE from the weights store."""
    if cfg.source == "sdxl":
        from components.training.vae_model import load_sdxl_vae
        from models.vae.spatial import SpatialVAEConfig

        return ImageCodec(load_sdxl_vae(profile), cfg.scaling_factor or SpatialVAEConfig().scaling_factor,
                          SpatialVAEConfig().micro_batch_frames, device)
    folder = Path(workspace) / cfg.dir
    if cfg.kind == "image":
        return load_image_codec(folder, cfg.scaling_factor, device)
    return load_video_codec(folder, device)
