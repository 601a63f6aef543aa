"""Bucket tables, bucket config parsing and the per-epoch assignment rules (RECIPE §6)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from components.data.aspect_ratios import ASPECT_RATIOS, OPEN_SORA_RESOLUTIONS, closest_ratio, derive_hw, get_resolution
from components.data.buckets import (OPEN_SORA_STAGES, TINY_STAGES, UNASSIGNED_REASONS, BucketConfig, BucketKey, Clips,
                                     assign_buckets)

# Entries of Open-Sora 1.2's ASPECT_RATIO_* dicts (opensora/datasets/aspect.py), including every hand-edited one.
PUBLISHED = {
    ("144p", "0.38"): (117, 312), ("144p", "0.54"): (141, 260), ("144p", "1.78"): (256, 144),
    ("144p", "2.08"): (277, 132), ("240p", "0.54"): (236, 436), ("240p", "0.56"): (240, 426),
    ("240p", "0.67"): (262, 393), ("240p", "1.33"): (370, 278), ("360p", "0.38"): (294, 784),
    ("360p", "1.00"): (480, 480), ("360p", "2.08"): (692, 332), ("480p", "0.48"): (444, 925),
    ("480p", "0.56"): (480, 854), ("480p", "1.33"): (740, 555), ("480p", "2.00"): (906, 454),
    ("720p", "0.54"): (706, 1306), ("720p", "1.78"): (1280, 720), ("720p", "1.89"): (1320, 698),
    ("1080p", "0.38"): (882, 2352), ("1080p", "0.54"): (1058, 1958), ("1080p", "0.56"): (1080, 1920),
    ("1080p", "1.33"): (1662, 1246),
}

KEEP_ALL = {"720p": {1: (1.0, 4), 51: (1.0, 2), 102: (1.0, 1)}, "240p": {1: (1.0, 8), 51: (1.0, 4)}}


def clips(*rows: tuple[int, int, int, str]) -> Clips:
    """Clips from (height, width, num_frames, media) rows."""
    return Clips.from_records([dict(height=h, width=w, num_frames=t, media=m) for h, w, t, m in rows])


def many(row: tuple[int, int, int, str], n: int) -> Clips:
    return clips(*[row] * n)


# ---- tables ------------------------------------------------------------------------------------------------
def test_tables_reproduce_open_sora_published_values():
    for (name, label), hw in PUBLISHED.items():
        assert get_resolution(name).table[label] == hw, (name, label)
    assert list(ASPECT_RATIOS) == ["0.38", "0.43", "0.48", "0.50", "0.53", "0.54", "0.56", "0.62", "0.67", "0.75",
                                   "1.00", "1.33", "1.50", "1.78", "1.89", "2.00", "2.08"]
    for name, (pixels, _, _) in OPEN_SORA_RESOLUTIONS.items():
        res = get_resolution(name)
        assert res.pixels == pixels and list(res.table) == list(ASPECT_RATIOS)
        for label, (h, w) in res.table.items():
            assert abs(h / w / float(ASPECT_RATIOS[label]) - 1) < 0.01, (name, label)
            assert abs(h * w / pixels - 1) < 0.03, (name, label)


def test_derivation_rule_rounds_exactly():
    assert derive_hw(102240, Fraction(9, 16)) == (240, 426)  # sqrt = 239.8 -> 240; 426.7 -> nearest even 426
    assert derive_hw(9, Fraction(1)) == (4, 4)  # sqrt 3 is a tie between 2 and 4: up, as Open-Sora's eps does
    assert derive_hw(9, Fraction(1), multiple=1, mode="floor") == (3, 3)
    assert derive_hw(36864, Fraction(16, 9), multiple=1, mode="floor") == (256, 144)  # perfect square, no float error
    with pytest.raises(ValueError, match="mode must be"):
        derive_hw(100, Fraction(1), mode="up")


def test_tiny_resolutions_are_pixel_counts_with_sides_divisible_by_8():
    for side in (64, 96, 128):
        res = get_resolution(f"{side}px")
        assert res.pixels == side * side and res.table["1.00"] == (side, side)
        assert all(h % 8 == 0 and w % 8 == 0 for h, w in res.table.values())
    assert get_resolution("64px").table["0.56"] == (48, 88)
    with pytest.raises(ValueError, match=r"unknown bucket resolution '999p'; known: 144p, 240p.*<N>px"):
        get_resolution("999p")


def test_closest_ratio():
    assert closest_ratio(1080, 1920) == "0.56"
    assert closest_ratio(1920, 1080) == "1.78"
    assert closest_ratio(100, 100) == "1.00"
    assert closest_ratio(1, 3) == "0.38" and closest_ratio(3, 1) == "2.08"  # outside the range: the end label


# ---- config ---------------------------------------------------------------------------------------------------
def test_compact_config_parses_with_pairs_and_string_keys():
    cfg = BucketConfig.model_validate(OPEN_SORA_STAGES["stage1"])
    e = cfg.resolutions["240p"]
    assert (e[1].keep_prob, e[1].allow_prob, e[1].batch_size) == (0.3, 1.0, 297)
    assert (e[102].keep_prob, e[102].allow_prob, e[102].batch_size) == (0.4, 0.33, 10)
    wrapped = BucketConfig.model_validate({"resolutions": {"240p": {"51": [0.4, 20]}}, "min_pixel_ratio": 0.7})
    assert wrapped.resolutions["240p"][51].batch_size == 20 and wrapped.min_pixel_ratio == 0.7
    zero = BucketConfig.model_validate({"480p": {408: (0.0, None), 51: (0.3, 6)}})
    assert zero.resolutions["480p"][408].batch_size is None


def test_example_configs_are_yaml_ready():
    for examples in (OPEN_SORA_STAGES, TINY_STAGES):
        for name, compact in examples.items():
            again = yaml.safe_load(yaml.safe_dump(compact))
            assert BucketConfig.model_validate(again) == BucketConfig.model_validate(compact), name
            dumped = BucketConfig.model_validate(compact).model_dump(mode="json")  # the form logged to MLflow
            assert BucketConfig.model_validate(yaml.safe_load(yaml.safe_dump(dumped))) == BucketConfig.model_validate(
                compact), name


@pytest.mark.parametrize("data, message", [
    ({"999p": {1: (1.0, 4)}}, "unknown bucket resolution '999p'"),
    ({"240p": {51: (0.5, None)}}, "batch_size is required when keep_prob > 0"),
    ({"240p": {1: ((0.5, 0.5), 4)}}, r"resolutions.240p.1: the image entry takes a single keep_prob"),
    ({"240p": {51: (0.5, 4, 2)}}, r"expected \(keep_prob, batch_size\)"),
    ({"240p": {51: (1.5, 4)}}, "less than or equal to 1"),
    ({"240p": {}}, "resolutions.240p: at least one frame count"),
    ({"resolutions": {"240p": {51: (1, 2)}}, "drop": True}, "Extra inputs are not permitted"),
])
def test_config_errors_name_the_field(data, message):
    with pytest.raises(ValidationError, match=message):
        BucketConfig.model_validate(data)


def test_bucket_keys_order_largest_first():
    cfg = BucketConfig.model_validate(KEEP_ALL)
    keys = cfg.bucket_keys()
    assert len(keys) == 5 * 17
    assert keys[0] == BucketKey("720p", 102, "0.38", 588, 1568)
    assert keys[17 * 3] == BucketKey("240p", 51, "0.38", 196, 522)
    assert cfg.batch_size(keys[17 * 3]) == 4


# ---- assignment rules ------------------------------------------------------------------------------------------
def test_assignment_rules_on_constructed_clips():
    cfg = BucketConfig.model_validate(KEEP_ALL)
    rows = [
        (720, 1280, 120, "video"),  # 720p, largest covered frame count 102
        (1280, 720, 60, "video"),  # portrait: 51 frames, ratio 1.78
        (576, 1280, 51, "video"),  # exactly 0.8 x 720p's pixels: reaches 720p; 51 frames cover 51
        (575, 1280, 51, "video"),  # just under 0.8 x: falls to 240p
        (720, 1280, 1, "image"),  # images only to 1 frame
        (720, 1280, 50, "video"),  # covers no video frame count anywhere
        (720, 1280, 1, "video"),  # a one-frame video is not an image
        (100, 100, 60, "video"),  # below 0.8 x 240p
    ]
    got = assign_buckets(clips(*rows), cfg, seed=0, epoch=0)
    assert got.key(0) == BucketKey("720p", 102, "0.56", 720, 1280)
    assert got.key(1) == BucketKey("720p", 51, "1.78", 1280, 720)
    assert got.key(2) == BucketKey("720p", 51, "0.43", 628, 1466)
    assert got.key(3) == BucketKey("240p", 51, "0.43", 210, 490)
    assert got.key(4) == BucketKey("720p", 1, "0.56", 720, 1280)
    assert [got.why(i) for i in range(8)] == [None] * 5 + ["too_short", "too_short", "too_small"]
    assert got.unassigned() == {"too_small": 1, "no_image_bucket": 0, "too_short": 2, "not_kept": 0}
    assert got.summary() == {"clips": 8, "assigned": 5, "unassigned_too_small": 1, "unassigned_no_image_bucket": 0,
                             "unassigned_too_short": 2, "unassigned_not_kept": 0}
    assert got.counts() == {"720p/102f/0.56": 1, "720p/51f/0.43": 1, "720p/51f/1.78": 1, "720p/1f/0.56": 1,
                            "240p/51f/0.43": 1}


def test_vectorised_ratio_matches_closest_ratio():
    rng = np.random.default_rng(0)
    sizes = rng.integers(64, 4000, size=(2000, 2))  # every size reaches 64px
    table = clips(*[(int(h), int(w), 1, "image") for h, w in sizes])
    got = assign_buckets(table, BucketConfig.model_validate({"64px": {1: (1.0, 4)}}), 0, 0)
    assert [got.key(i).aspect_ratio for i in range(2000)] == [closest_ratio(h, w) for h, w in sizes]


def test_keep_prob_zero_falls_to_the_next_resolution_and_reasons():
    cfg = BucketConfig.model_validate({"720p": {1: (0.0, 4), 51: (0.0, 2)}, "240p": {51: (1.0, 4)}})
    got = assign_buckets(clips((720, 1280, 60, "video"), (720, 1280, 1, "image")), cfg, seed=3, epoch=7)
    assert got.key(0) == BucketKey("240p", 51, "0.56", 240, 426)
    assert got.why(1) == "not_kept"  # it had 720p/1f, dropped there, and 240p has no image entry
    no_image = BucketConfig.model_validate({"240p": {51: (1.0, 4)}})
    assert assign_buckets(clips((240, 426, 1, "image")), no_image, 0, 0).why(0) == "no_image_bucket"
    nothing_kept = BucketConfig.model_validate({"240p": {51: (0.0, 4)}})
    assert assign_buckets(clips((240, 426, 60, "video")), nothing_kept, 0, 0).why(0) == "not_kept"


def test_frame_interval_scales_the_frames_needed():
    cfg = BucketConfig.model_validate({"resolutions": KEEP_ALL, "frame_interval": 2})
    got = assign_buckets(clips((720, 1280, 203, "video"), (720, 1280, 204, "video"), (720, 1280, 101, "video")),
                         cfg, 0, 0)
    assert [got.key(i).num_frames for i in range(2)] == [51, 102] and got.why(2) == "too_short"


def test_clip_table_errors_name_row_and_field():
    with pytest.raises(ValueError, match=r"row 1 \(id b\) height must be a positive integer, got 0"):
        Clips.from_table({"id": ["a", "b"], "height": [10, 0], "width": [5, 5], "num_frames": [1, 1],
                          "media": ["image", "image"]})
    with pytest.raises(ValueError, match=r"row 0 media must be one of \('video', 'image'\), got 'gif'"):
        clips((10, 10, 1, "gif"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['media'\]"):
        Clips.from_table({"height": [1], "width": [1], "num_frames": [1]})


# ---- determinism and rates -------------------------------------------------------------------------------------
def test_assignment_is_a_function_of_seed_epoch_and_row_only():
    cfg = BucketConfig.model_validate(OPEN_SORA_STAGES["stage1"])
    table = many((240, 426, 120, "video"), 2000)
    first = assign_buckets(table, cfg, seed=5, epoch=2).bucket
    assert np.array_equal(first, assign_buckets(table, cfg, seed=5, epoch=2).bucket)
    assert not np.array_equal(first, assign_buckets(table, cfg, seed=5, epoch=3).bucket)
    assert not np.array_equal(first, assign_buckets(table, cfg, seed=6, epoch=2).bucket)
    # a clip's draw does not depend on the other rows (hash per row, no shared generator)
    assert np.array_equal(first[:100], assign_buckets(many((240, 426, 120, "video"), 100), cfg, 5, 2).bucket)


def test_keep_and_allow_probabilities_match_empirical_rates():
    n = 40000
    cfg = BucketConfig.model_validate(OPEN_SORA_STAGES["stage1"])  # 102: ((0.4, 0.33), 10), 51: (0.4, 20)
    got = assign_buckets(many((240, 426, 120, "video"), n), cfg, seed=0, epoch=0)
    counts = got.counts()
    assert counts["240p/102f/0.56"] / n == pytest.approx(0.33 * 0.4, abs=0.012)
    assert counts["240p/51f/0.56"] / n == pytest.approx(0.67 * 0.4, abs=0.012)
    assert got.unassigned()["not_kept"] / n == pytest.approx(0.6, abs=0.012)
    images = assign_buckets(many((240, 426, 1, "image"), n), cfg, seed=0, epoch=0)
    assert images.counts()["240p/1f/0.56"] / n == pytest.approx(0.3, abs=0.012)
    fall = BucketConfig.model_validate({"360p": {51: (0.25, 4)}, "240p": {51: (1.0, 8)}})
    down = assign_buckets(many((360, 640, 60, "video"), n), fall, seed=1, epoch=4).counts()
    assert down["360p/51f/0.56"] / n == pytest.approx(0.25, abs=0.012)
    assert down["240p/51f/0.56"] / n == pytest.approx(0.75, abs=0.012)


@pytest.mark.parametrize("stage, res", [("stage1", "240p"), ("stage2", "360p"), ("stage3", "720p")])
def test_open_sora_stage_examples_assign(stage, res):
    cfg = BucketConfig.model_validate(OPEN_SORA_STAGES[stage])
    n = 3000
    entries = cfg.resolutions[res]
    rows = [(1080, 1920, 240, "video"), (1080, 1920, 1, "image"), (720, 1280, 60, "video"), (100, 100, 60, "video")]
    for kind, row in enumerate(rows):
        got = assign_buckets(many(row, n), cfg, seed=0, epoch=0)
        reasons = {k: v for k, v in got.unassigned().items() if v}
        if kind == 3:
            assert reasons == {"too_small": n}
            continue
        frames = 1 if kind == 1 else (102 if row[2] >= 102 else 51)
        allow = entries[frames].allow_prob
        keep_big = entries[frames].keep_prob * allow
        expected = {f"{res}/{frames}f/0.56": keep_big}
        if allow < 1:  # denied the largest frame count: 51 frames, kept with 51's keep_prob
            expected[f"{res}/51f/0.56"] = (1 - allow) * entries[51].keep_prob
        assert set(got.counts()) == set(expected)
        for name, p in expected.items():
            assert got.counts()[name] / n == pytest.approx(p, abs=0.035), name
        assert set(reasons) == {"not_kept"} and sum(got.counts().values()) + reasons["not_kept"] == n
    assert set(UNASSIGNED_REASONS) == {"too_small", "no_image_bucket", "too_short", "not_kept"}
