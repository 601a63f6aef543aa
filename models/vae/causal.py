"""Causal building blocks in time: front-padded 3D convolution, per-frame GroupNorm, depth-to-time."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _triple(size: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (size, size, size) if isinstance(size, int) else tuple(size)


class CausalConv3d(nn.Module):
    """Conv3d that zero-pads only the front of time (output t sees inputs <= t) and pads space to "same"."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        time_stride: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        kt, kh, kw = _triple(kernel_size)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"CausalConv3d: spatial kernel ({kh}, {kw}) must be odd for 'same' padding")
        if time_stride > kt:
            raise ValueError(f"CausalConv3d: time_stride {time_stride} > time kernel {kt} would skip frames")
        self.time_kernel = kt
        self.time_stride = time_stride
        # kt - stride frames in front: with stride 2 and kernel 3, output j covers inputs 2j-1..2j+1, so it ends
        # exactly on the last frame of its 2-frame window and never looks ahead.
        self.time_pad = kt - time_stride
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            (kt, kh, kw),
            stride=(time_stride, 1, 1),
            padding=(0, kh // 2, kw // 2),
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C', T // time_stride, H, W)."""
        x = F.pad(x, (0, 0, 0, 0, self.time_pad, 0))  # (B, C, time_pad + T, H, W), zeros in front
        return self.conv(x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics are taken per frame, so normalisation never mixes time steps.

    MAGVIT-v2 and Open-Sora normalise over (C/G, T, H, W): that lets every latent of a clip see its last frame,
    which breaks causality. Per-frame statistics keep the same parameters (weights load either way);
    `per_frame=False` restores the clip-wide statistics of Open-Sora.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, per_frame: bool = True):
        super().__init__(num_groups, num_channels, eps=eps)
        self.per_frame = per_frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C, T, H, W)."""
        if not self.per_frame:
            return super().forward(x)
        b, c, t, h, w = x.shape
        g = x.view(b, self.num_groups, c // self.num_groups, t, h, w)  # (B, G, C/G, T, H, W)
        var, mean = torch.var_mean(g, dim=(2, 4, 5), keepdim=True, correction=0)  # (B, G, 1, T, 1, 1)
        g = (g - mean) * torch.rsqrt(var + self.eps)
        x = g.view(b, c, t, h, w)  # (B, C, T, H, W)
        return x * self.weight.view(1, c, 1, 1, 1) + self.bias.view(1, c, 1, 1, 1)


def depth_to_time(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Move channel groups into time: (B, C*f, T, H, W) -> (B, C, T*f, H, W); step t becomes steps t*f..t*f+f-1."""
    b, cf, t, h, w = x.shape
    if cf % factor:
        raise ValueError(f"depth_to_time: {cf} channels do not split into {factor} time steps")
    x = x.view(b, cf // factor, factor, t, h, w)  # (B, C, f, T, H, W)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, C, T, f, H, W)
    return x.reshape(b, cf // factor, t * factor, h, w)  # (B, C, T*f, H, W)


def pad_front(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Prepend `frames` zero frames: (B, C, T, H, W) -> (B, C, frames + T, H, W)."""
    return F.pad(x, (0, 0, 0, 0, frames, 0)) if frames else x


NORMS = ("group", "none")  # the `norm` choices of SpatialVAEConfig and TemporalVAEConfig


def remove_group_norms(module: nn.Module) -> None:
    """Replace every nn.GroupNorm inside `module` with nn.Identity (in place; the norms' parameters go too)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(parent, name, nn.Identity())
