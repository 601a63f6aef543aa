"""VidGen-1M's fine-curation caption checks that need no LLM: empty, looping, unterminated, frame-by-frame, transition.

Each check is a boolean flag column; curate.tier turns set flags into drop rules. Patterns are config so a
recipe can tune them, and match case-insensitively on word boundaries.
"""
from __future__ import annotations

import re
from collections import Counter

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

FLAG_COLUMNS = ("caption_empty", "caption_loop", "caption_unterminated", "caption_frame_by_frame",
                "caption_transition")


class CaptionChecks(BaseModel):
    """Thresholds and patterns of the caption checks."""

    model_config = ConfigDict(extra="forbid")
    loop_ngram: int = Field(4, ge=2)  # words per n-gram when looking for a looping generation
    loop_min_repeats: int = Field(3, ge=2)  # an n-gram this many times means the captioner looped
    sentence_min_words: int = Field(3, ge=1)  # a repeated sentence this long also counts as a loop
    end_punctuation: str = ".!?\"')"
    # a missing end token is an LLM failure; source captions (alt text, sidecars) often carry no full stop
    require_end_for: list[str] = Field(default_factory=lambda: ["llm"])
    frame_patterns: list[str] = Field(default_factory=lambda: [
        r"\b(first|second|third|fourth|fifth|next|last|final|following|previous|subsequent) frames?\b",
        r"\bframes?\s*#?\d+\b",
        r"\bframe[- ]by[- ]frame\b",
    ])
    transition_patterns: list[str] = Field(default_factory=lambda: [
        r"\bthen\b",
        r"\bcuts? (to|away)\b",
        r"\btransitions? (to|into)\b",
        r"\bswitch(es)? to\b",
        r"\bfades? (in|out|to|into)\b",
        r"\bscene (changes|shifts|switches)\b",
    ])


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def is_loop(text: str, cfg: CaptionChecks) -> bool:
    """A repeated n-gram (loop_min_repeats times) or a repeated sentence: the signature of a looping LLM."""
    words = _words(text)
    grams = Counter(tuple(words[i:i + cfg.loop_ngram]) for i in range(len(words) - cfg.loop_ngram + 1))
    if grams and max(grams.values()) >= cfg.loop_min_repeats:
        return True
    sentences = Counter(" ".join(_words(s)) for s in re.split(r"[.!?]+", text)
                        if len(_words(s)) >= cfg.sentence_min_words)
    return bool(sentences) and max(sentences.values()) >= 2


def _any(patterns: list[str], text: str) -> bool:
    return any(re.search(p, text, flags=re.IGNORECASE) for p in patterns)


def check_caption(text: str | None, source: str, cfg: CaptionChecks) -> dict[str, bool]:
    """The flag columns of one caption; `source` is its caption_source (end punctuation is checked per source)."""
    text = (text or "").strip()
    if not text:
        return {name: name == "caption_empty" for name in FLAG_COLUMNS}
    return {
        "caption_empty": False,
        "caption_loop": is_loop(text, cfg),
        "caption_unterminated": source in cfg.require_end_for and text[-1] not in cfg.end_punctuation,
        "caption_frame_by_frame": _any(cfg.frame_patterns, text),
        "caption_transition": _any(cfg.transition_patterns, text),
    }


def check_captions(texts: list[str], sources: list[str], cfg: CaptionChecks) -> pd.DataFrame:
    """One row of flag columns per caption (bool dtype, in FLAG_COLUMNS order)."""
    rows = [check_caption(t, s, cfg) for t, s in zip(texts, sources, strict=True)]
    return pd.DataFrame(rows, columns=list(FLAG_COLUMNS)).astype(bool)
