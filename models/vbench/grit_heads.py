"""GRiT's detection heads: CenterNet proposals and the 3-stage cascade ROI box heads (plus the unused mask head).

  CenterNet (centernet2 dense_heads, ONLY_PROPOSAL + WITH_AGN_HM): per level a GN-conv box tower, an objectness
      heatmap `agn_hm` and relu(scale * ltrb) distances (x stride); candidates with sigmoid > 0.0001, the top
      1000 per level, score sqrt(sigmoid); NMS 0.9 over all levels, then the best 256 (kthvalue cut)
  Cascade (CascadeROIHeads + GRiTFastRCNNOutputLayers): ROIAlignV2 7x7 from P3-P5, two fc layers, a 2-way
      class score and an MLP box delta per stage, each stage refining the previous boxes (clipped); the score
      is the mean foreground probability of the 3 stages, times the proposal score, square-rooted; threshold
      0.5 (VBench), per-class NMS 0.5, at most 256 boxes
Parameter names follow the checkpoint (`proposal_generator.centernet_head.bbox_tower.0.weight`,
`roi_heads.box_head.2.fc1.weight`, `roi_heads.box_predictor.0.bbox_pred.2.bias`, `roi_heads.mask_head.deconv.weight`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.grit_config import GRiTConfig
from models.vbench.grit_ops import apply_deltas, batched_nms, clip_boxes, pool_levels
from models.vbench.grit_text import TextDecoder


class Scale(nn.Module):
    """A learnt scalar multiplier (one per pyramid level)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class CenterNetHead(nn.Module):
    """Box tower → (objectness logits (B, 1, h, w), ltrb distances in stride units (B, 4, h, w)) per level."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        c = cfg.fpn_channels
        groups = cfg.gn_groups if c % cfg.gn_groups == 0 else 25  # CenterNet's fallback for odd widths
        tower: list[nn.Module] = []
        for _ in range(cfg.box_convs):
            tower += [nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(groups, c), nn.ReLU()]
        self.cls_tower, self.share_tower = nn.Sequential(), nn.Sequential()  # empty in proposal-only mode
        self.bbox_tower = nn.Sequential(*tower)
        self.bbox_pred = nn.Conv2d(c, 4, 3, padding=1)
        self.scales = nn.ModuleList([Scale() for _ in cfg.strides])
        self.agn_hm = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        heat, reg = [], []
        for level, feature in enumerate(features):
            tower = self.bbox_tower(self.share_tower(feature))
            heat.append(self.agn_hm(tower))
            reg.append(F.relu(self.scales[level](self.bbox_pred(tower))))
        return heat, reg


class CenterNet(nn.Module):
    """Class-agnostic proposals: per image (boxes (P, 4), scores (P,)) in input pixels, unclipped."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.cfg = cfg
        self.centernet_head = CenterNetHead(cfg)

    def _level(self, heat: torch.Tensor, reg: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates of one image at one level: heat (h, w) sigmoid, reg (4, h, w) in pixels."""
        h, w = heat.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=heat.device, dtype=torch.float32) * stride,
                                torch.arange(w, device=heat.device, dtype=torch.float32) * stride, indexing="ij")
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1) + stride // 2
        scores, reg = heat.reshape(-1), reg.reshape(4, -1).t()
        keep = (scores > self.cfg.proposal_threshold).nonzero().squeeze(1)
        if len(keep) > self.cfg.pre_nms_topk:
            keep = keep[scores[keep].topk(self.cfg.pre_nms_topk).indices]
        grid, reg = grid[keep], reg[keep]
        boxes = torch.cat([grid - reg[:, :2], grid + reg[:, 2:]], 1)
        # the ROI heads need positive widths
        boxes[:, 2] = torch.max(boxes[:, 2], boxes[:, 0] + 0.01)
        boxes[:, 3] = torch.max(boxes[:, 3], boxes[:, 1] + 0.01)
        return boxes, scores[keep].sqrt()

    def forward(self, features: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        heat, reg = self.centernet_head(features)
        out = []
        for i in range(features[0].shape[0]):
            levels = [self._level(hm[i, 0].sigmoid(), r[i] * s, s) for hm, r, s in zip(heat, reg, self.cfg.strides)]
            boxes, scores = torch.cat([b for b, _ in levels]), torch.cat([s for _, s in levels])
            keep = batched_nms(boxes, scores, torch.zeros_like(scores), self.cfg.proposal_nms)
            boxes, scores = boxes[keep], scores[keep]
            if len(scores) > self.cfg.post_nms_topk:  # ties at the cut are all kept, as CenterNet does
                cut = torch.kthvalue(scores.float().cpu(), len(scores) - self.cfg.post_nms_topk + 1).values
                keep = (scores >= cut.item()).nonzero().squeeze(1)
                boxes, scores = boxes[keep], scores[keep]
            out.append((boxes, scores))
        return out


class BoxHead(nn.Module):
    """FastRCNNConvFCHead with 2 fc layers: pooled (R, C, 7, 7) → (R, fc_dim)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        width = cfg.fpn_channels * cfg.pooler_resolution**2
        for k in range(cfg.num_fc):
            self.add_module(f"fc{k + 1}", nn.Linear(width if k == 0 else cfg.fc_dim, cfg.fc_dim))
        self.num_fc = cfg.num_fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for k in range(self.num_fc):
            x = F.relu(getattr(self, f"fc{k + 1}")(x))
        return x


class BoxPredictor(nn.Module):
    """GRiTFastRCNNOutputLayers: (R, fc_dim) → class logits (R, 2) (object, background), deltas (R, 4)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.cls_score = nn.Linear(cfg.fc_dim, 2)
        self.bbox_pred = nn.Sequential(nn.Linear(cfg.fc_dim, cfg.fc_dim), nn.ReLU(), nn.Linear(cfg.fc_dim, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class MaskHead(nn.Module):
    """MaskRCNNConvUpsampleHead (4 convs, 2x deconv, 1 class-agnostic mask): in the checkpoint, unused here."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        c = cfg.fpn_channels
        for k in range(cfg.mask_convs):
            self.add_module(f"mask_fcn{k + 1}", nn.Conv2d(c, c, 3, padding=1))
        self.deconv = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.predictor = nn.Conv2d(c, 1, 1)
        self.mask_convs = cfg.mask_convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(self.mask_convs):
            x = F.relu(getattr(self, f"mask_fcn{k + 1}")(x))
        return self.predictor(F.relu(self.deconv(x)))


class ROIHeads(nn.Module):
    """GRiTROIHeadsAndTextDecoder: the cascade stages, the mask head and the text decoder (GRiT.describe runs it)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.cfg = cfg
        stages = len(cfg.cascade_weights)
        self.box_head = nn.ModuleList([BoxHead(cfg) for _ in range(stages)])
        self.box_predictor = nn.ModuleList([BoxPredictor(cfg) for _ in range(stages)])
        self.mask_head = MaskHead(cfg)
        self.text_decoder = TextDecoder(cfg)

    def forward(self, features: list[torch.Tensor], boxes: torch.Tensor, proposal_scores: torch.Tensor,
                image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Box inference of one image (fast_rcnn_inference_single_image_GRiT): proposals (P, 4) + scores → kept
        (n, 4) clipped boxes and their (n,) scores, best first."""
        cfg, (h, w) = self.cfg, image_size
        strides = cfg.strides[: cfg.box_in_levels]
        probs = []
        for stage, weights in enumerate(cfg.cascade_weights):
            if stage > 0:
                boxes = clip_boxes(boxes, h, w)
            pooled = pool_levels(features[: cfg.box_in_levels], strides, [boxes], cfg.pooler_resolution)
            logits, deltas = self.box_predictor[stage](self.box_head[stage](pooled))
            probs.append(logits.softmax(dim=-1))
            boxes = apply_deltas(deltas, boxes, weights)
        scores = sum(probs) * (1.0 / len(probs))
        if cfg.mult_proposal_score:
            scores = (scores * proposal_scores[:, None]) ** 0.5
        finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        boxes, scores = clip_boxes(boxes[finite], h, w), scores[finite][:, 0]  # column 1 is background
        keep = (scores > cfg.score_threshold).nonzero().squeeze(1)
        boxes, scores = boxes[keep], scores[keep]
        keep = batched_nms(boxes, scores, torch.zeros_like(scores), cfg.box_nms)[: cfg.detections_per_image]
        return boxes[keep], scores[keep]
