"""Detection ops GRiT needs, in plain torch (no torchvision): ROIAlign, multi-level ROI pooling, NMS, box deltas.

  roi_align       detectron2 ROIAlignV2 (torchvision roi_align, aligned=True): half-pixel offset, an adaptive
                  ceil(roi / out) x ceil(roi / out) sampling grid per bin when sampling_ratio is 0, samples
                  outside (-1, size] read 0, the rest are clamped and bilinearly interpolated
  pool_levels     detectron2 ROIPooler: box of side s goes to level floor(4 + log2(s / 224 + 1e-8)), clamped
  nms             torchvision nms: greedy by descending score, drops IoU > threshold
  apply_deltas    detectron2 Box2BoxTransform.apply_deltas with weights (wx, wy, ww, wh), dw/dh clamped
"""
from __future__ import annotations

import math

import numpy as np
import torch

SCALE_CLAMP = math.log(1000.0 / 16)  # detectron2's _DEFAULT_SCALE_CLAMP
CANONICAL_BOX, CANONICAL_LEVEL = 224.0, 4  # ROIPooler defaults
POOL_CHUNK = 1 << 24  # gathered values per chunk: bounds memory on large frames


def _axis(start: torch.Tensor, bin_size: torch.Tensor, out: int, grid: int, size: int):
    """Sample positions along one axis: low/high indices, weights and validity, each (R, out * grid)."""
    steps = torch.arange(out * grid, device=start.device, dtype=start.dtype)
    pos = start[:, None] + (steps // grid)[None] * bin_size[:, None] + ((steps % grid)[None] + 0.5) * (
        bin_size[:, None] / grid)
    valid = (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    pos = torch.where(at_edge, low.to(pos.dtype), pos)
    frac = pos - low.to(pos.dtype)
    return low, high, 1.0 - frac, frac, valid


def _align_group(flat: torch.Tensor, rois: torch.Tensor, out: int, scale: float, grid_h: int, grid_w: int,
                 height: int, width: int, offset: float) -> torch.Tensor:
    """ROIAlign of ROIs sharing one sampling grid: (R, 5) → (R, C, out, out)."""
    r = rois.shape[0]
    x0, y0 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    roi_w, roi_h = rois[:, 3] * scale - offset - x0, rois[:, 4] * scale - offset - y0
    if offset == 0.0:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    ylo, yhi, wy0, wy1, vy = _axis(y0, roi_h / out, out, grid_h, height)
    xlo, xhi, wx0, wx1, vx = _axis(x0, roi_w / out, out, grid_w, width)
    base = rois[:, 0].long() * (height * width)
    total = 0
    for yi, wy in ((ylo, wy0), (yhi, wy1)):
        for xi, wx in ((xlo, wx0), (xhi, wx1)):
            index = base[:, None, None] + yi[:, :, None] * width + xi[:, None, :]  # (R, Sy, Sx)
            weight = wy[:, :, None] * wx[:, None, :] * (vy[:, :, None] & vx[:, None, :])
            total = total + flat[index.reshape(-1)].view(r, out * grid_h, out * grid_w, -1) * weight[..., None]
    # (R, out, gh, out, gw, C): average the samples of each bin
    total = total.view(r, out, grid_h, out, grid_w, -1).sum(dim=(2, 4)) / max(grid_h * grid_w, 1)
    return total.permute(0, 3, 1, 2)


def roi_align(features: torch.Tensor, rois: torch.Tensor, out: int, scale: float, sampling_ratio: int = 0,
              aligned: bool = True) -> torch.Tensor:
    """torchvision roi_align: features (N, C, H, W), rois (R, 5) = (batch, x0, y0, x1, y1) → (R, C, out, out)."""
    n, c, height, width = features.shape
    result = features.new_zeros((rois.shape[0], c, out, out))
    if rois.shape[0] == 0:
        return result
    flat = features.permute(0, 2, 3, 1).reshape(n * height * width, c)
    offset = 0.5 if aligned else 0.0
    rois = rois.to(features.dtype)
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full((rois.shape[0],), sampling_ratio, dtype=torch.long, device=rois.device)
    else:
        extent_w = (rois[:, 3] - rois[:, 1]) * scale
        extent_h = (rois[:, 4] - rois[:, 2]) * scale
        if not aligned:
            extent_w, extent_h = extent_w.clamp(min=1.0), extent_h.clamp(min=1.0)
        grid_h, grid_w = torch.ceil(extent_h / out).long(), torch.ceil(extent_w / out).long()
    keys = torch.stack([grid_h, grid_w], 1)
    for gh, gw in torch.unique(keys, dim=0).tolist():
        if gh <= 0 or gw <= 0:  # an empty ROI pools to zeros (the C++ loops run no samples)
            continue
        members = ((keys[:, 0] == gh) & (keys[:, 1] == gw)).nonzero().squeeze(1)
        per_roi = (out * gh) * (out * gw) * c
        step = max(1, POOL_CHUNK // per_roi)
        for i in range(0, len(members), step):
            chunk = members[i : i + step]
            result[chunk] = _align_group(flat, rois[chunk], out, scale, gh, gw, height, width, offset)
    return result


def box_levels(boxes: torch.Tensor, min_level: int, max_level: int) -> torch.Tensor:
    """detectron2 assign_boxes_to_levels: the FPN level index (0-based from min_level) of each (R, 4) box."""
    sizes = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    levels = torch.floor(CANONICAL_LEVEL + torch.log2(sizes / CANONICAL_BOX + 1e-8))
    return levels.clamp(min=min_level, max=max_level).long() - min_level


def pool_levels(features: list[torch.Tensor], strides: tuple[int, ...], boxes: list[torch.Tensor], out: int
                ) -> torch.Tensor:
    """detectron2 ROIPooler (ROIAlignV2, adaptive sampling): boxes per image → (R, C, out, out)."""
    rois = torch.cat([torch.cat([b.new_full((len(b), 1), i), b], 1) for i, b in enumerate(boxes)])
    if len(features) == 1:
        return roi_align(features[0], rois, out, 1.0 / strides[0])
    min_level, max_level = int(math.log2(strides[0])), int(math.log2(strides[-1]))
    levels = box_levels(rois[:, 1:], min_level, max_level)
    result = features[0].new_zeros((len(rois), features[0].shape[1], out, out))
    for level, (feature, stride) in enumerate(zip(features, strides)):
        index = (levels == level).nonzero().squeeze(1)
        if len(index):
            result[index] = roi_align(feature, rois[index], out, 1.0 / stride)
    return result


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of (N, 4) and (M, 4) boxes → (N, M), areas without the +1 of old detectors."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, rows: int = 1024) -> torch.Tensor:
    """Indices kept by greedy NMS, in descending score order (torchvision.ops.nms)."""
    order = scores.sort(descending=True, stable=True).indices
    boxes = boxes[order]
    if len(boxes) == 0:
        return order
    overlaps = torch.cat([box_iou(boxes[i : i + rows], boxes) > threshold for i in range(0, len(boxes), rows)])
    overlaps = overlaps.cpu().numpy()
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, threshold: float) -> torch.Tensor:
    """NMS within each class (torchvision's coordinate-offset trick), kept indices by descending score."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offsets = classes.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, threshold)


def apply_deltas(deltas: torch.Tensor, boxes: torch.Tensor, weights: tuple[float, float, float, float]
                 ) -> torch.Tensor:
    """Box2BoxTransform.apply_deltas: (R, 4) deltas on (R, 4) boxes → (R, 4) boxes."""
    deltas, boxes = deltas.float(), boxes.float()
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw, dh = (deltas[:, 2] / ww).clamp(max=SCALE_CLAMP), (deltas[:, 3] / wh).clamp(max=SCALE_CLAMP)
    cx, cy = dx * widths + ctr_x, dy * heights + ctr_y
    w, h = torch.exp(dw) * widths, torch.exp(dh) * heights
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """detectron2 Boxes.clip: x into [0, width], y into [0, height]."""
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
