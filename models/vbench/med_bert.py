"""BLIP's "MED" BERT (VBench third_party/tag2Text/med.py): the text transformer of Tag2Text's three BERT towers.

Parameter names follow med.py (`embeddings.word_embeddings`, `encoder.layer.3.attention.self.query`,
`encoder.layer.3.crossattention.output.LayerNorm`, `intermediate.dense`, `output.dense`; the LM head's
`cls.predictions.transform.dense`, `.decoder`, `.bias`). Its embeddings have word and position tables but no
token types. Masks are additive -10000 (BERT's convention), not -inf, as in med.py. A layer may drop its
self-attention (Tag2Text's tagging head, Query2Label style) and then only cross-attends.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

MASKED = -10000.0  # med.py's additive score for a masked key


@dataclass(frozen=True)
class MedConfig:
    """Widths of one BERT tower; defaults are bert-base with Tag2Text's 30524-token vocabulary ([DEC], [ENC])."""

    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072
    vocab: int = 30524
    max_positions: int = 512
    encoder_width: int = 768  # width of the states the cross-attention reads
    norm_eps: float = 1e-12
    self_attention: bool = True  # False: the tagging head's layers cross-attend only
    embeddings: bool = True


def padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) 1 = keep → (B, 1, 1, L) additive scores."""
    return (1.0 - mask[:, None, None, :].float()) * MASKED


def causal_mask(length: int, device: torch.device) -> torch.Tensor:
    """(1, 1, L, L) additive scores letting token i see tokens 0..i."""
    keep = torch.ones(length, length, device=device).tril()
    return ((1.0 - keep) * MASKED)[None, None]


class SelfAttention(nn.Module):
    """med.py's BertSelfAttention: queries from the text, keys/values from the text or from encoder states."""

    def __init__(self, cfg: MedConfig, cross: bool):
        super().__init__()
        self.heads = cfg.heads
        width = cfg.encoder_width if cross else cfg.hidden
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(width, cfg.hidden)
        self.value = nn.Linear(width, cfg.hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)  # (B, heads, N, C/heads)

    def forward(self, x: torch.Tensor, states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(states)), self._split(self.value(states))
        scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5)
        if mask is not None:
            scores = scores + mask
        out = scores.softmax(-1) @ v  # (B, heads, N, C/heads)
        return out.transpose(1, 2).reshape(x.shape)


class AddNorm(nn.Module):
    """BertSelfOutput / BertOutput: LayerNorm(dense(x) + residual)."""

    def __init__(self, width: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(width, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, cfg: MedConfig, cross: bool):
        super().__init__()
        self.self = SelfAttention(cfg, cross)
        self.output = AddNorm(cfg.hidden, cfg.hidden, cfg.norm_eps)

    def forward(self, x: torch.Tensor, states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, states, mask), x)


class Intermediate(nn.Module):
    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # transformers' "gelu": the exact erf form


class Layer(nn.Module):
    """Self-attention (unless dropped), cross-attention to encoder states, feed-forward."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        if cfg.self_attention:
            self.attention = Attention(cfg, cross=False)
        self.crossattention = Attention(cfg, cross=True)
        self.intermediate = Intermediate(cfg)
        self.output = AddNorm(cfg.intermediate, cfg.hidden, cfg.norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, states: torch.Tensor,
                states_mask: torch.Tensor | None) -> torch.Tensor:
        if hasattr(self, "attention"):
            x = self.attention(x, x, mask)
        x = self.crossattention(x, states, states_mask)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, states: torch.Tensor,
                states_mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask, states, states_mask)
        return x


class Embeddings(nn.Module):
    """Word + absolute position embeddings, LayerNorm (no token types in MED)."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        # med.py's padding_idx only shapes training (init, gradients): the forward pass is the same without it
        self.word_embeddings = nn.Embedding(cfg.vocab, cfg.hidden)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions)[None])


class MedBert(nn.Module):
    """BertModel without pooler: token ids (or ready embeddings) cross-attending to encoder states."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.embeddings:
            self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, states: torch.Tensor,
                states_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L) ids, or (B, L, hidden) embeddings when the tower has none; masks are additive."""
        h = self.embeddings(x) if self.cfg.embeddings else x
        return self.encoder(h, mask, states, states_mask)


class PredictionTransform(nn.Module):
    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class Predictions(nn.Module):
    """The LM head: transform, then the word embeddings transposed (tied) plus a per-token bias."""

    def __init__(self, cfg: MedConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = PredictionTransform(cfg)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab))
        # transformers ties both: the checkpoint carries decoder.weight and decoder.bias as copies of these
        self.decoder.weight = word_embeddings.weight
        self.decoder.bias = self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x))


class LMHead(nn.Module):
    def __init__(self, cfg: MedConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = Predictions(cfg, word_embeddings)


class MedLMHead(nn.Module):
    """BertLMHeadModel: a causal MED BERT (`bert.`) and its LM head (`cls.`); forward gives (B, L, vocab) logits."""

    def __init__(self, cfg: MedConfig):
        super().__init__()
        self.bert = MedBert(cfg)
        self.cls = LMHead(cfg, self.bert.embeddings.word_embeddings)

    def forward(self, ids: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """ids (B, L) see themselves causally and every position of states (B, M, encoder_width), unmasked."""
        h = self.bert(ids, causal_mask(ids.shape[1], ids.device), states)
        return self.cls.predictions(h)
