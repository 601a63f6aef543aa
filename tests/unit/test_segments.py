"""From boundaries to clip ranges: merging, transition frames cut out, re-clipping and length rules."""
from __future__ import annotations

import numpy as np
import pytest

from components.curation.fades import Fade
from components.curation.motion import MotionConfig
from components.curation.segments import Boundary, Piece, enforce_length, length_rules, merge_boundaries, \
    reclip, shots


def covered(kept: list[Piece], dropped: list[Piece]) -> list[int]:
    return sorted(f for p in kept + dropped for f in range(p.start, p.end))


def test_cuts_inside_a_fade_are_the_fade():
    fade = Fade(first=20, end=24, frame=22, style="black", score=50.0)
    merged = merge_boundaries([10, 19, 23, 26, 27], [fade], tolerance=2)
    assert merged == [Boundary(10, "scene", 10, 10), Boundary(22, "fade", 20, 24, "black"),
                      Boundary(27, "scene", 27, 27)]


def test_shots_between_boundaries_and_fade_frames_dropped():
    boundaries = [Boundary(10, "scene", 10, 10), Boundary(22, "fade", 20, 24, "cross")]
    kept, dropped = shots(boundaries, 40)
    assert kept == [Piece(0, 10, "scene"), Piece(10, 20, "scene"), Piece(24, 40, "fade")]
    assert dropped == [Piece(20, 24, "fade")]
    assert covered(kept, dropped) == list(range(40))


def test_a_video_without_boundaries_is_whole():
    assert shots([], 17) == ([Piece(0, 17, "whole")], [])


def test_fade_at_the_very_start_leaves_no_empty_clip():
    kept, dropped = shots([Boundary(1, "fade", 0, 3, "black")], 12)
    assert kept == [Piece(3, 12, "fade")] and dropped == [Piece(0, 3, "fade")]


def test_reclip_keeps_the_longer_part():
    motion = np.full(39, 0.05)
    motion[29] = 0.97  # pair (29, 30) inside the piece [10, 40)
    kept, lost, at = reclip(Piece(10, 40, "scene"), motion, MotionConfig())
    assert (kept, lost, at) == (Piece(10, 30, "motion_peak"), Piece(30, 40, "motion_peak"), 30)
    calm = np.full(39, 0.05)
    assert reclip(Piece(10, 40, "scene"), calm, MotionConfig()) == (Piece(10, 40, "scene"), None, None)


def test_length_rules_in_frames():
    rules = length_rules(24.0, min_seconds=0.5, max_seconds=1.0, max_frames=20, long_clips="truncate")
    assert (rules.min_frames, rules.max_frames, rules.max_rule) == (12, 20, "max_frames")
    rules = length_rules(30.0, min_seconds=0.5, max_seconds=1.0, max_frames=None, long_clips="truncate")
    assert (rules.min_frames, rules.max_frames, rules.max_rule) == (15, 30, "max_seconds")
    assert length_rules(8.0, 0.0, None, None, "truncate").max_frames is None


@pytest.mark.parametrize("policy, kept, dropped", [
    ("truncate", [Piece(0, 24, "scene")], [Piece(24, 60, "max_seconds")]),
    ("drop", [], [Piece(0, 60, "max_seconds")]),
    ("split", [Piece(0, 24, "scene"), Piece(24, 48, "scene")], [Piece(48, 60, "min_seconds")]),
])
def test_long_clips(policy, kept, dropped):
    rules = length_rules(24.0, min_seconds=0.6, max_seconds=1.0, max_frames=None, long_clips=policy)
    assert enforce_length(Piece(0, 60, "scene"), rules) == (kept, dropped)


def test_short_clips_are_dropped_by_min_seconds():
    rules = length_rules(24.0, min_seconds=0.5, max_seconds=None, max_frames=None, long_clips="truncate")
    assert enforce_length(Piece(5, 16, "fade"), rules) == ([], [Piece(5, 16, "min_seconds")])
    assert enforce_length(Piece(5, 17, "fade"), rules) == ([Piece(5, 17, "fade")], [])
