"""Beam search exactly as transformers 4.33 runs it for `generate(num_beams=k)` (VBench pins transformers==4.33.2).

Per step: log-softmax of the last logits, eos banned while the sequence (prompt included) is shorter than
min_length, plus the beam's running score; the top 2k of the k*vocab candidates in order; an eos among the
top k closes a hypothesis (scored sum / length**length_penalty, length without the eos, prompt included), other
tokens refill the k beams. A sentence is done once it holds k hypotheses and the best running score divided by
the current length cannot beat the worst kept one (early_stopping=False); the loop ends when every sentence is
done or the sequences reach max_length, and open beams then join the hypotheses. Only beam 0 starts live
(the others at -1e9), so the first step expands one prefix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

DEAD_BEAM = -1e9  # transformers' start score of beams 1..k-1


@dataclass(frozen=True)
class BeamConfig:
    """Tag2Text.generate's defaults as VBench calls it: 3 beams, 10 to 30 tokens counting the 4-token prompt."""

    beams: int = 3
    max_length: int = 30
    min_length: int = 10
    length_penalty: float = 1.0
    eos: int = 102  # [SEP]
    pad: int = 0  # [PAD]


class Hypotheses:
    """The k best finished sequences of one sentence (transformers' BeamHypotheses, early_stopping=False)."""

    def __init__(self, beams: int, length_penalty: float):
        self.beams, self.length_penalty = beams, length_penalty
        self.kept: list[tuple[float, list[int]]] = []
        self.worst = 1e9

    def add(self, tokens: list[int], sum_logprobs: float) -> None:
        score = sum_logprobs / (len(tokens) ** self.length_penalty)
        if len(self.kept) < self.beams or score > self.worst:
            self.kept.append((score, tokens))
            if len(self.kept) > self.beams:
                order = sorted((s, i) for i, (s, _) in enumerate(self.kept))
                del self.kept[order[0][1]]
                self.worst = order[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_sum_logprobs: float, length: int) -> bool:
        if len(self.kept) < self.beams:
            return False
        return self.worst >= best_sum_logprobs / length**self.length_penalty

    def best(self) -> list[int]:
        """Highest score; among equal scores the one added last (transformers pops the end of a stable sort)."""
        return sorted(self.kept, key=lambda item: item[0])[-1][1]


def beam_search(next_logits: Callable[[torch.Tensor], torch.Tensor], prompt: torch.Tensor,
                cfg: BeamConfig = BeamConfig()) -> list[list[int]]:
    """Best sequence (prompt included, eos excluded) per prompt row.

    prompt: (B, P) token ids. next_logits maps (B*k, L) prefixes, row b*k + j being beam j of sentence b,
    to (B*k, vocab) logits of the next token.
    """
    b, k = prompt.shape[0], cfg.beams
    ids = prompt.repeat_interleave(k, dim=0)  # (B*k, P)
    scores = torch.zeros(b, k, device=prompt.device)
    scores[:, 1:] = DEAD_BEAM
    scores = scores.view(-1)
    found = [Hypotheses(k, cfg.length_penalty) for _ in range(b)]
    done = [False] * b
    while True:
        length = ids.shape[1]
        logp = torch.log_softmax(next_logits(ids).float(), dim=-1)
        if length < cfg.min_length:
            logp[:, cfg.eos] = -float("inf")
        vocab = logp.shape[-1]
        top, flat = (logp + scores[:, None]).view(b, k * vocab).topk(2 * k, dim=1)
        source, token = flat // vocab, flat % vocab
        next_scores = torch.zeros(b, k, device=ids.device)
        next_tokens = torch.full((b, k), cfg.pad, dtype=torch.long, device=ids.device)
        next_rows = torch.zeros(b, k, dtype=torch.long, device=ids.device)
        top_l, token_l, source_l = top.tolist(), token.tolist(), source.tolist()
        for s in range(b):
            if done[s]:
                continue  # transformers pads a finished sentence from row 0; its rows are never read again
            filled = 0
            for rank in range(2 * k):
                row = s * k + source_l[s][rank]
                if token_l[s][rank] == cfg.eos:
                    if rank < k:
                        found[s].add(ids[row].tolist(), top_l[s][rank])
                else:
                    next_scores[s, filled] = top_l[s][rank]
                    next_tokens[s, filled] = token_l[s][rank]
                    next_rows[s, filled] = row
                    filled += 1
                if filled == k:
                    break
            done[s] = found[s].is_done(max(top_l[s]), length)
        ids = torch.cat([ids[next_rows.view(-1)], next_tokens.view(-1, 1)], dim=1)
        scores = next_scores.view(-1)
        if all(done) or ids.shape[1] >= cfg.max_length:
            break
    for s in range(b):
        if not done[s]:
            for j in range(k):
                found[s].add(ids[s * k + j].tolist(), float(scores[s * k + j]))
    return [h.best() for h in found]
