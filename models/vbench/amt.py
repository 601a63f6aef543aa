"""AMT-S frame interpolation (Li et al., CVPR 2023: All-Pairs Multi-Field Transforms), as VBench's
motion_smoothness builds it (vbench/third_party/amt/networks/AMT-S.py with cfgs/AMT-S.yaml).

A RAFT SmallEncoder (instance norm, 84 channels) feeds a bidirectional all-pairs correlation pyramid at 1/8; an
IFRNet image pyramid (20, 32, 44, 56 channels) feeds coarse-to-fine decoders whose flows are refined by
correlation lookups at 1/16 → 1/4; the last decoder emits 3 flow pairs with masks and residuals, blended by
comb_block. Parameter names match amt-s.pth ({"state_dict": ...}). Images are (B, 3, H, W) RGB in [0, 1], H and W
multiples of 16 and at least `min_size` (the coarsest correlation level needs 2 pixels).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from models.raft import Encoder as FeatureEncoder
from models.raft import coords_grid
from models.vbench.amt_blocks import (BidirCorr, ImagePyramid, InitDecoder, IntermediateDecoder, MultiFlowDecoder,
                                      SmallUpdateBlock, multi_flow_combine, resize)


@dataclass(frozen=True)
class AMTConfig:
    """Widths of AMT-S (the defaults: corr_radius 3, corr_lvls 4, num_flows 3 of cfgs/AMT-S.yaml)."""

    channels: tuple[int, int, int, int] = (20, 32, 44, 56)  # image pyramid at 1/2 .. 1/16
    skip_channels: int = 20  # the side channels of every ResBlock
    feature_dim: int = 84  # correlation features (SmallEncoder output)
    num_flows: int = 3
    corr_levels: int = 4
    corr_radius: int = 3
    hidden_dim: int = 76  # update blocks
    flow_dim: int = 20
    corr_dim: int = 64
    fc_dim: int = 68

    def __post_init__(self):
        if len(self.channels) != 4:
            raise ValueError(f"AMT has four pyramid levels, got channels {self.channels}")


class AMT(nn.Module):
    """forward(img0, img1, embt, scale_factor) → the frame at time embt between them, (B, 3, H, W) in [0, 1]."""

    def __init__(self, cfg: AMTConfig = AMTConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.min_size = 8 * 2 ** cfg.corr_levels  # 1/8 features pooled levels-1 times keep >= 2 pixels
        self.feat_encoder = FeatureEncoder(cfg.feature_dim, "instance", small=True)
        self.encoder = ImagePyramid(c)
        self.decoder4 = InitDecoder(c[3], c[2], cfg.skip_channels)
        self.decoder3 = IntermediateDecoder(c[2], c[1], cfg.skip_channels)
        self.decoder2 = IntermediateDecoder(c[1], c[0], cfg.skip_channels)
        self.decoder1 = MultiFlowDecoder(c[0], cfg.skip_channels, cfg.num_flows)
        # decoder features live at 1/8, 1/4, 1/2: the update blocks bring them to the correlation's 1/8
        self.update4 = self._update(c[2], None)
        self.update3 = self._update(c[1], 2)
        self.update2 = self._update(c[0], 4)
        n = cfg.num_flows
        self.comb_block = nn.Sequential(nn.Conv2d(3 * n, 6 * n, 3, 1, 1), nn.PReLU(6 * n), nn.Conv2d(6 * n, 3, 3, 1, 1))

    def _update(self, cdim: int, scale: int | None) -> SmallUpdateBlock:
        c = self.cfg
        return SmallUpdateBlock(cdim, c.hidden_dim, c.flow_dim, c.corr_dim, c.fc_dim, c.corr_levels, c.corr_radius,
                                scale)

    @staticmethod
    def _lookup(corr_fn: BidirCorr, coord: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor,
                embt: torch.Tensor, downsample: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Correlation at the positions the flows point to, read as 0→1 and 1→0 flows (linear motion)."""
        if downsample != 1:
            inv = 1 / downsample
            flow0, flow1 = inv * resize(flow0, inv), inv * resize(flow1, inv)
        corr0, corr1 = corr_fn(coord + flow1 * (1.0 / embt), coord + flow0 * (1.0 / (1.0 - embt)))
        return torch.cat([corr0, corr1], 1), torch.cat([flow0, flow1], 1)

    def _refine(self, update: SmallUpdateBlock, corr_fn: BidirCorr, coord: torch.Tensor, flow0: torch.Tensor,
                flow1: torch.Tensor, ft: torch.Tensor, embt: torch.Tensor, downsample: int):
        corr, flow = self._lookup(corr_fn, coord, flow0, flow1, embt, downsample)
        delta_ft, delta_flow = update(ft, flow, corr)
        delta0, delta1 = torch.chunk(delta_flow, 2, 1)
        return flow0 + delta0, flow1 + delta1, ft + delta_ft

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor | float = 0.5,
                scale_factor: float = 1.0) -> torch.Tensor:
        b, _, h, w = img0.shape
        # VBench's shrunken inputs need not be multiples of 16 once scaled: its padding is 16 / scale
        if (scale_factor == 1.0 and (h % 16 or w % 16)) or min(h, w) * scale_factor < self.min_size:
            raise ValueError(f"AMT needs H and W divisible by 16 and >= {self.min_size} (after scaling by "
                             f"{scale_factor}), got {(h, w)}: pad first")
        embt = torch.as_tensor(embt, dtype=img0.dtype, device=img0.device).reshape(-1, 1, 1, 1).expand(b, 1, 1, 1)
        # one brightness offset per pair, removed before and restored after warping
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0, img1 = img0 - mean, img1 - mean
        x0 = resize(img0, scale_factor) if scale_factor != 1.0 else img0
        x1 = resize(img1, scale_factor) if scale_factor != 1.0 else img1
        coord = coords_grid(b, x0.shape[2] // 8, x0.shape[3] // 8, img0.device)
        fmap0, fmap1 = self.feat_encoder(torch.cat([x0, x1])).split(b)  # instance norm is per image
        corr_fn = BidirCorr(fmap0, fmap1, self.cfg.corr_levels, self.cfg.corr_radius)
        f0_1, f0_2, f0_3, f0_4 = self.encoder(x0)  # 1/2, 1/4, 1/8, 1/16
        f1_1, f1_2, f1_3, f1_4 = self.encoder(x1)

        flow0, flow1, ft = self.decoder4(f0_4, f1_4, embt)  # at 1/8
        flow0, flow1, ft = self._refine(self.update4, corr_fn, coord, flow0, flow1, ft, embt, 1)
        flow0, flow1, ft = self.decoder3(ft, f0_3, f1_3, flow0, flow1)  # at 1/4
        flow0, flow1, ft = self._refine(self.update3, corr_fn, coord, flow0, flow1, ft, embt, 2)
        flow0, flow1, ft = self.decoder2(ft, f0_2, f1_2, flow0, flow1)  # at 1/2
        flow0, flow1, ft = self._refine(self.update2, corr_fn, coord, flow0, flow1, ft, embt, 4)
        flow0, flow1, mask, img_res = self.decoder1(ft, f0_1, f1_1, flow0, flow1)  # full size (scaled)
        if scale_factor != 1.0:
            flow0 = resize(flow0, 1.0 / scale_factor) * (1.0 / scale_factor)
            flow1 = resize(flow1, 1.0 / scale_factor) * (1.0 / scale_factor)
            mask, img_res = resize(mask, 1.0 / scale_factor), resize(img_res, 1.0 / scale_factor)
        pred = multi_flow_combine(self.comb_block, img0, img1, flow0, flow1, mask, img_res, mean)
        return pred.clamp(0, 1)


def AMT_S(**overrides) -> AMT:
    """AMT-S (amt-s.pth, trained on Vimeo90K): 2.99M parameters."""
    return AMT(replace(AMTConfig(), **overrides))


AMT_models = {"S": AMT_S}
