"""RAFT optical flow (Teed & Deng, ECCV 2020) in pure PyTorch, module names matching the official checkpoints.

raft-things.pth / raft-small.pth load with `load_state_dict` once the DataParallel "module." prefix is stripped
(components does that). Sizes: RAFT_models["things"]() (BasicEncoder, 5.3M params) and RAFT_models["small"]()
(SmallEncoder, 1.0M). Images are (B, 3, H, W) RGB floats in [0, 255], H and W multiples of 8 (pad_to_multiple).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class RAFTConfig:
    """Widths of the official large and small models; the correlation pyramid they were trained with."""

    small: bool = False
    hidden_dim: int = 128  # GRU state
    context_dim: int = 128  # context features fed to every update
    feature_dim: int = 256  # fnet output channels (correlation features)
    corr_levels: int = 4
    corr_radius: int = 4
    iters: int = 12  # refinement iterations at inference (the paper's default for evaluation)

    @property
    def corr_planes(self) -> int:
        return self.corr_levels * (2 * self.corr_radius + 1) ** 2


THINGS = RAFTConfig()
SMALL = RAFTConfig(small=True, hidden_dim=96, context_dim=64, feature_dim=128, corr_radius=3)


def _norm(kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # no affine parameters, as in the checkpoints
    if kind == "none":
        return nn.Sequential()
    raise ValueError(f"unknown norm {kind!r}; known: group, batch, instance, none")


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a (strided 1x1) shortcut."""

    def __init__(self, in_planes: int, planes: int, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1, self.norm2 = _norm(norm, planes, planes // 8), _norm(norm, planes, planes // 8)
        self.downsample = None
        if stride != 1:
            # the checkpoints hold this norm twice: as norm3 and as downsample.1
            self.norm3 = _norm(norm, planes, planes // 8)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class BottleneckBlock(nn.Module):
    """1x1 → 3x3 → 1x1 at a quarter of the width, with a (strided 1x1) shortcut."""

    def __init__(self, in_planes: int, planes: int, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes // 4, 1)
        self.conv2 = nn.Conv2d(planes // 4, planes // 4, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(planes // 4, planes, 1)
        self.relu = nn.ReLU(inplace=True)
        groups = planes // 8
        self.norm1, self.norm2 = _norm(norm, planes // 4, groups), _norm(norm, planes // 4, groups)
        self.norm3 = _norm(norm, planes, groups)
        self.downsample = None
        if stride != 1:
            self.norm4 = _norm(norm, planes, groups)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class Encoder(nn.Module):
    """Feature / context encoder at 1/8 resolution: 7x7 stride-2 stem, three stages of two blocks, 1x1 head.

    widths (64, 96, 128) with residual blocks is the official BasicEncoder; (32, 64, 96) with bottlenecks the
    SmallEncoder.
    """

    def __init__(self, output_dim: int, norm: str, small: bool = False):
        super().__init__()
        widths = (32, 64, 96) if small else (64, 96, 128)
        block = BottleneckBlock if small else ResidualBlock
        self.norm1 = _norm(norm, widths[0], 8)
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        layers, in_planes = [], widths[0]
        for width, stride in zip(widths, (1, 2, 2)):
            layers.append(nn.Sequential(block(in_planes, width, norm, stride), block(width, width, norm, 1)))
            in_planes = width
        self.layer1, self.layer2, self.layer3 = layers
        self.conv2 = nn.Conv2d(widths[-1], output_dim, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class FlowHead(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


def _gru_step(convz: nn.Conv2d, convr: nn.Conv2d, convq: nn.Conv2d, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    hx = torch.cat([h, x], dim=1)
    z, r = torch.sigmoid(convz(hx)), torch.sigmoid(convr(hx))
    q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
    return (1 - z) * h + z * q


class ConvGRU(nn.Module):
    """3x3 convolutional GRU (small model)."""

    def __init__(self, hidden_dim: int, input_dim: int):
        super().__init__()
        self.convz, self.convr, self.convq = (nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
                                              for _ in range(3))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _gru_step(self.convz, self.convr, self.convq, h, x)


class SepConvGRU(nn.Module):
    """A 1x5 then a 5x1 GRU step: a large receptive field at the cost of one 3x3 (large model)."""

    def __init__(self, hidden_dim: int, input_dim: int):
        super().__init__()
        c = hidden_dim + input_dim
        self.convz1, self.convr1, self.convq1 = (nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2)) for _ in range(3))
        self.convz2, self.convr2, self.convq2 = (nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0)) for _ in range(3))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = _gru_step(self.convz1, self.convr1, self.convq1, h, x)
        return _gru_step(self.convz2, self.convr2, self.convq2, h, x)


class MotionEncoder(nn.Module):
    """Correlation lookups + current flow → motion features (the flow itself rides along in the last 2 channels)."""

    def __init__(self, cfg: RAFTConfig):
        super().__init__()
        self.small = cfg.small
        if cfg.small:
            self.convc1 = nn.Conv2d(cfg.corr_planes, 96, 1)
            self.convf1, self.convf2 = nn.Conv2d(2, 64, 7, padding=3), nn.Conv2d(64, 32, 3, padding=1)
            self.conv = nn.Conv2d(128, 80, 3, padding=1)
        else:
            self.convc1 = nn.Conv2d(cfg.corr_planes, 256, 1)
            self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
            self.convf1, self.convf2 = nn.Conv2d(2, 128, 7, padding=3), nn.Conv2d(128, 64, 3, padding=1)
            self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc1(corr))
        if not self.small:
            cor = F.relu(self.convc2(cor))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class UpdateBlock(nn.Module):
    """One refinement step: GRU on (context, motion features) → flow delta, plus the upsampling mask (large)."""

    def __init__(self, cfg: RAFTConfig):
        super().__init__()
        self.encoder = MotionEncoder(cfg)
        motion_dim = 82 if cfg.small else 128
        gru = ConvGRU if cfg.small else SepConvGRU
        self.gru = gru(cfg.hidden_dim, cfg.context_dim + motion_dim)
        self.flow_head = FlowHead(cfg.hidden_dim, 128 if cfg.small else 256)
        self.mask = None
        if not cfg.small:
            self.mask = nn.Sequential(nn.Conv2d(cfg.hidden_dim, 256, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(256, 8 * 8 * 9, 1))

    def forward(self, net, inp, corr, flow) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], dim=1))
        # 0.25 balances the mask's gradients against the flow head's (official scaling, weights depend on it)
        mask = 0.25 * self.mask(net) if self.mask is not None else None
        return net, mask, self.flow_head(net)


def coords_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates (B, 2, H, W), channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([xs, ys]).float()[None].repeat(batch, 1, 1, 1)


def bilinear_sample(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sample img (N, C, H, W) at pixel coordinates (N, h, w, 2) in (x, y) order, zeros outside."""
    h, w = img.shape[-2:]
    x, y = coords.split(1, dim=-1)
    grid = torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
    return F.grid_sample(img, grid, align_corners=True)


class CorrPyramid:
    """All-pairs correlation of 1/8-resolution features, average-pooled into levels, looked up around coords."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, levels: int, radius: int):
        b, d, h, w = fmap1.shape
        corr = fmap1.reshape(b, d, h * w).transpose(1, 2) @ fmap2.reshape(b, d, h * w) / d ** 0.5  # (B, hw, hw)
        corr = corr.reshape(b * h * w, 1, h, w)  # one correlation image per source pixel
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)
        self.radius = radius

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (B, 2, h, w) → correlation features (B, levels * (2r+1)^2, h, w)."""
        r = self.radius
        b, _, h, w = coords.shape
        steps = torch.linspace(-r, r, 2 * r + 1, device=coords.device)
        # (dy, dx) stacked but read as (x, y): the official window ordering, which the weights expect
        delta = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = [bilinear_sample(corr, centre / 2 ** i + delta).view(b, h, w, -1) for i, corr in enumerate(self.pyramid)]
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


class RAFT(nn.Module):
    """Recurrent All-Pairs Field Transforms: forward(img1, img2) → flow (B, 2, H, W) in pixels, x then y."""

    def __init__(self, cfg: RAFTConfig = THINGS):
        super().__init__()
        self.cfg = cfg
        self.fnet = Encoder(cfg.feature_dim, "instance", cfg.small)
        self.cnet = Encoder(cfg.hidden_dim + cfg.context_dim, "none" if cfg.small else "batch", cfg.small)
        self.update_block = UpdateBlock(cfg)
        self.min_size = 8 * 2 ** cfg.corr_levels  # the coarsest correlation level keeps >= 2 pixels

    def upsample(self, flow: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """1/8-resolution flow → full resolution: learned convex combination of 3x3 neighbours, else bilinear."""
        b, _, h, w = flow.shape
        if mask is None:
            return 8 * F.interpolate(flow, size=(8 * h, 8 * w), mode="bilinear", align_corners=True)
        mask = torch.softmax(mask.view(b, 1, 9, 8, 8, h, w), dim=2)
        up = F.unfold(8 * flow, [3, 3], padding=1).view(b, 2, 9, 1, 1, h, w)
        up = (mask * up).sum(dim=2)  # (B, 2, 8, 8, h, w)
        return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, 8 * h, 8 * w)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int | None = None,
                flow_init: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Flow estimates after each iteration (the last is the answer), each (B, 2, H, W)."""
        cfg = self.cfg
        h, w = image1.shape[-2:]
        if h % 8 or w % 8 or min(h, w) < self.min_size:
            raise ValueError(f"RAFT needs H and W divisible by 8 and >= {self.min_size} (a coarsest correlation "
                             f"level of 1 pixel divides by zero in the lookup), got {(h, w)}: use pad_to_multiple")
        image1, image2 = 2 * (image1 / 255.0) - 1.0, 2 * (image2 / 255.0) - 1.0
        b = image1.shape[0]
        fmap1, fmap2 = self.fnet(torch.cat([image1, image2])).float().split(b)  # one pass; instance norm is per image
        corr_fn = CorrPyramid(fmap1, fmap2, cfg.corr_levels, cfg.corr_radius)
        net, inp = self.cnet(image1).split([cfg.hidden_dim, cfg.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        coords0 = coords_grid(b, fmap1.shape[2], fmap1.shape[3], image1.device)
        coords1 = coords0.clone() if flow_init is None else coords0 + flow_init
        out = []
        for _ in range(iters or cfg.iters):
            coords1 = coords1.detach()
            net, mask, delta = self.update_block(net, inp, corr_fn(coords1), coords1 - coords0)
            coords1 = coords1 + delta
            out.append(self.upsample(coords1 - coords0, mask))
        return out


def pad_to_multiple(x: torch.Tensor, multiple: int = 8, minimum: int = 0) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Replicate-pad (…, H, W) to multiples of `multiple`, at least `minimum`, centred (RAFT's 'sintel' padding)."""
    h, w = x.shape[-2:]
    ph, pw = max(minimum - h, (-h) % multiple), max(minimum - w, (-w) % multiple)
    ph, pw = ph + (-(h + ph)) % multiple, pw + (-(w + pw)) % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return F.pad(x, pad, mode="replicate"), pad


def unpad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Undo pad_to_multiple on (…, H, W)."""
    left, right, top, bottom = pad
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


def RAFT_things(**overrides) -> RAFT:
    """The large model (raft-things.pth, raft-sintel.pth, raft-kitti.pth, raft-chairs.pth)."""
    return RAFT(replace(THINGS, **overrides))


def RAFT_small(**overrides) -> RAFT:
    """The small model (raft-small.pth)."""
    return RAFT(replace(SMALL, **overrides))


RAFT_models = {"things": RAFT_things, "small": RAFT_small}
