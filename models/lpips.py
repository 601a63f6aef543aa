"""LPIPS v0.1 (Zhang et al. 2018): a perceptual distance between images in [-1, 1], AlexNet or VGG16 trunk.

The trunk keeps torchvision's parameter names (`features.0.weight`, ...) so the torchvision checkpoints
(`alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`) load as they are; the learned linear heads keep the lpips
package's names (`lin0.model.1.weight`, ...) so its `weights/v0.1/<net>.pth` loads as it is. No torchvision.
    d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )
with f_l the activations after each trunk stage, normalised over channels at each pixel.
"""
from __future__ import annotations

import torch
import torch.nn as nn

# ScalingLayer of lpips v0.1: inputs in [-1, 1] are shifted and scaled to ImageNet statistics
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10  # lpips.normalize_tensor

# torchvision `features` layouts: ("conv", in, out, kernel, stride, padding) | ("relu",) | ("pool", kernel, stride)
ALEXNET = [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2), ("conv", 64, 192, 5, 1, 2), ("relu",),
           ("pool", 3, 2), ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
           ("conv", 256, 256, 3, 1, 1), ("relu",)]


def _vgg16() -> list[tuple]:
    layers: list[tuple] = []
    cin = 3
    for block, (width, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        if block:
            layers.append(("pool", 2, 2))
        for _ in range(convs):
            layers += [("conv", cin, width, 3, 1, 1), ("relu",)]
            cin = width
    return layers


VGG16 = _vgg16()
# lpips taps: the index just past each tapped ReLU in `features`, and the channels there
TAPS = {"alex": (ALEXNET, (2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
        "vgg": (VGG16, (4, 9, 16, 23, 30), (64, 128, 256, 512, 512))}


def _build(layout: list[tuple]) -> nn.Sequential:
    mods: list[nn.Module] = []
    for spec in layout:
        if spec[0] == "conv":
            _, cin, cout, k, s, p = spec
            mods.append(nn.Conv2d(cin, cout, k, s, p))
        elif spec[0] == "relu":
            mods.append(nn.ReLU(inplace=False))
        else:
            mods.append(nn.MaxPool2d(spec[1], spec[2]))
    return nn.Sequential(*mods)


class LinearHead(nn.Module):
    """1x1 conv to one channel without bias; `model.1` because lpips puts a Dropout at `model.0`."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """(N, 3, H, W), (N, 3, H, W) in [-1, 1] -> (N,) distances; `net` is "alex" (the standard) or "vgg"."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in TAPS:
            raise ValueError(f"LPIPS: net must be one of {sorted(TAPS)}, got {net!r}")
        layout, self.taps, channels = TAPS[net]
        self.net = net
        self.features = _build(layout[: self.taps[-1]])
        for i, c in enumerate(channels):
            setattr(self, f"lin{i}", LinearHead(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def heads(self) -> list[LinearHead]:
        return [getattr(self, f"lin{i}") for i in range(len(self.taps))]

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Trunk activations at the five taps, each unit-normalised over channels."""
        x = (x - self.shift) / self.scale
        out, start = [], 0
        for stop in self.taps:
            for layer in self.features[start:stop]:
                x = layer(x)
            start = stop
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + NORM_EPS))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two (N, 3, H, W) batches of one shape, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
        total = x.new_zeros(x.shape[0])
        for head, fx, fy in zip(self.heads(), self.activations(x), self.activations(y)):
            total = total + head((fx - fy).pow(2)).mean(dim=(1, 2, 3))  # (N,): spatial mean of one channel
        return total

    def load_trunk(self, state_dict: dict[str, torch.Tensor], source: str = "trunk state dict") -> None:
        """Load torchvision weights: every `features.*` key this trunk has (the classifier is ignored)."""
        want = self.features.state_dict()
        got = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
        _check(want, got, source, "features.")
        self.features.load_state_dict({k: got[k] for k in want})

    def load_heads(self, state_dict: dict[str, torch.Tensor], source: str = "heads state dict") -> None:
        """Load the lpips package's linear heads (`lin0.model.1.weight` ... `lin4.model.1.weight`)."""
        want = {k: v for k, v in self.state_dict().items() if k.startswith("lin")}
        got = {k: v for k, v in state_dict.items() if k.startswith("lin")}
        _check(want, got, source, "")
        self.load_state_dict({**self.state_dict(), **{k: got[k] for k in want}})


def _check(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor], source: str, prefix: str) -> None:
    """Raise naming the file and the first missing key or mismatched shape."""
    missing = [k for k in want if k not in got]
    if missing:
        raise KeyError(f"{source}: missing {prefix}{missing[0]} ({len(missing)} keys missing)")
    for key, value in want.items():
        if tuple(got[key].shape) != tuple(value.shape):
            raise ValueError(f"{source}: {prefix}{key} has shape {tuple(got[key].shape)}, "
                             f"expected {tuple(value.shape)}")
