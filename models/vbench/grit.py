"""GRiT (Wu et al., 2022: A Generative Region-to-text Transformer), GRiT-B as VBench runs it.

The detectron2 meta-architecture (grit/modeling/meta_arch/grit.py, VBench's copy) without detectron2: frames
(RGB, 0-255, native size: VBench's predictor discards its resize) are normalised with the pixel mean/std and
zero-padded to a multiple of 32; the backbone gives P3-P7; CenterNet proposes boxes; the cascade keeps boxes
scoring above 0.5; ROIAlign 14x14 features of each box are described by the text decoder once per task asked
for (VBench runs the heads once for its test task and once more for ObjectDet: both start from the same boxes,
so the boxes are computed once here). A description's score is sqrt(box score x exp(mean log-prob)); boxes
with zero width or height after clipping are dropped last (detector_postprocess). Token ids come back; turning
them into words (BERT WordPiece) is the caller's job. Parameter names follow the GRiT checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.grit_backbone import GRiTBackbone
from models.vbench.grit_config import OBJECT_DET, GRiTConfig
from models.vbench.grit_heads import CenterNet, ROIHeads
from models.vbench.grit_ops import pool_levels


@dataclass
class Detections:
    """One image's boxes (n, 4) x0 y0 x1 y1 in input pixels, their box scores, and per task tokens and scores."""

    boxes: torch.Tensor
    box_scores: torch.Tensor
    tokens: dict[str, torch.Tensor] = field(default_factory=dict)  # (n, L) from the begin token
    scores: dict[str, torch.Tensor] = field(default_factory=dict)  # (n,) description-weighted scores


class GRiT(nn.Module):
    """GRiT: images (B, 3, H, W) RGB 0-255 → one Detections per image, described for each task asked."""

    def __init__(self, cfg: GRiTConfig = GRiTConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = GRiTBackbone(cfg)
        self.proposal_generator = CenterNet(cfg)
        self.roi_heads = ROIHeads(cfg)
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise, then zero-pad bottom/right to the size divisibility: (B, 3, H, W) → (B, 3, H', W')."""
        x = (images.to(self.pixel_mean) - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        d = self.cfg.size_divisibility
        return F.pad(x, (0, (d - w % d) % d, 0, (d - h % d) % d))

    def describe(self, features: list[torch.Tensor], boxes: torch.Tensor, task: str) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
        """Token ids (n, L) and mean log-probs (n,) of the boxes of one image (features of batch 1) for a task."""
        cfg = self.cfg
        pooled = pool_levels(features[: cfg.box_in_levels], cfg.strides[: cfg.box_in_levels], [boxes],
                             cfg.object_pooler_resolution)
        pooled = pooled.flatten(2).permute(0, 2, 1)  # (n, C, 14, 14) → (n, 196, C)
        return self.roi_heads.text_decoder(pooled, cfg.begin_token(task))

    @torch.no_grad()
    def forward(self, images: torch.Tensor, tasks: tuple[str, ...] = (OBJECT_DET,)) -> list[Detections]:
        for task in tasks:
            self.cfg.begin_token(task)
        h, w = images.shape[-2:]
        features = self.backbone(self.preprocess(images))
        out = []
        for i, (proposals, proposal_scores) in enumerate(self.proposal_generator(features)):
            mine = [f[i : i + 1] for f in features]
            boxes, box_scores = self.roi_heads(mine, proposals, proposal_scores, (h, w))
            found = Detections(boxes, box_scores)
            for task in tasks:
                if len(boxes):
                    tokens, logprob = self.describe(mine, boxes, task)
                else:
                    tokens, logprob = boxes.new_zeros((0, 1), dtype=torch.long), boxes.new_zeros(0)
                found.tokens[task], found.scores[task] = tokens, (box_scores * logprob.exp()) ** 0.5
            nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            found.boxes, found.box_scores = boxes[nonempty], box_scores[nonempty]
            found.tokens = {t: v[nonempty] for t, v in found.tokens.items()}
            found.scores = {t: v[nonempty] for t, v in found.scores.items()}
            out.append(found)
        return out


def GRiT_B(**overrides) -> GRiT:
    """GRiT-B (grit_b_densecap_objectdet.pth): ViT-B/16 backbone, 256-channel pyramid, 6-layer text decoder."""
    return GRiT(replace(GRiTConfig(), **overrides))
