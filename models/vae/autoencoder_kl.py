"""The SD / SDXL 2D VAE (AutoencoderKL) with diffusers' module names and init order, so weights load either way.

Our own copy because importing diffusers costs ~3 s in every stage process that builds a VAE (about 20 of a chain's
stages). The layers, their order and the arithmetic follow diffusers' Encoder / Decoder with DownEncoderBlock2D,
UpDecoderBlock2D, UNetMidBlock2D and one-head mid-block attention: tests/unit/test_autoencoder_kl.py checks the
same seed builds the same weights, and the same weights give the same outputs, bit for bit. SDXL's pretrained VAE
still loads through diffusers (components/training/vae_model.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.vae.gaussian import DiagonalGaussian

EPS = 1e-6


class ResnetBlock2D(nn.Module):
    """GroupNorm → SiLU → 3x3 conv, twice, plus the input (through a 1x1 conv when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=EPS)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.conv_shortcut is None:
            return x + h
        # diffusers makes the input contiguous when training (a conv's output may come back in another memory
        # format); the 1x1 conv then rounds differently, so do the same to stay bit-identical
        return self.conv_shortcut(x.contiguous() if self.training else x) + h


class Downsample2D(nn.Module):
    """Pad right and bottom by one, then a stride-2 3x3 conv (diffusers' padding=0 variant)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    """Nearest-neighbour 2x, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= 64 or x.numel() * 2 > 2**31:  # as diffusers: nearest upsampling of large inputs
            x = x.contiguous()
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Attention(nn.Module):
    """One-head self-attention over the H·W positions of a feature map, with a GroupNorm and a residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.view(b, c, h * w).transpose(1, 2)  # (B, HW, C)
        tokens = self.group_norm(tokens.transpose(1, 2)).transpose(1, 2)
        q, k, v = (proj(tokens).view(b, -1, 1, c).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        out = out.transpose(1, 2).reshape(b, -1, c)  # (B, HW, C)
        out = self.to_out[1](self.to_out[0](out))
        return out.transpose(-1, -2).reshape(b, c, h, w) + x  # (B, C, H, W)


class MidBlock(nn.Module):
    """Resnet, (attention,) resnet at the lowest resolution."""

    def __init__(self, channels: int, groups: int, attention: bool) -> None:
        super().__init__()
        first = ResnetBlock2D(channels, channels, groups)
        self.attentions = nn.ModuleList([Attention(channels, groups)] if attention else [])
        self.resnets = nn.ModuleList([first, ResnetBlock2D(channels, channels, groups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if len(self.attentions):
            x = self.attentions[0](x)
        return self.resnets[1](x)


class ResnetStack(nn.Module):
    """A level of resnets, then a down- or upsampler unless it is the last level (DownEncoder/UpDecoderBlock2D)."""

    def __init__(self, in_channels: int, out_channels: int, layers: int, groups: int, resample: str | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(layers)]
        )
        if resample == "down":
            self.downsamplers = nn.ModuleList([Downsample2D(out_channels)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels)])
        self.resample = resample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        if self.resample == "down":
            x = self.downsamplers[0](x)
        elif self.resample == "up":
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    """Image (B, 3, H, W) → moments (B, 2·latent, H/2^(levels-1), W/2^(levels-1))."""

    def __init__(self, channels: tuple[int, ...], layers: int, latent: int, groups: int, attention: bool) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels[0], 3, padding=1)
        last = len(channels) - 1
        self.down_blocks = nn.ModuleList(
            [ResnetStack(channels[max(i - 1, 0)], c, layers, groups, None if i == last else "down")
             for i, c in enumerate(channels)]
        )
        self.mid_block = MidBlock(channels[-1], groups, attention)
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=EPS)
        self.conv_out = nn.Conv2d(channels[-1], 2 * latent, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """Latent (B, latent, h, w) → image (B, 3, h·2^(levels-1), w·2^(levels-1))."""

    def __init__(self, channels: tuple[int, ...], layers: int, latent: int, groups: int, attention: bool) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(latent, channels[-1], 3, padding=1)
        self.up_blocks = nn.ModuleList()  # registered before the mid block, built after it (diffusers' order)
        self.mid_block = MidBlock(channels[-1], groups, attention)
        up = list(reversed(channels))
        last = len(up) - 1
        self.up_blocks.extend(
            ResnetStack(up[max(i - 1, 0)], c, layers + 1, groups, None if i == last else "up") for i, c in enumerate(up)
        )
        self.conv_norm_out = nn.GroupNorm(groups, channels[0], eps=EPS)
        self.conv_out = nn.Conv2d(channels[0], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class ImagePosterior(DiagonalGaussian):
    """The posterior of one image; its KL sums over (C, H, W) as diffusers does (same bits)."""

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per image, (B,)."""
        return 0.5 * torch.sum(self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar, dim=[1, 2, 3])


@dataclass
class EncodeOutput:
    latent_dist: ImagePosterior


@dataclass
class DecodeOutput:
    sample: torch.Tensor


@dataclass(frozen=True)
class AutoencoderKLConfig:
    """The fields of diffusers' AutoencoderKL.config that callers read (ImageCodec: latent_channels, strides)."""

    block_out_channels: tuple[int, ...]
    layers_per_block: int
    latent_channels: int
    norm_num_groups: int
    mid_block_add_attention: bool


class AutoencoderKL(nn.Module):
    """encode(x).latent_dist (a DiagonalGaussian) and decode(z).sample, as diffusers' AutoencoderKL."""

    def __init__(self, block_out_channels: tuple[int, ...], layers_per_block: int, latent_channels: int,
                 norm_num_groups: int, mid_block_add_attention: bool) -> None:
        super().__init__()
        args = (tuple(block_out_channels), layers_per_block, latent_channels, norm_num_groups, mid_block_add_attention)
        self.config = AutoencoderKLConfig(*args)
        self.encoder = Encoder(*args)
        self.decoder = Decoder(*args)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)

    def encode(self, x: torch.Tensor) -> EncodeOutput:
        """Images (B, 3, H, W) in [-1, 1] → the posterior over unscaled latents."""
        return EncodeOutput(ImagePosterior.from_moments(self.quant_conv(self.encoder(x))))

    def decode(self, z: torch.Tensor) -> DecodeOutput:
        """Unscaled latents (B, C, h, w) → images (B, 3, H, W)."""
        return DecodeOutput(self.decoder(self.post_quant_conv(z)))
