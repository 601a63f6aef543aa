"""The motion scorer on constructed frames: still frames, a moving square, an iso-luminant subject; the registry."""
from __future__ import annotations

import numpy as np
import pytest

from components.curation.scorer import ClipFrames
from components.curation.scorers import SCORERS, build
from components.curation.scorers.motion import STATIC_THRESHOLD, MotionScorer, MotionScorerConfig

GREY = (110, 110, 110)
MAGENTA = (225, 40, 220)  # luma 115.6 on grey 110: 6 grey levels apart, far apart in R, G and B


def square_frames(colour, background=GREY, n: int = 5, step: int = 4, side: int = 20) -> np.ndarray:
    """n 96x96 frames of a side x side square moving `step` px right per frame."""
    frames = np.empty((n, 96, 96, 3), np.uint8)
    for t in range(n):
        frames[t] = background
        frames[t, 38:38 + side, 10 + t * step:10 + t * step + side] = colour
    return frames


def score(frames: np.ndarray, **cfg) -> float:
    return MotionScorer(MotionScorerConfig(**cfg)).score([ClipFrames("c", frames, list(range(len(frames))), 24.0)])[0]["motion"]


def test_still_frames_score_zero():
    frames = np.repeat(square_frames((250, 250, 250))[:1], 4, axis=0)
    assert score(frames) == 0.0 < STATIC_THRESHOLD


def test_moving_square_scores_the_area_it_uncovers_and_covers():
    # each pair changes two 4x20 strips (left edge uncovered, right edge covered): 160 of 9216 pixels
    assert score(square_frames((250, 250, 250))) == pytest.approx(160 / 9216, rel=0.1)


def test_iso_luminant_subject_is_missed_in_grey_but_not_in_rgb():
    frames = square_frames(MAGENTA)
    assert score(frames, channels="grey") == 0.0
    assert score(frames, channels="rgb") == pytest.approx(160 / 9216, rel=0.1)


def test_single_frame_scores_zero():
    assert score(square_frames((250, 250, 250), n=1)) == 0.0


def test_protocol_fields_provenance_and_registry():
    scorer = build("motion", {"short_side": 64, "motion": {"diff_threshold": 10}})
    assert isinstance(scorer, MotionScorer)
    assert (scorer.name, scorer.columns, scorer.num_frames, scorer.short_side) == ("motion", ("motion",), 0, 64)
    assert scorer.provenance() == {"scorer": "motion", "weights": "none", "version": "1",
                                   "method": "xGen frame-difference mask on rgb (diff > 10, median 3, close 5) "
                                             "at short side 64"}
    assert sorted(SCORERS) == ["flow", "motion", "temporal"]
    with pytest.raises(KeyError, match="unknown scorer 'nope'; registered: flow, motion, temporal"):
        build("nope")
    with pytest.raises(ValueError, match="channels"):
        build("motion", {"channels": "hsv"})
