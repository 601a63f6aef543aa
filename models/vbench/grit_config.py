"""GRiT-B hyperparameters: GRiT's configs/Base.yaml + GRiT_B_DenseCap_ObjectDet.yaml, with VBench's test overrides.

VBench (third_party/grit_src/image_dense_captions.py) sets the box score threshold to 0.5, beam size 1 and soft
NMS off; every other value is GRiT's own. Widths and depths are read off a checkpoint by the loader.
"""
from __future__ import annotations

from dataclasses import dataclass

OBJECT_DET, DENSE_CAP = "ObjectDet", "DenseCap"


@dataclass(frozen=True)
class GRiTConfig:
    """Every GRiT setting; defaults are GRiT-B (ViTDet ViT-B/16 backbone) as VBench runs it."""

    # ViT backbone (build_vit_fpn_backbone)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    img_size: int = 1024  # global blocks' relative-position tables are sized for a 1024 px grid
    pretrain_img_size: int = 224  # the absolute position table (with a CLS slot) is for 224 px
    window_size: int = 14
    window_blocks: tuple[int, ...] = (0, 1, 3, 4, 6, 7, 9, 10)  # 2, 5, 8, 11 attend globally
    vit_norm_eps: float = 1e-6
    # GRiT's simple feature pyramid: strides 8, 16, 32 from the stride-16 map, then P6, P7
    fpn_channels: int = 256
    strides: tuple[int, ...] = (8, 16, 32, 64, 128)
    size_divisibility: int = 32  # images are zero-padded (after normalising) to this multiple
    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)  # RGB (INPUT.FORMAT: RGB)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    # CenterNet proposal head (class-agnostic heatmap only)
    box_convs: int = 4
    gn_groups: int = 32
    proposal_threshold: float = 0.0001  # CENTERNET.INFERENCE_TH
    pre_nms_topk: int = 1000
    post_nms_topk: int = 256
    proposal_nms: float = 0.9
    # cascade ROI box heads
    box_in_levels: int = 3  # p3, p4, p5
    pooler_resolution: int = 7
    fc_dim: int = 1024
    num_fc: int = 2
    cascade_weights: tuple[tuple[float, float, float, float], ...] = (
        (10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
    score_threshold: float = 0.5  # VBench's confidence_threshold (GRiT's own default is 0.02)
    box_nms: float = 0.5
    detections_per_image: int = 256
    mult_proposal_score: bool = True
    # mask head (in the checkpoint; VBench never reads masks)
    mask_convs: int = 4
    # text decoder (BERT-base-uncased vocabulary, 6 post-norm layers)
    object_pooler_resolution: int = 14
    vocab_size: int = 30522
    text_hidden: int = 768
    text_layers: int = 6
    text_heads: int = 12
    text_ffn: int = 3072
    text_positions: int = 1024
    beam_size: int = 1
    max_steps: int = 40
    end_token: int = 102  # [SEP]
    # begin token of each trained task: the first of TRAIN_TASK gets [CLS], the i-th gets 103 + i
    task_tokens: tuple[tuple[str, int], ...] = ((OBJECT_DET, 101), (DENSE_CAP, 104))
    # BERT's LayerNorm eps and the word/position embedding LayerNorm eps of GRiT's decoder
    text_norm_eps: float = 1e-12
    embedding_norm_eps: float = 1e-8

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    def begin_token(self, task: str) -> int:
        """The token that starts a description of `task` (ObjectDet or DenseCap)."""
        tokens = dict(self.task_tokens)
        if task not in tokens:
            raise KeyError(f"GRiT was not trained on task {task!r}; tasks: {', '.join(tokens)}")
        return tokens[task]
