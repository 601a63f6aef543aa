"""VBench's GRiT rules on hand-built detections (no network): object_class, multiple_objects, color, spatial."""
from __future__ import annotations

import pytest

from components.evaluation.vbench.grit_rules import (color_counts, color_object, frames_with_both, frames_with_object,
                                                     iou, object_pair, position_score, spatial_frame_scores)


def test_object_class_counts_frames_naming_the_object_exactly():
    frames = [{"dog", "person"}, {"dogs"}, set(), {"dog"}]
    assert frames_with_object(frames, "dog") == 2  # "dogs" is another name: exact match only
    assert frames_with_object(frames, "cat") == 0


def test_multiple_objects_needs_both_names_of_a_and_b():
    assert object_pair("bird and  cat ", "p.mp4") == ("bird", "cat")
    frames = [{"bird", "cat"}, {"bird"}, {"cat", "bird", "dog"}]
    assert frames_with_both(frames, ("bird", "cat")) == 2
    with pytest.raises(ValueError, match=r"p.mp4: multiple_objects needs 'A and B', got object 'bird, cat'"):
        object_pair("bird, cat", "p.mp4")


def test_color_object_is_the_prompt_without_articles_and_colour():
    assert color_object("a red bicycle", "red") == "bicycle"
    assert color_object("an orange cat", "orange") == "cat"
    # every 'a ' goes, also inside words: VBench's plain str.replace
    assert color_object("a yellow banana and a cup", "yellow") == "bananand cup"


def test_color_counts_frames_whose_first_object_is_the_subject():
    frames = [
        [("a red car", "car")],  # counted (red is a colour word), coloured
        [("white car", "car"), ("blue sky", "car")],  # counted, not red
        [("a car", "car")],  # no colour word: not counted
        [("red apple", "apple")],  # first object is an apple
        [("", "")],  # nothing detected
        [("a tired man", "car")],  # 'red' inside 'tired': VBench's substring test counts it
    ]
    assert color_counts(frames, "red", "car") == (3, 2)
    assert color_counts(frames, "brown", "car") == (3, 0)


def test_position_score_against_hand_computed_boxes():
    left, right = [0, 0, 10, 10], [20, 0, 30, 10]
    assert position_score("on the left of", left, right) == 1.0
    assert position_score("on the right of", left, right) == 1.0  # only the axis is checked, not the side
    assert position_score("on the top of", left, right) == 0.0  # apart horizontally, asked vertically
    overlapping = [5, 0, 15, 10]  # intersection 50, union 150: IoU 1/3 >= 0.1 → 0.1 / (1/3)
    assert iou(left, overlapping) == pytest.approx(1 / 3)
    assert position_score("on the left of", left, overlapping) == pytest.approx(0.3)
    above, below = [0, 0, 10, 10], [2, 30, 12, 40]
    assert position_score("on the bottom of", above, below) == 1.0
    assert position_score("next to", left, right) == 0.0
    assert iou([0, 0, 0, 5], [3, 3, 3, 3]) == 0.0  # empty boxes: no division by zero


def test_spatial_frame_scores_take_the_best_pair_of_either_name():
    info = {"object_a": "dog", "object_b": "cat", "relationship": "on the left of"}
    frames = [
        [("dog", [0, 0, 10, 10]), ("cat", [5, 0, 15, 10]), ("car", [40, 0, 50, 10])],  # only pair: 0.3
        [("dog", [0, 0, 10, 10]), ("dog", [30, 0, 40, 10])],  # two dogs pair up too: 1.0
        [("cat", [0, 0, 10, 10])],  # one box: no pair
        [],
    ]
    assert spatial_frame_scores(frames, info) == pytest.approx([0.3, 1.0, 0.0, 0.0])
