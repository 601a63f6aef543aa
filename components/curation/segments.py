"""From detector outputs to clip ranges: merge cuts and fades, cut transitions out, re-clip, enforce lengths.

Every frame of a video ends up either in a kept range or in a dropped range that names the rule that dropped
it, so the split stage can prove that nothing was lost silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from components.curation.fades import Fade
from components.curation.motion import MotionConfig, reclip_at_peak


@dataclass(frozen=True)
class Boundary:
    """A shot change at `frame` (first frame of the next shot); frames [first, end) belong to neither shot."""

    frame: int
    rule: str  # scene | fade | motion_peak
    first: int
    end: int
    style: str = "cut"  # cut | cross | black


@dataclass(frozen=True)
class Piece:
    """A frame range [start, end) of a video and the rule behind it (a kept clip or a dropped range)."""

    start: int
    end: int
    rule: str

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class LengthRules:
    """Clip length limits in frames of one video, from seconds and frame caps."""

    min_frames: int
    max_frames: int | None
    max_rule: str  # max_seconds | max_frames: whichever limit binds
    long_clips: Literal["truncate", "split", "drop"]


def length_rules(fps: float, min_seconds: float, max_seconds: float | None, max_frames: int | None,
                 long_clips: Literal["truncate", "split", "drop"]) -> LengthRules:
    """Frame limits at this fps; a clip shorter than min_seconds is dropped (tolerating float rounding)."""
    by_seconds = int(math.floor(max_seconds * fps + 1e-9)) if max_seconds else None
    candidates = [(n, rule) for n, rule in ((by_seconds, "max_seconds"), (max_frames, "max_frames")) if n]
    limit, rule = min(candidates) if candidates else (None, "max_seconds")
    return LengthRules(int(math.ceil(min_seconds * fps - 1e-9)), limit, rule, long_clips)


def merge_boundaries(cuts: list[int], fades: list[Fade], tolerance: int) -> list[Boundary]:
    """Fades plus the cuts that are not the same transition (a detector often fires inside a fade)."""
    out = [Boundary(f.frame, "fade", f.first, f.end, f.style) for f in fades]
    for cut in sorted(set(cuts)):
        if not any(f.first - tolerance <= cut <= f.end + tolerance for f in fades):
            out.append(Boundary(cut, "scene", cut, cut))
    return sorted(out, key=lambda b: (b.frame, b.first))


def shots(boundaries: list[Boundary], num_frames: int) -> tuple[list[Piece], list[Piece]]:
    """Ranges between boundaries and the transition frames cut out of them (dropped with the rule 'fade').

    A range takes the rule of the boundary before it; the first range takes its end boundary's; a video
    without boundaries is one 'whole' range.
    """
    kept, dropped, cursor, rule = [], [], 0, None
    for b in boundaries:
        first = min(max(b.first, cursor), num_frames)
        end = min(max(b.end, first), num_frames)
        if first > cursor:
            kept.append(Piece(cursor, first, rule or b.rule))
        if end > first:
            dropped.append(Piece(first, end, b.rule))
        cursor, rule = max(cursor, end), b.rule
    if cursor < num_frames:
        kept.append(Piece(cursor, num_frames, rule or "whole"))
    return kept, dropped


def reclip(piece: Piece, motion: np.ndarray, cfg: MotionConfig) -> tuple[Piece, Piece | None, int | None]:
    """Split a piece at its motion peak and keep the longer part: (kept, dropped shorter part, split frame).

    motion[i] scores the pair (i, i + 1) of the whole video, so the piece's pairs are motion[start:end - 1].
    """
    offset = reclip_at_peak(motion[piece.start:piece.end - 1], cfg)
    if offset is None:
        return piece, None, None
    split = piece.start + offset
    head, tail = Piece(piece.start, split, "motion_peak"), Piece(split, piece.end, "motion_peak")
    kept, lost = (head, tail) if head.length >= tail.length else (tail, head)
    return kept, lost, split


def enforce_length(piece: Piece, rules: LengthRules) -> tuple[list[Piece], list[Piece]]:
    """Kept pieces and dropped ones after the min/max length rules."""
    limit = rules.max_frames
    if limit and piece.length > limit:
        if rules.long_clips == "drop":
            return [], [Piece(piece.start, piece.end, rules.max_rule)]
        if rules.long_clips == "truncate":
            return [Piece(piece.start, piece.start + limit, piece.rule)], \
                [Piece(piece.start + limit, piece.end, rules.max_rule)]
        parts = [Piece(s, min(s + limit, piece.end), piece.rule) for s in range(piece.start, piece.end, limit)]
        kept = [p for p in parts if p.length >= rules.min_frames]
        return kept, [Piece(p.start, p.end, "min_seconds") for p in parts if p.length < rules.min_frames]
    if piece.length < rules.min_frames:
        return [], [Piece(piece.start, piece.end, "min_seconds")]
    return [piece], []
