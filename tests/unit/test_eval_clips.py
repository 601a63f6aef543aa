"""Held-out clip selection: deterministic per clip, filters, ordering, errors; resize + centre crop."""
import numpy as np
import pandas as pd
import pytest

from components.evaluation.clips import ClipSelection, heldout_score, is_heldout, resize_crop, select


def _table(n: int = 200) -> pd.DataFrame:
    return pd.DataFrame({
        "clip_id": [f"v{i:03d}-000000-000040" for i in range(n)],
        "path": [f"/data/v{i}.mp4" for i in range(n)],
        "media": ["image" if i % 10 == 0 else "video" for i in range(n)],
        "start_frame": [0] * n,
        "num_frames": [8 if i % 10 == 5 else 40 for i in range(n)],
    })


def test_selection_is_the_hash_rule_and_ignores_table_order():
    sel = ClipSelection(fraction=0.3, max_clips=1000, frames=17)
    table = _table()
    chosen = select(table, sel, "clips.parquet")
    want = {c for c, m, n in zip(table.clip_id, table.media, table.num_frames)
            if m == "video" and n >= 17 and is_heldout(c, 0.3, sel.salt)}
    assert set(chosen.clip_id) == want
    assert 0.15 * 160 < len(want) < 0.45 * 160  # 160 usable clips, about 30% held out
    shuffled = select(table.sample(frac=1.0, random_state=3), sel, "clips.parquet")
    assert list(shuffled.clip_id) == list(chosen.clip_id)
    assert list(chosen.heldout_score) == sorted(chosen.heldout_score)


def test_max_clips_takes_the_lowest_scores_and_salt_changes_the_set():
    table = _table()
    top = select(table, ClipSelection(fraction=1.0, max_clips=5), "t")
    full = select(table, ClipSelection(fraction=1.0, max_clips=1000), "t")
    assert list(top.clip_id) == list(full.clip_id[:5])
    other = select(table, ClipSelection(fraction=1.0, max_clips=5, salt="another"), "t")
    assert set(other.clip_id) != set(top.clip_id)


def test_heldout_score_is_uniform_and_fixed():
    scores = np.array([heldout_score(f"clip{i}", "s") for i in range(4000)])
    assert 0 <= scores.min() and scores.max() < 1
    assert abs(scores.mean() - 0.5) < 0.02
    assert heldout_score("clip1", "s") == heldout_score("clip1", "s")


def test_errors_name_the_table_and_the_reason():
    with pytest.raises(ValueError, match=r"clips.parquet: missing column\(s\) \['num_frames'\]"):
        select(_table().drop(columns=["num_frames"]), ClipSelection(), "clips.parquet")
    with pytest.raises(ValueError, match="clips.parquet: no held-out clip: 200 rows, 0 videos with >= 99 frames"):
        select(_table(), ClipSelection(frames=99), "clips.parquet")


def test_resize_crop_keeps_the_centre():
    frames = np.zeros((2, 40, 80, 3), np.uint8)
    frames[:, :, 30:50] = 255  # a bright band in the middle third of the width
    out = resize_crop(frames, 20, "area")
    assert out.shape == (2, 20, 20, 3)
    # 40x80 -> 20x40, crop columns 10..29: the band (15..24 after resize) sits at 5..14 of the crop
    assert out[0, :, 5:15].min() == 255 and out[0, :, :5].max() == 0 and out[0, :, 15:].max() == 0
