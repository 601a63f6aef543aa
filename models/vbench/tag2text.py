"""Tag2Text captioner (Huang et al., 2023) as VBench's scene dimension builds it (third_party/tag2Text/tag2text.py).

Four parts with the names of tag2text_swin_14m.pth:
  visual_encoder  Swin-B, 384 px, 12x12 windows → image embeddings (B, 1+144, 1024)
  vision_multi    the tagging head: a 2-layer, 4-head MED BERT without embeddings or self-attention whose
                  queries are the 3429 tag embeddings (`label_embed`); `fc` (W, b) scores each tag (Query2Label)
  tag_encoder     12-layer MED BERT: the recognised tags' tokens cross-attending to the image embeddings;
                  its two lowest layers' cross-attention and feed-forward ARE vision_multi's (tied, as in Tag2Text)
  text_decoder    12-layer causal MED BERT + LM head cross-attending to the tag encoder's states
Tokens, tag names and thresholds live in components; this module maps tensors to tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from models.vbench.med_bert import MedBert, MedConfig, MedLMHead, padding_mask
from models.vbench.swin import SwinConfig, SwinTransformer

TIED_LAYER_PARTS = ("crossattention", "intermediate", "output")  # shared by the tag encoder and the tagging head


@dataclass(frozen=True)
class Tag2TextConfig:
    """The whole captioner; defaults are tag2text_swin_14m (Swin-B 384, bert-base towers, 3429 tags)."""

    swin: SwinConfig = SwinConfig()
    text: MedConfig = MedConfig()  # tag encoder and text decoder (med_config.json)
    tagging_layers: int = 2  # q2l_config.json
    tagging_heads: int = 4
    tags: int = 3429

    @property
    def tagging(self) -> MedConfig:
        return replace(self.text, layers=self.tagging_layers, heads=self.tagging_heads,
                       encoder_width=self.swin.width, self_attention=False, embeddings=False)


class GroupWiseLinear(nn.Module):
    """One linear score per tag from that tag's own query output: logits[b, k] = <W[k], x[b, k]> + b[k]."""

    def __init__(self, classes: int, dim: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(1, classes, dim))
        self.b = nn.Parameter(torch.zeros(1, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.W * x).sum(-1) + self.b


def tie_parameters(head: MedBert, encoder: MedBert) -> None:
    """Share the head's cross-attention and feed-forward parameters with the encoder's lowest layers.

    Parameters, not modules: the encoder keeps its own head count (12) on the head's (4-head) weights.
    """
    for low, high in zip(head.encoder.layer, encoder.encoder.layer):
        for part in TIED_LAYER_PARTS:
            targets = dict(getattr(high, part).named_modules())
            for name, module in getattr(low, part).named_modules():
                for pname, param in module.named_parameters(recurse=False):
                    setattr(targets[name], pname, param)


class Tag2Text(nn.Module):
    """Image tagging and tag-guided captioning; see the module docstring for the parts."""

    def __init__(self, cfg: Tag2TextConfig = Tag2TextConfig()):
        super().__init__()
        self.cfg = cfg
        self.visual_encoder = SwinTransformer(cfg.swin)
        self.tag_encoder = MedBert(replace(cfg.text, encoder_width=cfg.swin.width))
        self.text_decoder = MedLMHead(replace(cfg.text, encoder_width=cfg.text.hidden))  # reads tag states
        self.vision_multi = MedBert(cfg.tagging)
        self.label_embed = nn.Embedding(cfg.tags, cfg.text.hidden)
        self.fc = GroupWiseLinear(cfg.tags, cfg.text.hidden)
        tie_parameters(self.vision_multi, self.tag_encoder)

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 384, 384) ImageNet-normalised → (B, 1+L, width)."""
        return self.visual_encoder(images)

    def tag_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Image embeddings → (B, tags) logits: every tag embedding queries the image (mode "mlr")."""
        queries = self.label_embed.weight.unsqueeze(0).expand(embeds.shape[0], -1, -1)  # (B, tags, hidden)
        return self.fc(self.vision_multi(queries, None, embeds))

    def tag_states(self, embeds: torch.Tensor, tag_ids: torch.Tensor, tag_mask: torch.Tensor) -> torch.Tensor:
        """Tag tokens (B, T) ([ENC] first, padded, mask 1 = token) reading the image → (B, T, hidden)."""
        return self.tag_encoder(tag_ids, padding_mask(tag_mask), embeds)

    def next_token_logits(self, ids: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Caption prefixes (N, L) and the tag states each reads (N, T, hidden) → (N, vocab) next-token logits."""
        return self.text_decoder(ids, states)[:, -1]


def Tag2Text_SwinB_384(**overrides) -> Tag2Text:
    """tag2text_swin_14m.pth: Swin-B 384 image encoder, bert-base text towers, 3429 tags."""
    return Tag2Text(replace(Tag2TextConfig(), **overrides))


Tag2Text_models = {"Swin-B/384": Tag2Text_SwinB_384}
