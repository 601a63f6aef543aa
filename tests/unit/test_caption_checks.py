"""VidGen caption checks and Open-Sora score-to-text: flags on hand-written captions, drop probability, format."""
from __future__ import annotations

import numpy as np
import pytest

from components.curation.caption_checks import FLAG_COLUMNS, CaptionChecks, check_caption, check_captions, is_loop
from components.curation.score_text import score_to_text

CFG = CaptionChecks()


def flags(text: str, source: str = "llm") -> set[str]:
    return {name for name, on in check_caption(text, source, CFG).items() if on}


@pytest.mark.parametrize("text, expected", [
    ("A red circle moves slowly to the left across a striped background.", set()),
    ("", {"caption_empty"}),
    ("   ", {"caption_empty"}),
    ("A dog runs on the beach and the waves roll in and the", {"caption_unterminated"}),
    ("A cat sleeps. A cat sleeps. A cat sleeps.", {"caption_loop"}),
    ("The man walks to the car and the man walks to the car and the man walks to the car.", {"caption_loop"}),
    ("In the first frame a woman smiles; in the next frame she waves.", {"caption_frame_by_frame"}),
    ("Frame 1 shows a road. Frame 2 shows a car.", {"caption_frame_by_frame"}),
    ("A red circle moves left. Then a blue square moves up.", {"caption_transition"}),
    ("The view cuts to a city street at night.", {"caption_transition"}),
    ("The scene transitions to a beach at sunset.", {"caption_transition"}),
    ("A wide shot of a forest that fades to black.", {"caption_transition"}),
])
def test_flags_on_hand_written_captions(text, expected):
    assert flags(text) == expected


def test_end_punctuation_only_required_of_llm_captions():
    text = "a white circle moving right slowly on a striped background"  # a synthetic sidecar caption
    assert flags(text, source="source") == set()
    assert flags(text, source="llm") == {"caption_unterminated"}
    assert flags('He said "stop."') == set()


def test_words_like_then_inside_other_words_do_not_count():
    assert flags("Athens at dawn, with the strengthening light on the hills.") == set()
    assert not is_loop("a red car and a blue car and a green car.", CFG)  # "a ... car" repeats, no 4-gram does


def test_check_captions_table():
    table = check_captions(["ok.", "", "Then it cuts to a dog."], ["llm", "none", "llm"], CFG)
    assert list(table.columns) == list(FLAG_COLUMNS) and table.dtypes.eq(bool).all()
    assert table.sum().to_dict() == {"caption_empty": 1, "caption_loop": 0, "caption_unterminated": 0,
                                     "caption_frame_by_frame": 0, "caption_transition": 1}


ROW = {"aes": 5.54, "flow": 10.0, "cmotion": "pan_left"}


def test_score_to_text_format_with_nothing_dropped():
    rng = np.random.default_rng(0)
    assert score_to_text("a red circle moving left", ROW, rng, p_drop=0.0) == (
        "a red circle moving left. aesthetic score: 5.5, motion score: 10, camera motion: pan left.")
    assert score_to_text("A cat.", {"aes": 4.0}, rng, p_drop=0.0) == "A cat. aesthetic score: 4."
    assert score_to_text("A cat.", ROW, rng, p_drop=1.0) == "A cat."
    assert score_to_text("A cat.", {"aes": float("nan"), "cmotion": None}, rng, p_drop=0.0) == "A cat."
    with pytest.raises(ValueError, match="p_drop"):
        score_to_text("x", ROW, rng, p_drop=1.5)


def test_score_to_text_drops_each_part_with_probability_p():
    rng = np.random.default_rng(123)
    draws = 20_000
    kept = {"aesthetic score": 0, "motion score": 0, "camera motion": 0}
    both = 0
    for _ in range(draws):
        text = score_to_text("a clip", ROW, rng, p_drop=0.2)
        for part in kept:
            kept[part] += part in text
        both += "aesthetic score" in text and "camera motion" in text
    for part, count in kept.items():
        # binomial sd of the drop rate at n = 20000 is 0.0028: 0.01 is over 3 sd
        assert abs(1 - count / draws - 0.2) < 0.01, (part, 1 - count / draws)
    assert abs(both / draws - 0.64) < 0.015  # parts drop independently: 0.8 * 0.8
