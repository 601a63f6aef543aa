"""MAGVIT-v2 style causal temporal VAE (Open-Sora 1.2): compresses 2D-VAE latents 4x in time, not in space.

Encoder: causal conv -> per level N ResBlocks (+ a stride-2 causal conv where the level downsamples time)
-> N ResBlocks -> GroupNorm, swish -> 1x1 conv to mean and logvar. Decoder mirrors it and upsamples time by
depth-to-space on channels. Inputs are front-padded with zero frames to a multiple of the time factor, so with
factor 4 a clip of T frames gives ceil(T / 4) latents and latent k summarises padded frames 4k..4k+3.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from models.vae.causal import NORMS, CausalConv3d, FrameGroupNorm, depth_to_time, pad_front
from models.vae.gaussian import DiagonalGaussian


@dataclass(frozen=True)
class TemporalVAEConfig:
    """Every hyperparameter of the temporal VAE; defaults are Open-Sora 1.2's VAE_Temporal_SD."""

    channels: int = 4  # in/out: the 2D VAE's latent channels
    latent_channels: int = 4
    filters: tuple[int, ...] = (128, 256, 256, 512)  # one entry per level
    num_res_blocks: int = 4  # per level, and again in the middle
    temporal_downsample: tuple[bool, ...] = (False, True, True)  # after level i, for all but the last level
    num_groups: int = 32
    norm_eps: float = 1e-5
    kernel_size: int = 3
    per_frame_norm: bool = True  # False: Open-Sora's clip-wide GroupNorm, which is not strictly causal
    # "none" replaces every GroupNorm with an identity (the tiny profile; see models.vae.spatial.SpatialVAEConfig)
    norm: str = "group"
    # parameter-free residual path (DC-AE's residual autoencoding, in time): the posterior mean adds each window's
    # mean 2D latent and the decoder adds its latent repeated over the window, so the networks learn what a
    # static clip leaves out instead of learning to copy it. Off in the full profile (Open-Sora's layout).
    time_shortcut: bool = False
    # with the shortcut: the decoder's shortcut also extrapolates each window's frames from the change since the
    # previous latent, z_k + a[c, j] * (z_k - z_{k-1}) for frame j of window k, with learnable a (zeros at init).
    # Causal (latents k-1 and k only). A least-squares fit of one such slope per frame position turned the tiny
    # VAE's 4-frame window mean from 25.5 into 26.2 dB on held-out clips, which the decoder convs had not learned.
    time_slope: bool = False

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"TemporalVAEConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.time_shortcut and self.channels != self.latent_channels:
            raise ValueError(f"TemporalVAEConfig.time_shortcut needs channels == latent_channels, got "
                             f"{self.channels} and {self.latent_channels}")
        if self.time_slope and not self.time_shortcut:
            raise ValueError("TemporalVAEConfig.time_slope extends the window-mean shortcut: set time_shortcut too")
        if len(self.temporal_downsample) != len(self.filters) - 1:
            raise ValueError(
                f"TemporalVAEConfig.temporal_downsample has {len(self.temporal_downsample)} entries; "
                f"filters {self.filters} needs {len(self.filters) - 1} (one between each pair of levels)"
            )
        for f in self.filters if self.norm == "group" else ():
            if f % self.num_groups:
                raise ValueError(f"TemporalVAEConfig.filters: {f} is not divisible by num_groups={self.num_groups}")
        if self.num_res_blocks < 1:
            raise ValueError(f"TemporalVAEConfig.num_res_blocks must be >= 1, got {self.num_res_blocks}")

    @property
    def time_factor(self) -> int:
        """Frames per latent frame: 2 per downsampling level."""
        return 2 ** sum(self.temporal_downsample)


def frame_norm(cfg: TemporalVAEConfig, channels: int) -> nn.Module:
    """The normalisation layer of the config: per-frame (or clip-wide) GroupNorm, or an identity for norm="none"."""
    if cfg.norm == "none":
        return nn.Identity()
    return FrameGroupNorm(cfg.num_groups, channels, cfg.norm_eps, cfg.per_frame_norm)


class ResBlock3d(nn.Module):
    """Pre-norm residual block: (GroupNorm, swish, causal 3x3x3 conv) x 2, 1x1 shortcut when channels change."""

    def __init__(self, cfg: TemporalVAEConfig, in_channels: int, out_channels: int):
        super().__init__()
        k = cfg.kernel_size
        self.norm1 = frame_norm(cfg, in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, k, bias=False)
        self.norm2 = frame_norm(cfg, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, k, bias=False)
        self.act = nn.SiLU()
        self.shortcut = (
            CausalConv3d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, T, H, W)."""
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.shortcut(x)


class TimeUpsample(nn.Module):
    """Causal conv to f x channels, then depth-to-time: (B, C, T, H, W) -> (B, C, T*f, H, W)."""

    def __init__(self, channels: int, factor: int, kernel_size: int):
        super().__init__()
        self.factor = factor
        self.conv = CausalConv3d(channels, channels * factor, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_time(self.conv(x), self.factor)


class TemporalEncoder(nn.Module):
    """2D latents (B, channels, T, h, w) -> moments (B, 2 * latent_channels, T / factor, h, w)."""

    def __init__(self, cfg: TemporalVAEConfig):
        super().__init__()
        k, filters = cfg.kernel_size, cfg.filters
        self.conv_in = CausalConv3d(cfg.channels, filters[0], k, bias=False)
        layers: list[nn.Module] = []
        prev = filters[0]
        for level, f in enumerate(filters):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock3d(cfg, prev, f))
                prev = f
            if level < len(filters) - 1 and cfg.temporal_downsample[level]:
                layers.append(CausalConv3d(f, f, k, time_stride=2))
        layers += [ResBlock3d(cfg, prev, prev) for _ in range(cfg.num_res_blocks)]
        self.blocks = nn.Sequential(*layers)
        self.norm_out = frame_norm(cfg, prev)
        self.act = nn.SiLU()
        self.conv_out = CausalConv3d(prev, 2 * cfg.latent_channels, 1)
        self.quant_conv = CausalConv3d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv_in(x))
        return self.quant_conv(self.conv_out(self.act(self.norm_out(x))))


class TemporalDecoder(nn.Module):
    """Latents (B, latent_channels, t, h, w) -> 2D latents (B, channels, t * factor, h, w)."""

    def __init__(self, cfg: TemporalVAEConfig):
        super().__init__()
        k, filters = cfg.kernel_size, cfg.filters
        prev = filters[-1]
        self.post_quant_conv = CausalConv3d(cfg.latent_channels, cfg.latent_channels, 1)
        self.conv_in = CausalConv3d(cfg.latent_channels, prev, k)
        layers: list[nn.Module] = [ResBlock3d(cfg, prev, prev) for _ in range(cfg.num_res_blocks)]
        for level in reversed(range(len(filters))):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock3d(cfg, prev, filters[level]))
                prev = filters[level]
            if level > 0 and cfg.temporal_downsample[level - 1]:
                layers.append(TimeUpsample(prev, 2, k))
        self.blocks = nn.Sequential(*layers)
        self.norm_out = frame_norm(cfg, prev)
        self.act = nn.SiLU()
        self.conv_out = CausalConv3d(prev, cfg.channels, k)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv_in(self.post_quant_conv(z)))
        return self.conv_out(self.act(self.norm_out(x)))


def _time_ops(module: nn.Module) -> list[tuple[str, int, int]]:
    """The temporal ops of a module in forward order: ("conv", kernel, stride) and ("d2t", factor, 0).

    Children are walked in registration order, which every module here keeps equal to forward order; a 1x1
    shortcut sits in the list as a no-op (kernel 1), so the longest causal path is what gets measured.
    """
    if isinstance(module, CausalConv3d):
        return [("conv", module.time_kernel, module.time_stride)]
    if isinstance(module, TimeUpsample):
        return _time_ops(module.conv) + [("d2t", module.factor, 0)]
    return [op for child in module.children() for op in _time_ops(child)]


def earliest_dependency(ops: list[tuple[str, int, int]], index: int) -> int:
    """Earliest input step that output step `index` of a chain of causal time ops depends on."""
    pos = index
    for kind, size, stride in reversed(ops):
        if kind == "conv":  # front pad k - s: output j covers inputs j*s - (k - s) .. j*s + s - 1
            pos = pos * stride - (size - stride)
        else:  # depth-to-time by factor f = size: output step j comes from input step j // f
            pos = pos // size
    return pos


class TemporalVAE(nn.Module):
    """Causal temporal VAE on 2D-VAE latents: encode -> DiagonalGaussian, decode -> 2D latents."""

    def __init__(self, cfg: TemporalVAEConfig = TemporalVAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.time_factor = cfg.time_factor
        self.encoder = TemporalEncoder(cfg)
        self.decoder = TemporalDecoder(cfg)
        # per channel and frame position in a window: the slope of the decoder's shortcut (cfg.time_slope)
        self.slope = nn.Parameter(torch.zeros(cfg.channels, self.time_factor)) if cfg.time_slope else None

    def front_padding(self, num_frames: int) -> int:
        """Zero frames put in front so the length is a multiple of the time factor (17 -> 3, 16 -> 0)."""
        return (-num_frames) % self.time_factor

    def latent_frames(self, num_frames: int) -> int:
        """ceil(T / factor): latent frames of a T-frame input."""
        return (num_frames + self.front_padding(num_frames)) // self.time_factor

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """(B, C, T, h, w) 2D latents -> posterior over (B, latent_channels, ceil(T / factor), h, w)."""
        pad = self.front_padding(x.shape[2])
        x = pad_front(x, pad)  # (B, C, T + pad, h, w)
        moments = self.encoder(x)  # (B, 2 * latent_channels, t, h, w)
        if self.cfg.time_shortcut:
            c = x.shape[1]
            moments = torch.cat([moments[:, :c] + self.window_mean(x, pad), moments[:, c:]], dim=1)
        return DiagonalGaussian.from_moments(moments)

    def window_mean(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        """Mean of the real frames in each latent's window: (B, C, T + pad, h, w) -> (B, C, t, h, w).

        The first window holds the `pad` zero frames too; they are left out of its mean, so a still clip (or an
        image, T = 1) maps exactly onto its 2D latents before the encoder adds anything.
        """
        b, c, t, h, w = x.shape
        f = self.time_factor
        sums = x.view(b, c, t // f, f, h, w).sum(dim=3)  # (B, C, t / f, h, w)
        counts = torch.full((t // f,), float(f), dtype=x.dtype, device=x.device)
        counts[0] -= pad
        return sums / counts.view(1, 1, -1, 1, 1)

    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, latent_channels, t, h, w) -> (B, C, num_frames, h, w); drops the front padding of encode."""
        if self.latent_frames(num_frames) != z.shape[2]:
            raise ValueError(
                f"TemporalVAE.decode: num_frames={num_frames} encodes to {self.latent_frames(num_frames)} latent "
                f"frames, but z has {z.shape[2]}"
            )
        x = self.decoder(z)  # (B, C, t * factor, h, w)
        if self.cfg.time_shortcut:
            x = x + z.repeat_interleave(self.time_factor, dim=2)
        if self.slope is not None:
            x = x + self.extrapolation(z)
        return x[:, :, self.front_padding(num_frames):]

    def extrapolation(self, z: torch.Tensor) -> torch.Tensor:
        """slope[c, j] * (z_k - z_{k-1}) for frame j of window k: (B, C, t, h, w) -> (B, C, t * factor, h, w).

        The first latent has no predecessor and gets no slope term (its change is taken as zero).
        """
        b, c, t, h, w = z.shape
        change = z - torch.cat([z[:, :, :1], z[:, :, :-1]], dim=2)  # (B, C, t, h, w)
        out = change.unsqueeze(3) * self.slope.view(1, c, 1, self.time_factor, 1, 1)  # (B, C, t, f, h, w)
        return out.reshape(b, c, t * self.time_factor, h, w)

    def encoder_context_frames(self) -> int:
        """Frames before latent k's own window (padded frames factor*k ..) that latent k still depends on."""
        k = 10_000  # any index far from the start, so no clamping at frame 0 hides the true reach
        return self.time_factor * k - earliest_dependency(_time_ops(self.encoder), k)

    def decoder_context_latents(self) -> int:
        """Latent frames before latent j that the decoded frames of latent j depend on."""
        j = 10_000
        return j - earliest_dependency(_time_ops(self.decoder), self.time_factor * j)
