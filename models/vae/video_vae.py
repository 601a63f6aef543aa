"""The video VAE of Open-Sora 1.2: a per-frame 2D VAE (8x8) followed by a causal temporal VAE (4x), 4 channels.

Time mapping (chunk_frames = 17, the default). The 2D latents are cut into chunks of 17 frames, the last one
possibly shorter, and each chunk goes through the temporal VAE on its own, front-padded with zero frames to a
multiple of 4 (17 -> 20). So a clip of T frames has
    latent_frames(T) = 5 * (T // 17) + ceil((T % 17) / 4)
latent frames: 1 -> 1, 17 -> 5, 33 -> 9, 51 -> 15, 102 -> 30, 204 -> 60, 408 -> 120. Inside a chunk starting at
frame s, latent k summarises frames s + max(0, 4k - 3) .. s + 4k: the first latent is the first frame alone
(image-like, MAGVIT-v2), every later one four new frames, and no latent depends on a frame after its window.
With chunk_frames = None the whole clip is one chunk: ceil(T / 4) latents, front padding (-T) % 4.

Latents are normalised per channel, z = (z_raw - shift) / scale; shift and scale are buffers, so a VAE trained
by the tiny profile carries the statistics it measured (see `set_latent_stats`, `channel_stats`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from models.vae import divide_merge
from models.vae.gaussian import DiagonalGaussian
from models.vae.spatial import SpatialVAEConfig, build_autoencoder_kl, decode_frames, encode_frames
from models.vae.temporal import TemporalVAE, TemporalVAEConfig

OPEN_SORA_SHIFT = (-0.10, 0.34, 0.27, 0.98)
OPEN_SORA_SCALE = (3.85, 2.32, 2.33, 3.06)


@dataclass(frozen=True)
class VideoVAEConfig:
    """The 2D VAE, the temporal VAE, the chunking in time and the latent normalisation."""

    spatial: SpatialVAEConfig = field(default_factory=SpatialVAEConfig)
    temporal: TemporalVAEConfig = field(default_factory=TemporalVAEConfig)
    chunk_frames: int | None = 17  # None: the temporal VAE sees the whole clip at once
    shift: tuple[float, ...] = OPEN_SORA_SHIFT
    scale: tuple[float, ...] = OPEN_SORA_SCALE

    def __post_init__(self) -> None:
        if self.spatial.latent_channels != self.temporal.channels:
            raise ValueError(
                f"VideoVAEConfig: spatial.latent_channels={self.spatial.latent_channels} != "
                f"temporal.channels={self.temporal.channels}"
            )
        n = self.temporal.latent_channels
        if len(self.shift) != n or len(self.scale) != n:
            raise ValueError(f"VideoVAEConfig: shift and scale need {n} values (one per latent channel)")
        if any(s <= 0 for s in self.scale):
            raise ValueError(f"VideoVAEConfig.scale must be positive, got {self.scale}")
        if self.chunk_frames is not None and self.chunk_frames < 1:
            raise ValueError(f"VideoVAEConfig.chunk_frames must be >= 1 or None, got {self.chunk_frames}")


@dataclass
class VAEOutput:
    """Everything a training stage needs from one forward pass (raw, un-normalised latents)."""

    x_rec: torch.Tensor  # (B, 3, T, H, W) reconstructed video
    z2d: torch.Tensor  # (B, C, T, h, w) scaled 2D latents of the input
    z2d_rec: torch.Tensor  # (B, C, T, h, w) temporal VAE reconstruction of z2d
    z: torch.Tensor  # (B, C, t, h, w) temporal latents fed to the decoder
    posterior: DiagonalGaussian  # over z


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def channel_stats(z: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of raw latents (B, C, T, h, w): the shift and scale that normalise them."""
    flat = z.transpose(0, 1).flatten(1)  # (C, B*T*h*w)
    return tuple(flat.mean(dim=1).tolist()), tuple(flat.std(dim=1).tolist())


class VideoVAE(nn.Module):
    """(B, 3, T, H, W) video in [-1, 1] <-> (B, 4, latent_frames(T), H/8, W/8) normalised latents."""

    def __init__(self, cfg: VideoVAEConfig = VideoVAEConfig(), spatial: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.spatial = spatial if spatial is not None else build_autoencoder_kl(cfg.spatial)
        got = getattr(getattr(self.spatial, "config", None), "latent_channels", cfg.spatial.latent_channels)
        if got != cfg.spatial.latent_channels:
            raise ValueError(
                f"VideoVAE: the 2D VAE has {got} latent channels, config says {cfg.spatial.latent_channels}"
            )
        # NHWC weights: oneDNN (CPU) and cuDNN then run the 2D convolutions channels-last. On 2 CPU cores a tiny
        # vae.stage0 step took 0.249 s instead of 0.298, a stage-3 step 0.55 instead of 0.60, encode + decode of
        # two 17-frame clips 0.63 s instead of 0.77; values agree to float rounding (bench/RESULTS.md, session 15).
        # Exports stay contiguous: export_safetensors copies.
        self.spatial.to(memory_format=torch.channels_last)
        self.temporal = TemporalVAE(cfg.temporal)
        self.time_factor = cfg.temporal.time_factor
        self.space_factor = cfg.spatial.downsample
        self.register_buffer("shift", torch.tensor(cfg.shift).view(1, -1, 1, 1, 1))  # (1, C, 1, 1, 1)
        self.register_buffer("scale", torch.tensor(cfg.scale).view(1, -1, 1, 1, 1))  # (1, C, 1, 1, 1)

    # ---- shapes -------------------------------------------------------------------------------------------
    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of a T-frame clip: 5 * (T // 17) + ceil((T % 17) / 4) with 17-frame chunks."""
        if num_frames < 1:
            raise ValueError(f"VideoVAE: a clip needs at least 1 frame, got {num_frames}")
        chunk = self.cfg.chunk_frames
        if chunk is None:
            return _ceil_div(num_frames, self.time_factor)
        full, rest = divmod(num_frames, chunk)
        return full * _ceil_div(chunk, self.time_factor) + _ceil_div(rest, self.time_factor)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(t, h, w) of the latents of a (T, H, W) clip; H and W must be multiples of the spatial factor."""
        f = self.space_factor
        if height % f or width % f:
            raise ValueError(f"VideoVAE: frame size {height}x{width} is not a multiple of {f}")
        return self.latent_frames(num_frames), height // f, width // f

    # ---- normalisation ------------------------------------------------------------------------------------
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.shift.to(z.dtype)) / self.scale.to(z.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale.to(z.dtype) + self.shift.to(z.dtype)

    @torch.no_grad()
    def set_latent_stats(self, shift: tuple[float, ...], scale: tuple[float, ...]) -> None:
        """Overwrite the per-channel shift and scale buffers (the tiny profile measures its own)."""
        if len(shift) != self.shift.shape[1] or len(scale) != self.scale.shape[1] or min(scale) <= 0:
            raise ValueError(f"set_latent_stats: need {self.shift.shape[1]} shifts and positive scales")
        self.shift.copy_(torch.tensor(shift).view_as(self.shift))
        self.scale.copy_(torch.tensor(scale).view_as(self.scale))

    # ---- the two halves -----------------------------------------------------------------------------------
    def encode_frames(
        self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Video (B, 3, T, H, W) -> scaled 2D latents (B, C, T, h, w), per frame in micro-batches."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"VideoVAE: expected video (B, 3, T, H, W), got {tuple(x.shape)}")
        self.latent_shape(*x.shape[2:])  # validates the frame size
        s = self.cfg.spatial
        return encode_frames(self.spatial, x, s.scaling_factor, s.micro_batch_frames, sample, generator)

    def decode_frames(self, z2d: torch.Tensor) -> torch.Tensor:
        """Scaled 2D latents (B, C, T, h, w) -> video (B, 3, T, H, W)."""
        s = self.cfg.spatial
        return decode_frames(self.spatial, z2d, s.scaling_factor, s.micro_batch_frames)

    def encode_temporal(self, z2d: torch.Tensor) -> DiagonalGaussian:
        """2D latents (B, C, T, h, w) -> posterior over raw latents (B, C, latent_frames(T), h, w), chunk by chunk."""
        chunk = self.cfg.chunk_frames or z2d.shape[2]
        posts = [self.temporal.encode(z2d[:, :, i : i + chunk]) for i in range(0, z2d.shape[2], chunk)]
        if len(posts) == 1:
            return posts[0]
        return DiagonalGaussian(torch.cat([p.mean for p in posts], 2), torch.cat([p.logvar for p in posts], 2))

    def decode_temporal(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Raw latents (B, C, t, h, w) -> 2D latents (B, C, num_frames, h, w), chunk by chunk."""
        if self.latent_frames(num_frames) != z.shape[2]:
            raise ValueError(
                f"VideoVAE.decode: num_frames={num_frames} maps to {self.latent_frames(num_frames)} latent frames, "
                f"but z has {z.shape[2]}"
            )
        chunk = self.cfg.chunk_frames or num_frames
        z_chunk = self.temporal.latent_frames(chunk)
        out = []
        for j, start in zip(range(0, z.shape[2], z_chunk), range(0, num_frames, chunk)):
            out.append(self.temporal.decode(z[:, :, j : j + z_chunk], min(chunk, num_frames - start)))
        return torch.cat(out, dim=2) if len(out) > 1 else out[0]

    # ---- public API ---------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Video (B, 3, T, H, W) -> normalised latents (B, 4, latent_frames(T), H/8, W/8).

        sample=False takes the posterior means (deterministic); sample=True draws from the 2D and the
        temporal posteriors like Open-Sora does.
        """
        post = self.encode_temporal(self.encode_frames(x, sample, generator))
        return self.normalize(post.sample(generator) if sample else post.mode())

    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Normalised latents (B, 4, t, h, w) -> video (B, 3, num_frames, 8h, 8w); num_frames undoes the padding."""
        return self.decode_frames(self.decode_temporal(self.denormalize(z), num_frames))

    def forward(
        self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> VAEOutput:
        """Training pass: 2D latents, temporal posterior, its sample, and both reconstructions."""
        z2d = self.encode_frames(x, sample, generator)
        posterior = self.encode_temporal(z2d)
        z = posterior.sample(generator) if sample else posterior.mode()
        z2d_rec = self.decode_temporal(z, x.shape[2])
        return VAEOutput(self.decode_frames(z2d_rec), z2d, z2d_rec, z, posterior)

    # ---- divide-and-merge for long videos (models/vae/divide_merge.py) ---------------------------------------
    def encode_long(
        self,
        x: torch.Tensor,
        segment_frames: int,
        overlap_frames: int | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """`encode` in overlapping segments so peak memory does not grow with T; see divide_merge.encode_long."""
        return divide_merge.encode_long(self, x, segment_frames, overlap_frames, sample, generator)

    def decode_long(
        self, z: torch.Tensor, num_frames: int, segment_latents: int, overlap_latents: int | None = None
    ) -> torch.Tensor:
        """`decode` in overlapping segments so peak memory does not grow with T; see divide_merge.decode_long."""
        return divide_merge.decode_long(self, z, num_frames, segment_latents, overlap_latents)
