"""Sample videos from a trained DiT: text-to-video, image-to-video, continuation and interpolation.

Conditioning goes through the frame mask of Open-Sora 1.2 (RECIPE §3, §6): the given frames are encoded by the
VAE, their latent frames are held fixed during sampling (x_mask False) and the model sees them at timestep 0.
  t2v          nothing given
  i2v          the first frame: latent 0, which the causal VAE computes from that frame alone
  continue     the last k frames of a video lead the new clip: their latents are its first ones; k is cut to the
               largest count whose latents line up with the clip's (1, 5, 9, 13, 17, 18, 22, … for 17-frame chunks)
  interpolate  the first frame at latent 0 and the last frame encoded alone at the last latent (Open-Sora's
               placement of an image condition at the end: close, not exact, since that latent covers 4 frames)
Score-to-text controls (aesthetic, motion, camera motion) are appended to the prompt in Open-Sora's format
(components/curation/score_text.py). Noise comes from a generator seeded per sample, so a seed reproduces the
latents and pixels exactly. Defaults follow RECIPE §4: 30 Euler steps, CFG 7.0.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components import media
from components.curation.frames import read_frames
from components.curation.score_text import score_to_text
from components.data.aspect_ratios import ASPECT_RATIOS, get_resolution
from components.data.video_decode import fit_frames, to_tensor, to_uint8
from components.dit.latents import VideoCodec
from components.model_source import DiTBundle
from models.diffusion import DDIMSamplerConfig, EulerSamplerConfig, ddim_sample, euler_sample, guided_denoiser

MODES = ("t2v", "i2v", "continue", "interpolate")


class SampleRequest(BaseModel):
    """One generation: prompt, mode and its given frames, size, length, fps, sampler and seed."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    mode: Literal["t2v", "i2v", "continue", "interpolate"] = "t2v"
    image: str | None = None  # i2v / interpolate: the first frame (image or video file; its first frame is used)
    last_image: str | None = None  # interpolate: the last frame
    video: str | None = None  # continue: the video whose last frames lead the new clip
    resolution: str = "64px"  # a bucket resolution (64px, 240p, …); with aspect_ratio it fixes (H, W)
    aspect_ratio: str = "1.00"
    height: int | None = Field(None, ge=8)  # overrides the resolution table when both are given
    width: int | None = Field(None, ge=8)
    num_frames: int = Field(17, ge=1)  # pixel frames
    fps: float = Field(8.0, gt=0)  # fps condition (videos) and of the written media
    steps: int = Field(30, ge=1)
    cfg_scale: float = Field(7.0, ge=0)
    seed: int = 0
    aesthetic: float | None = None  # score-to-text controls
    motion: float | None = None
    camera: str | None = None  # pan_left, tilt_up, static, …

    @model_validator(mode="after")
    def _check(self) -> "SampleRequest":
        needs = {"i2v": ["image"], "interpolate": ["image", "last_image"], "continue": ["video"]}.get(self.mode, [])
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"mode {self.mode} needs {', '.join(missing)}")
        if (self.height is None) != (self.width is None):
            raise ValueError("give both height and width, or neither (then resolution and aspect_ratio decide)")
        if self.height is None:
            get_resolution(self.resolution)
            if self.aspect_ratio not in ASPECT_RATIOS:
                raise ValueError(f"aspect_ratio {self.aspect_ratio!r}: known {list(ASPECT_RATIOS)}")
        if self.mode == "interpolate" and self.num_frames < 2:
            raise ValueError("interpolate needs num_frames >= 2")
        return self

    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        if self.height is not None:
            return self.height, self.width
        return get_resolution(self.resolution).table[self.aspect_ratio]

    def full_prompt(self) -> str:
        """The prompt with the score-to-text controls appended (each kept: p_drop 0)."""
        row = {"aes": self.aesthetic, "flow": self.motion, "cmotion": self.camera}
        return score_to_text(self.prompt, row, np.random.default_rng(0), p_drop=0.0)


@dataclass
class Generated:
    """The result of one request: latents (C, t, h, w), pixels (T, H, W, 3) uint8, and what produced them."""

    latents: torch.Tensor
    frames: np.ndarray
    prompt: str
    settings: dict[str, Any]


def read_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """The first frame of an image or video file at (H, W): (1, H, W, 3) uint8 (resized to cover, centre crop)."""
    return fit_frames(read_frames(path, indices=[0]), size)


def prefix_ok(codec: Any, frames: int) -> bool:
    """Whether the latents of a `frames`-frame clip are the first latents of any longer clip (causal alignment)."""
    if not isinstance(codec, VideoCodec):
        return True  # the 2D VAE: one latent per frame
    chunk = codec.vae.cfg.chunk_frames
    rest = frames % chunk if chunk else frames
    return rest == 0 or rest % codec.vae.time_factor == 1


def conditioning(bundle: DiTBundle, request: SampleRequest, latent_shape: tuple[int, ...]) -> tuple[
        torch.Tensor | None, torch.Tensor | None, dict[str, Any]]:
    """(x_given (1, C, t, h, w), x_mask (1, t) bool, what was given) for the request's mode."""
    if request.mode == "t2v":
        return None, None, {}
    size = request.size()
    codec, t = bundle.codec, latent_shape[1]
    given = torch.zeros(1, *latent_shape)
    mask = torch.ones(1, t, dtype=torch.bool)

    def encode(frames: np.ndarray) -> torch.Tensor:
        return codec.encode(to_tensor(frames, len(frames))[None]).float().cpu()  # (1, C, t', h, w)

    if request.mode in ("i2v", "interpolate"):
        given[:, :, :1] = encode(read_image(request.image, size))[:, :, :1]
        mask[:, 0] = False
    if request.mode == "interpolate":
        given[:, :, -1:] = encode(read_image(request.last_image, size))[:, :, :1]
        mask[:, -1] = False
    info: dict[str, Any] = {}
    if request.mode == "continue":
        source = read_frames(request.video)
        count = max([k for k in range(1, min(len(source), request.num_frames - 1) + 1) if prefix_ok(codec, k)],
                    default=0)
        if count == 0:
            raise ValueError(f"continue: {request.video} gives no frames to continue from")
        z = encode(fit_frames(source[-count:], size))
        given[:, :, : z.shape[2]] = z
        mask[:, : z.shape[2]] = False
        info = {"given_frames": count, "given_latents": int(z.shape[2])}
    return given, mask, info


@torch.no_grad()
def generate(bundle: DiTBundle, request: SampleRequest) -> Generated:
    """Sample one video for the request (deterministic for a given seed)."""
    model, codec = bundle.model, bundle.codec
    height, width = request.size()
    if height % codec.stride or width % codec.stride:
        raise ValueError(f"sample size {height}x{width} is not a multiple of the VAE stride {codec.stride}")
    if request.num_frames > 1 and not model.cfg.temporal:
        raise ValueError(f"{bundle.folder} is an image model (no temporal blocks): num_frames must be 1")
    device = next(model.parameters()).device
    shape = (codec.channels, codec.latent_frames(request.num_frames), height // codec.stride, width // codec.stride)
    prompt = request.full_prompt()
    y, mask = bundle.captions.get([prompt])
    noise = bundle.objective.noise((1, *shape), torch.Generator().manual_seed(request.seed))
    x_given, x_mask, given = conditioning(bundle, request, shape)
    fps = request.fps if request.num_frames > 1 else bundle.image_fps
    cond = {"fps": torch.full((1,), float(fps)), "height": torch.full((1,), float(height)),
            "width": torch.full((1,), float(width))}
    fn = guided_denoiser(model, y.to(device), model.null_caption(1), request.cfg_scale, mask.to(device),
                         **{k: v.to(device) for k, v in cond.items()})
    to = (lambda v: None if v is None else v.to(device))
    objective = bundle.objective
    if objective.ddpm is not None:
        z = ddim_sample(fn, noise.to(device), objective.ddpm,
                        DDIMSamplerConfig(num_steps=request.steps, eta=0.0, cfg_scale=request.cfg_scale),
                        to(x_given), to(x_mask))
    else:
        ratio = objective.ratio({**cond, "num_frames": torch.full((1,), request.num_frames), "x0": noise})
        sampler = EulerSamplerConfig(num_steps=request.steps, cfg_scale=request.cfg_scale,
                                     num_timesteps=objective.cfg.num_timesteps, use_shift=objective.cfg.shift)
        z = euler_sample(fn, noise.to(device), sampler, 1.0 if ratio is None else ratio.cpu(), to(x_given), to(x_mask))
    video = codec.decode(z, request.num_frames).float().clamp(-1, 1).cpu()  # (1, 3, T, H, W)
    settings = {**request.model_dump(), "height": height, "width": width, "full_prompt": prompt,
                "model": str(bundle.folder), "vae": str(bundle.vae_dir), "diffusion": objective.cfg.kind, **given}
    return Generated(z[0].float().cpu(), to_uint8(video[0]), prompt, settings)


def write_outputs(sample: Generated, out_dir: Path, name: str = "sample", upscale: int = 1) -> dict[str, Path]:
    """<name>.mp4 and .gif (preview), <name>.safetensors (latents) and <name>.json (settings) under out_dir."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = media.upscale(sample.frames, upscale)
    fps = sample.settings["fps"]
    paths = {"mp4": media.write_mp4(frames, out_dir / f"{name}.mp4", fps),
             "gif": media.write_gif(frames, out_dir / f"{name}.gif", fps),
             "latents": out_dir / f"{name}.safetensors", "json": out_dir / f"{name}.json"}
    save_file({"latents": sample.latents.contiguous()}, str(paths["latents"]))
    paths["json"].write_text(json.dumps(sample.settings, indent=2, default=str) + "\n")
    return paths


def sample_to_folder(model: str, request: SampleRequest, out_dir: Path, workspace: Path,
                     vae: str | None = None, name: str = "sample", upscale: int = 1) -> dict[str, Path]:
    """`reelforge sample`: resolve the model reference, load it, generate, and write the outputs."""
    from components.model_source import load_dit, resolve_model

    bundle = load_dit(resolve_model(model, workspace), workspace, vae_dir=vae)
    return write_outputs(generate(bundle, request), out_dir, name, upscale)
