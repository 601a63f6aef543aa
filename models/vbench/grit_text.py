"""GRiT's text decoder: a 6-layer post-norm BERT run as a decoder over 14x14 object features, greedy/beam search.

Mirrors grit/modeling/text/text_decoder.py (TransformerDecoderTextualHead, decoder_type 'bert_en') and
modeling_bert.py: object features (R, 196, 256) → Linear + LayerNorm to the text width; tokens → word +
position embeddings → LayerNorm (eps 1e-8); [features; tokens] go through BertEncoder layers together with a
mask where feature rows see only features and token rows see features plus earlier tokens (computed here
incrementally, see BertAsDecoder); the output layer shares the word embedding matrix.
AutoRegressiveBeamSearch: from the task's begin token, at most 40 tokens, the previous token's logit set to
-10000 (no immediate repeats), beams that ended are held at [SEP]; the description log-probability is averaged
over its tokens. Parameter names match
`roi_heads.text_decoder.textual.transformer.encoder.layer.0.attention.self.query.weight` etc.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.grit_config import GRiTConfig

REPEAT_PENALTY = -10000.0  # the logit GRiT gives the previous token


KV = tuple[torch.Tensor, torch.Tensor]  # a layer's keys and values, each (R, heads, N, head_dim)


class Embedding(nn.Module):
    """Word + learnt position embeddings, LayerNorm: (R, T) tokens at positions start … → (R, T, D)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.words = nn.Embedding(cfg.vocab_size, cfg.text_hidden)
        self.positions = nn.Embedding(cfg.text_positions, cfg.text_hidden)
        self.layer_norm = nn.LayerNorm(cfg.text_hidden, eps=cfg.embedding_norm_eps)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        return self.layer_norm(self.words(tokens) + self.positions(positions)[None])


class SelfAttention(nn.Module):
    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.heads = cfg.text_heads
        self.query = nn.Linear(cfg.text_hidden, cfg.text_hidden)
        self.key = nn.Linear(cfg.text_hidden, cfg.text_hidden)
        self.value = nn.Linear(cfg.text_hidden, cfg.text_hidden)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, D) → (B, heads, N, head_dim)."""
        return t.view(t.shape[0], t.shape[1], self.heads, -1).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, past: KV | None = None) -> tuple[torch.Tensor, KV]:
        """x (B, N, D) attends to the `past` rows and itself under `mask` (N, past + N); returns all keys/values."""
        b, n, d = x.shape
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        q = q / math.sqrt(d // self.heads)
        attn = (q @ k.transpose(-1, -2) + mask).softmax(dim=-1)
        return (attn @ v).permute(0, 2, 1, 3).reshape(b, n, d), (k, v)


class DenseNorm(nn.Module):
    """BertSelfOutput / BertOutput: LayerNorm(dense(x) + residual)."""

    def __init__(self, width: int, cfg: GRiTConfig):
        super().__init__()
        self.dense = nn.Linear(width, cfg.text_hidden)
        self.LayerNorm = nn.LayerNorm(cfg.text_hidden, eps=cfg.text_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = DenseNorm(cfg.text_hidden, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, past: KV | None = None) -> tuple[torch.Tensor, KV]:
        out, kv = self.self(x, mask, past)
        return self.output(out, x), kv


class Intermediate(nn.Module):
    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.text_hidden, cfg.text_ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # BERT's erf GELU


class Layer(nn.Module):
    """Post-norm BERT layer: (B, N, D) → (B, N, D), plus the keys/values its attention saw."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = DenseNorm(cfg.text_ffn, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, past: KV | None = None) -> tuple[torch.Tensor, KV]:
        x, kv = self.attention(x, mask, past)
        return self.output(self.intermediate(x), x), kv


class Encoder(nn.Module):
    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.layer = nn.ModuleList([Layer(cfg) for _ in range(cfg.text_layers)])


class BertAsDecoder(nn.Module):
    """BertEncoderAsDecoder: [memory; tokens] through the encoder, memory rows blind to the tokens, tokens causal.

    GRiT recomputes all rows at every step. Memory rows never attend to tokens and tokens only to earlier ones,
    so each row's per-layer keys and values never change once computed: `remember` computes the memory's once
    per box and each step adds only the new token's (same result, without redoing 196 + t rows per step).
    """

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.encoder = Encoder(cfg)

    def remember(self, memory: torch.Tensor) -> list[KV]:
        """Per layer keys and values (R, heads, M, head_dim) of the memory rows (R, M, D)."""
        full = memory.new_zeros((1, 1, memory.shape[1], memory.shape[1]))  # memory rows see each other
        cache = []
        for i, layer in enumerate(self.encoder.layer):
            if i == len(self.encoder.layer) - 1:  # the last layer's memory outputs feed nothing
                attn = layer.attention.self
                cache.append((attn.split(attn.key(memory)), attn.split(attn.value(memory))))
            else:
                memory, kv = layer(memory, full)
                cache.append(kv)
        return cache

    def forward(self, tokens: torch.Tensor, cache: list[KV]) -> tuple[torch.Tensor, list[KV]]:
        """New tokens (R, T, D) after the cached rows → their states (R, T, D) and the grown cache."""
        seen, t = cache[0][0].shape[2], tokens.shape[1]
        mask = tokens.new_zeros((t, seen + t))
        mask[:, seen:] = torch.triu(torch.full((t, t), float("-inf"), device=tokens.device, dtype=tokens.dtype), 1)
        grown = []
        for layer, past in zip(self.encoder.layer, cache):
            tokens, kv = layer(tokens, mask[None, None], past)
            grown.append(kv)
        return tokens, grown


class TextualHead(nn.Module):
    """TransformerDecoderTextualHead: object features (R, M, C) and tokens (R, T) → logits (R, T, vocab)."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.object_feature_projection = nn.Sequential(nn.Linear(cfg.fpn_channels, cfg.text_hidden),
                                                       nn.LayerNorm(cfg.text_hidden))
        self.embedding = Embedding(cfg)
        self.transformer = BertAsDecoder(cfg)
        self.output = nn.Linear(cfg.text_hidden, cfg.vocab_size)
        self.output.weight = self.embedding.words.weight  # tied, as GRiT trains it

    def remember(self, features: torch.Tensor) -> list[KV]:
        """Object features (R, M, C) → the per-layer cache of the memory rows."""
        return self.transformer.remember(self.object_feature_projection(features))

    def forward(self, cache: list[KV], tokens: torch.Tensor, start: int) -> tuple[torch.Tensor, list[KV]]:
        """Logits (R, T, vocab) of tokens (R, T) at positions start … after the cached rows, and the grown cache."""
        states, cache = self.transformer(self.embedding(tokens, start), cache)
        return self.output(states), cache


class TextDecoder(nn.Module):
    """GRiTTextDecoder at inference: object features → (token ids (R, L) from the begin token, mean log-prob (R,))."""

    def __init__(self, cfg: GRiTConfig):
        super().__init__()
        self.cfg = cfg
        self.textual = TextualHead(cfg)

    @torch.no_grad()
    def forward(self, features: torch.Tensor, begin: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, eos, beam = self.cfg, self.cfg.end_token, self.cfg.beam_size
        r = features.shape[0]
        start = torch.full((r, 1), begin, dtype=torch.long, device=features.device)
        logits, cache = self.textual(self.textual.remember(features), start, 0)
        logprobs0 = F.log_softmax(logits[:, -1].float(), dim=1)
        last, first = logprobs0.topk(beam)  # (R, beams)
        if beam == 1 and bool((first == eos).all()):
            warnings.warn("GRiT predicted empty descriptions for every box", RuntimeWarning, stacklevel=2)
            return torch.cat([start, first], 1), last[:, 0]
        if beam > 1:
            cache = [(k.repeat_interleave(beam, dim=0), v.repeat_interleave(beam, dim=0)) for k, v in cache]
        vocab = logprobs0.shape[1]
        after_end = torch.full((r * beam, vocab), float("-inf"), device=features.device)
        after_end[:, eos] = 0.0
        predictions = torch.cat([start[:, None].expand(r, beam, 1), first[..., None]], -1)  # (R, beams, t)
        rows = torch.arange(r, device=features.device)[:, None] * beam
        while predictions.shape[-1] < cfg.max_steps:
            previous = predictions[:, :, -1].reshape(r * beam)
            if bool((previous == eos).all()):
                break
            logits, cache = self.textual(cache, previous[:, None], predictions.shape[-1] - 1)
            logits = logits[:, -1].float().scatter(1, previous[:, None], REPEAT_PENALTY)
            logits = torch.where((previous == eos)[:, None], after_end, logits)
            top, classes = F.log_softmax(logits, dim=1).topk(1)  # per_node_beam_size 1
            summed = (top + last.reshape(r * beam, 1)).reshape(r, beam)
            grown = torch.cat([predictions.reshape(r * beam, -1), classes], -1).reshape(r, beam, -1)
            last, pick = summed.topk(beam)
            predictions = grown.gather(1, pick[..., None].expand(-1, -1, grown.shape[-1]))
            if beam > 1:  # the cache follows its beams
                keep = (rows + pick).reshape(-1)
                cache = [(k[keep], v[keep]) for k, v in cache]
        predictions, last = predictions[:, 0], last[:, 0]  # the best beam (VBench decodes that one)
        valid = (predictions != eos).sum(-1) + ((predictions == eos).sum(-1) > 0).long() - 1  # minus the begin token
        return predictions, last / valid.clamp(min=1)
