"""ViCLIP (InternVid, Wang et al. 2023) as VBench builds it for temporal_style and overall_consistency.

Mirrors vbench/third_party/ViCLIP: a CLIP ViT-L/14 video tower (Conv3d patches of 1 x 14 x 14, a per-frame
spatial position embedding, a learned temporal embedding added per patch over 8 frames, tokens ordered patch-major
then frame, one class token, seq-first nn.MultiheadAttention blocks with QuickGELU, class token @ proj) and a CLIP
text tower with a 32-token context (causal mask, features at the end-of-text token, the highest id). Parameter
names match ViClip-InternVid-10M-FLT.pth's `model` dict (`vision_encoder.*`, `text_encoder.*`, `temp`).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
import torch.nn as nn


@dataclass(frozen=True)
class ViCLIPConfig:
    """Widths of ViCLIP; defaults are the released ViT-L/14 model (8 frames, 224 px, 768-d joint space)."""

    image_size: int = 224
    patch_size: int = 14
    frames: int = 8
    width: int = 1024
    layers: int = 24
    heads: int = 16
    embed_dim: int = 768
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    context: int = 32
    vocab: int = 49408


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """CLIP's pre-norm block on (L, B, D) sequences."""

    def __init__(self, width: int, heads: int, mask: torch.Tensor | None = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        mask = None if self.mask is None else self.mask.to(x.dtype)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mask: torch.Tensor | None = None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, mask) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class VisionEncoder(nn.Module):
    """(B, 3, T, H, W) CLIP-normalised video → (B, embed_dim) embedding (not normalised)."""

    def __init__(self, cfg: ViCLIPConfig):
        super().__init__()
        p, w = cfg.patch_size, cfg.width
        self.conv1 = nn.Conv3d(3, w, (1, p, p), (1, p, p), bias=False)
        self.class_embedding = nn.Parameter(w**-0.5 * torch.randn(w))
        self.positional_embedding = nn.Parameter(w**-0.5 * torch.randn((cfg.image_size // p) ** 2 + 1, w))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, cfg.frames, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.layers, cfg.heads)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(w**-0.5 * torch.randn(w, cfg.embed_dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.conv1(video)  # (B, D, T, h, w)
        b, d, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, d)  # (B*T, h*w, D)
        cls = self.class_embedding.to(x.dtype).expand(b * t, 1, d)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        cls_tokens, x = x[:b, :1], x[:, 1:]  # every frame's class token is the same vector
        x = x.reshape(b, t, h * w, d).permute(0, 2, 1, 3).reshape(b * h * w, t, d)  # (b t) n m -> (b n) t m
        x = x + (self.temporal_positional_embedding.mean(1, keepdim=True) if t == 1
                 else self.temporal_positional_embedding)
        x = x.reshape(b, h * w * t, d)  # (b n) t m -> b (n t) m
        x = self.ln_pre(torch.cat([cls_tokens, x], dim=1))
        x = self.transformer(x.permute(1, 0, 2))  # (B, N, D) -> (N, B, D)
        return self.ln_post(x)[0] @ self.proj


class TextEncoder(nn.Module):
    """(B, context) token ids (end-of-text = highest id) → (B, embed_dim) embedding (not normalised)."""

    def __init__(self, cfg: ViCLIPConfig):
        super().__init__()
        mask = torch.full((cfg.context, cfg.context), float("-inf")).triu_(1)  # causal
        self.transformer = Transformer(cfg.text_width, cfg.text_layers, cfg.text_heads, mask)
        self.token_embedding = nn.Embedding(cfg.vocab, cfg.text_width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(cfg.context, cfg.text_width))
        self.ln_final = nn.LayerNorm(cfg.text_width)
        self.text_projection = nn.Parameter(cfg.text_width**-0.5 * torch.randn(cfg.text_width, cfg.embed_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.ln_final(self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))  # (B, L, D) via (L, B, D)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection


class ViCLIP(nn.Module):
    """The joint model: encode_vision(video (B, T, 3, H, W)) and encode_text(tokens), both (B, embed_dim)."""

    def __init__(self, cfg: ViCLIPConfig = ViCLIPConfig()):
        super().__init__()
        self.cfg = cfg
        self.vision_encoder = VisionEncoder(cfg)
        self.text_encoder = TextEncoder(cfg)
        self.temp = nn.Parameter(torch.ones([]) / 100.0)  # contrastive temperature; unused when scoring

    def encode_vision(self, video: torch.Tensor) -> torch.Tensor:
        return self.vision_encoder(video.permute(0, 2, 1, 3, 4))  # (B, T, C, H, W) -> (B, C, T, H, W)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(tokens)


def ViCLIP_L14(**overrides) -> ViCLIP:
    """ViClip-InternVid-10M-FLT: ViT-L/14 video tower + CLIP-L text tower, 428M parameters."""
    return ViCLIP(replace(ViCLIPConfig(), **overrides))


ViCLIP_models = {"L/14": ViCLIP_L14}
