"""Inception-I3D (Kinetics-400) for FVD: 400-d pre-softmax logits of a (B, 3, T, 224, 224) clip in [-1, 1].

Module and parameter names follow pytorch-i3d as used by VideoGPT/TATS (`Conv3d_1a_7x7.conv3d.weight`,
`Mixed_3b.b0.bn.running_mean`, ..., `logits.conv3d.bias`), so `i3d_pretrained_400.pt` loads with strict keys.
Convolutions and max-pools use TensorFlow "SAME" padding computed from the input size, like the original.
`TorchScriptI3D` wraps StyleGAN-V's `i3d_torchscript.pt` (the TF-hub port) behind the same call.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# pytorch-i3d's BatchNorm3d(eps=1e-5) in the VideoGPT copy; the momentum is irrelevant in eval mode
BN_EPS = 1e-5
# (b0, b1a, b1b, b2a, b2b, b3b) output channels of each Inception block, from the I3D paper / pytorch-i3d
MIXED: dict[str, tuple[int, ...]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
FEATURE_DIM = 400
MIN_FRAMES = 9  # three stride-2 stages then a 2-frame average pool: ceil(ceil(ceil(T/2)/2)/2) >= 2
MIN_SIDE = 193  # five stride-2 stages then a 7x7 average pool


def same_pad(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """F.pad arguments (w, w, h, h, t, t) for TensorFlow SAME padding of a (T, H, W) input."""
    pads: list[int] = []
    for s, k, st in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max(k - (st if s % st == 0 else s % st), 0)
        pads += [total // 2, total - total // 2]  # TF puts the odd pixel at the end
    return tuple(pads)


class SamePool3d(nn.Module):
    """Max-pool with SAME padding (zeros, as pytorch-i3d pads before nn.MaxPool3d)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_pad(tuple(x.shape[2:]), self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class Unit3D(nn.Module):
    """SAME-padded Conv3d, then BatchNorm3d and ReLU (the logits unit has neither, but a bias)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        norm_act: bool = True,
    ):
        super().__init__()
        self.kernel, self.stride, self.norm_act = kernel, stride, norm_act
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=not norm_act)
        if norm_act:
            self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_pad(tuple(x.shape[2:]), self.kernel, self.stride)))
        return F.relu(self.bn(x)) if self.norm_act else x


class InceptionBlock(nn.Module):
    """Four branches (1x1 | 1x1→3x3x3 | 1x1→3x3x3 | maxpool→1x1) concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3a = SamePool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, c3)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """I3D RGB stream: (B, 3, T, H, W) in [-1, 1] -> (B, num_classes) logits averaged over the remaining time."""

    def __init__(self, num_classes: int = FEATURE_DIM, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SamePool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SamePool3d((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, widths in MIXED.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = SamePool3d((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = SamePool3d((2, 2, 2), (2, 2, 2))
            block = InceptionBlock(channels, widths)
            setattr(self, name, block)
            channels = block.out_channels
        self.logits = Unit3D(channels, num_classes, norm_act=False)
        # registration order above is the forward order, as in pytorch-i3d's VALID_ENDPOINTS
        self.trunk = [name for name, _ in self.named_children() if name != "logits"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c activations (B, 1024, T/8, H/32, W/32)."""
        for name in self.trunk:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"InceptionI3d: expected (B, 3, T, H, W), got {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES or min(x.shape[3:]) < MIN_SIDE:
            raise ValueError(
                f"InceptionI3d: needs >= {MIN_FRAMES} frames and sides >= {MIN_SIDE} (224 by convention), "
                f"got {tuple(x.shape[2:])}"
            )
        x = F.avg_pool3d(self.features(x), kernel_size=(2, 7, 7), stride=1)  # (B, 1024, t, h, w)
        # dropout is the identity in eval mode, so the logits unit follows the pool directly
        x = self.logits(x)  # (B, classes, t, h, w); h = w = 1 at 224x224
        return x.mean(dim=(3, 4)).mean(dim=2)  # (B, classes): spatial squeeze, then VideoGPT's mean over time

    def load_pretrained(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a pytorch-i3d state dict (strict keys; old files without BN step counters are accepted)."""
        state = dict(state_dict)
        for key, value in self.state_dict().items():
            if key.endswith("num_batches_tracked") and key not in state:
                state[key] = value  # counters are unused in eval; files saved by torch < 0.4.1 lack them
        self.load_state_dict(state, strict=True)


class TorchScriptI3D(nn.Module):
    """StyleGAN-V's TorchScript I3D behind InceptionI3d's call: [-1, 1] input already at 224x224 -> (B, 400).

    Its forward is `(x, rescale, resize, return_features)`: rescale=True maps [0, 255] to [-1, 1] inside, and
    resize=True resizes to 224 inside; we do both ourselves (identically for real and reconstructed clips),
    so both are off, and return_features=True gives the 400 pre-softmax logits instead of probabilities.
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"TorchScriptI3D: expected (B, 3, T, H, W), got {tuple(x.shape)}")
        return self.module(x, rescale=False, resize=False, return_features=True)


def preprocess(video: torch.Tensor, size: int = 224) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 3, T, size, size): bilinear resize of the short side, centre crop."""
    b, c, t, h, w = video.shape
    scale = size / min(h, w)
    # ceil as in StyleGAN-V/VideoGPT so the long side never drops below `size`
    th, tw = max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale))
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B*T, 3, H, W)
    if (th, tw) != (h, w):
        frames = F.interpolate(frames.float(), size=(th, tw), mode="bilinear", align_corners=False)
    top, left = (th - size) // 2, (tw - size) // 2
    frames = frames[:, :, top : top + size, left : left + size]
    return frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4).contiguous()  # (B, 3, T, size, size)
