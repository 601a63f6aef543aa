"""AMT building blocks (Li et al., CVPR 2023), module names as in the official networks/blocks/*.py.

  warp / resize              RIFE-style backward warping (border, align_corners=True); bilinear rescale
  ImagePyramid               ifrnet.Encoder: four stride-2 levels of PReLU convs (pyramid1..4)
  ResBlock                   ifrnet.ResBlock: 3x3 convs where the last `side` channels get extra convs
  InitDecoder / Intermediate ifrnet decoders: features (+ warped features, flows) → flows t→0, t→1 and features
  MultiFlowDecoder           multi_flow.MultiFlowDecoder: n flow pairs, occlusion masks, residuals at full size
  SmallUpdateBlock           raft.SmallUpdateBlock: correlation + flow → feature and flow deltas
  BidirCorr                  raft.BidirCorrBlock: all-pairs correlation pyramids 0→1 and 1→0, looked up in windows
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.raft import bilinear_sample


def resize(x: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """Bilinear rescale by a factor (align_corners=False), as every AMT block does."""
    return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp img (B, C, H, W) by flow (B, 2, H, W) in pixels; out-of-frame samples repeat the border."""
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(b, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(b, -1, -1, w)
    grid = torch.cat([xs, ys], 1)
    flow = torch.cat([flow[:, 0:1] / ((img.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((img.shape[2] - 1.0) / 2.0)], 1)
    return F.grid_sample(img, (grid + flow).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def convrelu(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """Conv2d + per-channel PReLU (checkpoint names .0 and .1)."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.PReLU(cout))


class ResBlock(nn.Module):
    """Residual block whose last `side` channels pass through extra convs between the main ones."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side_channels = side
        self.conv1 = convrelu(channels, channels)
        self.conv2 = convrelu(side, side)
        self.conv3 = convrelu(channels, channels)
        self.conv4 = convrelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.side_channels
        out = self.conv1(x)
        out = self.conv3(torch.cat([out[:, :-s], self.conv2(out[:, -s:])], 1))
        out = self.conv5(torch.cat([out[:, :-s], self.conv4(out[:, -s:])], 1))
        return self.prelu(x + out)


class ImagePyramid(nn.Module):
    """(B, 3, H, W) → features at 1/2, 1/4, 1/8, 1/16 with the given widths."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.levels = len(channels)
        prev = 3
        for i, ch in enumerate(channels, 1):
            self.add_module(f"pyramid{i}", nn.Sequential(convrelu(prev, ch, 3, 2, 1), convrelu(ch, ch, 3, 1, 1)))
            prev = ch

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(1, self.levels + 1):
            x = getattr(self, f"pyramid{i}")(x)
            out.append(x)
        return out


class InitDecoder(nn.Module):
    """Coarsest level: both images' features and t → flows t→0, t→1 and features, all at twice the size."""

    def __init__(self, in_ch: int, out_ch: int, skip_ch: int):
        super().__init__()
        self.convblock = nn.Sequential(convrelu(in_ch * 2 + 1, in_ch * 2), ResBlock(in_ch * 2, skip_ch),
                                       nn.ConvTranspose2d(in_ch * 2, out_ch + 4, 4, 2, 1))

    def forward(self, f0: torch.Tensor, f1: torch.Tensor, embt: torch.Tensor):
        h, w = f0.shape[2:]
        out = self.convblock(torch.cat([f0, f1, embt.repeat(1, 1, h, w)], 1))
        flow0, flow1 = torch.chunk(out[:, :4], 2, 1)
        return flow0, flow1, out[:, 4:]


class IntermediateDecoder(nn.Module):
    """A middle level: features warped by the current flows → residual flows (upsampled x2) and features."""

    def __init__(self, in_ch: int, out_ch: int, skip_ch: int):
        super().__init__()
        self.convblock = nn.Sequential(convrelu(in_ch * 3 + 4, in_ch * 3), ResBlock(in_ch * 3, skip_ch),
                                       nn.ConvTranspose2d(in_ch * 3, out_ch + 4, 4, 2, 1))

    def forward(self, ft: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, flow0: torch.Tensor,
                flow1: torch.Tensor):
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        delta0, delta1 = torch.chunk(out[:, :4], 2, 1)
        # flows double in value when the grid doubles in size
        return delta0 + 2.0 * resize(flow0, 2.0), delta1 + 2.0 * resize(flow1, 2.0), out[:, 4:]


class MultiFlowDecoder(nn.Module):
    """Finest level: n flow pairs at full size, n occlusion masks (sigmoid) and n RGB residuals."""

    def __init__(self, in_ch: int, skip_ch: int, num_flows: int):
        super().__init__()
        self.num_flows = num_flows
        self.convblock = nn.Sequential(convrelu(in_ch * 3 + 4, in_ch * 3), ResBlock(in_ch * 3, skip_ch),
                                       nn.ConvTranspose2d(in_ch * 3, 8 * num_flows, 4, 2, 1))

    def forward(self, ft: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, flow0: torch.Tensor,
                flow1: torch.Tensor):
        n = self.num_flows
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        delta0, delta1, mask, img_res = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        flow0 = delta0 + 2.0 * resize(flow0, 2.0).repeat(1, n, 1, 1)
        flow1 = delta1 + 2.0 * resize(flow1, 2.0).repeat(1, n, 1, 1)
        return flow0, flow1, torch.sigmoid(mask), img_res


def multi_flow_combine(comb_block: nn.Module, img0: torch.Tensor, img1: torch.Tensor, flow0: torch.Tensor,
                       flow1: torch.Tensor, mask: torch.Tensor, img_res: torch.Tensor,
                       mean: torch.Tensor) -> torch.Tensor:
    """Blend the n candidate frames (each a masked mix of both warped images) into one (B, 3, H, W)."""
    b, c, h, w = flow0.shape
    n = c // 2
    flow0 = flow0.reshape(b * n, 2, h, w)  # (B, n*2, H, W) -> (B*n, 2, H, W)
    flow1 = flow1.reshape(b * n, 2, h, w)
    mask = mask.reshape(b * n, 1, h, w)
    img_res = img_res.reshape(b * n, 3, h, w)
    img0 = torch.stack([img0] * n, 1).reshape(b * n, 3, h, w)
    img1 = torch.stack([img1] * n, 1).reshape(b * n, 3, h, w)
    mean = torch.stack([mean] * n, 1).reshape(b * n, 1, 1, 1)
    warps = mask * warp(img0, flow0) + (1 - mask) * warp(img1, flow1) + mean + img_res
    warps = warps.reshape(b, n, 3, h, w)
    return warps.mean(1) + comb_block(warps.view(b, n * 3, h, w))


class SmallUpdateBlock(nn.Module):
    """Correlation (both directions) + flows → deltas of the decoder features and of both flows."""

    def __init__(self, cdim: int, hidden_dim: int, flow_dim: int, corr_dim: int, fc_dim: int, corr_levels: int,
                 radius: int, scale_factor: int | None = None):
        super().__init__()
        planes = corr_levels * (2 * radius + 1) ** 2
        self.scale_factor = scale_factor
        self.convc1 = nn.Conv2d(2 * planes, corr_dim, 1, padding=0)
        self.convf1 = nn.Conv2d(4, flow_dim * 2, 7, padding=3)
        self.convf2 = nn.Conv2d(flow_dim * 2, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)
        self.gru = self._head(fc_dim + 4 + cdim, hidden_dim, hidden_dim)  # named gru, but two plain convs
        self.feat_head = self._head(hidden_dim, hidden_dim, cdim)
        self.flow_head = self._head(hidden_dim, hidden_dim, 4)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    @staticmethod
    def _head(cin: int, hidden: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1), nn.LeakyReLU(negative_slope=0.1, inplace=True),
                             nn.Conv2d(hidden, cout, 3, padding=1))

    def forward(self, net: torch.Tensor, flow: torch.Tensor, corr: torch.Tensor):
        s = self.scale_factor
        if s is not None:  # the correlation lives at 1/8: bring the decoder features there
            net = resize(net, 1 / s)
        cor = self.lrelu(self.convc1(corr))
        flo = self.lrelu(self.convf2(self.lrelu(self.convf1(flow))))
        inp = self.lrelu(self.conv(torch.cat([cor, flo], 1)))
        out = self.gru(torch.cat([inp, flow, net], 1))
        delta_net, delta_flow = self.feat_head(out), self.flow_head(out)
        if s is not None:
            delta_net = resize(delta_net, s)
            delta_flow = s * resize(delta_flow, s)
        return delta_net, delta_flow


class BidirCorr:
    """All-pairs correlation of 1/8 features, pooled into levels, for lookups from frame 0 and from frame 1."""

    def __init__(self, fmap0: torch.Tensor, fmap1: torch.Tensor, levels: int, radius: int):
        b, d, h, w = fmap0.shape
        corr = torch.matmul(fmap0.view(b, d, h * w).transpose(1, 2), fmap1.view(b, d, h * w))
        corr = corr.view(b, h, w, 1, h, w) / torch.sqrt(torch.tensor(d).float())
        corr_t = corr.clone().permute(0, 4, 5, 3, 1, 2)  # (B, h1, w1, 1, h0, w0): the same volume seen from 1
        self.pyramid = [corr.reshape(b * h * w, 1, h, w)]  # one correlation image per source pixel
        self.pyramid_t = [corr_t.reshape(b * h * w, 1, h, w)]
        for _ in range(levels - 1):
            self.pyramid.append(F.avg_pool2d(self.pyramid[-1], 2, stride=2))
            self.pyramid_t.append(F.avg_pool2d(self.pyramid_t[-1], 2, stride=2))
        self.radius = radius

    def __call__(self, coords0: torch.Tensor, coords1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel coords (B, 2, h, w) in frame 1 and frame 0 → (B, levels (2r+1)^2, h, w) features each."""
        r = self.radius
        b, _, h, w = coords0.shape
        steps = torch.linspace(-r, r, 2 * r + 1, device=coords0.device)
        # (dy, dx) stacked but read as (x, y): the official window ordering, which the weights expect
        delta = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        c0 = coords0.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        c1 = coords1.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = [bilinear_sample(corr, c0 / 2**i + delta).view(b, h, w, -1) for i, corr in enumerate(self.pyramid)]
        out_t = [bilinear_sample(corr, c1 / 2**i + delta).view(b, h, w, -1) for i, corr in enumerate(self.pyramid_t)]
        return (torch.cat(out, -1).permute(0, 3, 1, 2).contiguous().float(),
                torch.cat(out_t, -1).permute(0, 3, 1, 2).contiguous().float())
