"""Dedup: signature similarity under the corpus' edits, time alignment, which clip is dropped, candidate search."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from components.curation.dedup import (ClipFeatures, DedupConfig, aligned_similarity, candidate_pairs,
                                       clip_similarity, find_duplicates)
from components.curation.dedup_signature import SignatureConfig, clip_signature, frame_signature, \
    signature_similarity
from components.data.synth_shapes import background, crop_resize, draw_shape, shift

SIG = SignatureConfig()
CFG = DedupConfig()


def frame(x: float, colour: str = "orange", bg: str = "gray", shape: str = "circle") -> np.ndarray:
    """A 96x160 frame: one shape centred at (x, 0.5) of the frame on a background."""
    img = background(bg, 160, 96, seed=0)
    draw_shape(img, shape, colour, x * 160, 48, 30)
    return img


def frame_sim(a: np.ndarray, b: np.ndarray) -> float:
    return float(signature_similarity(clip_signature(a[None], SIG), clip_signature(b[None], SIG), SIG)[0, 0])


def test_signature_shapes_and_identity():
    cells, medians = frame_signature(frame(0.3), SIG)
    assert cells.shape == (len(SIG.zooms), SIG.size, SIG.size, 10) and cells.dtype == np.uint8
    assert medians.shape == (len(SIG.zooms), 3)
    assert frame_sim(frame(0.3), frame(0.3)) == 1.0


@pytest.mark.parametrize("edit", [lambda f: crop_resize(f, 0.08), lambda f: shift(f, 0.06)], ids=["crop", "shift"])
def test_the_corpus_edits_keep_frames_similar(edit):
    assert frame_sim(edit(frame(0.35)), frame(0.35)) >= CFG.signature_threshold


def test_different_shape_colour_place_or_background_is_dissimilar():
    assert frame_sim(frame(0.3, colour="cyan"), frame(0.3)) < 0.3  # same place, other colour
    assert frame_sim(frame(0.75), frame(0.25)) < 0.3  # same shape, far away
    assert frame_sim(frame(0.3, bg="brown"), frame(0.3)) < 0.5  # other background
    # different shape kind, same colour and place: the outline differs, a partial match
    assert frame_sim(frame(0.3, shape="star"), frame(0.3)) < CFG.signature_threshold


def test_alignment_finds_the_offset_and_respects_order():
    long_t, short_t = np.arange(6) * 0.5, np.arange(3) * 0.5
    sims = np.zeros((3, 6))
    sims[[0, 1, 2], [2, 3, 4]] = 1.0  # the short clip is the long one from 1.0 s
    assert aligned_similarity(sims, short_t, long_t, slack=0.0) == 1.0
    reversed_order = np.zeros((3, 6))
    reversed_order[[0, 1, 2], [4, 3, 2]] = 1.0  # same frames, played backwards
    assert aligned_similarity(reversed_order, short_t, long_t, slack=0.0) == pytest.approx(2 / 3)  # 2 of 3 in reach


def clips_table(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """(clip_id, num_frames, fps, aspect_ratio) rows."""
    return pd.DataFrame(rows, columns=["clip_id", "num_frames", "fps", "aspect_ratio"])


def embed_clip(vectors: np.ndarray, fps: float = 4.0) -> ClipFeatures:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return ClipFeatures(np.arange(len(vectors)) / fps, embedding=unit.astype(np.float32))


def _walk(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 16))


def test_shorter_copy_is_dropped_as_a_duplicate_of_the_longer():
    source = _walk(8, 0)
    feats = {"a": embed_clip(source), "b": embed_clip(source[2:6]), "c": embed_clip(_walk(4, 1))}
    table = clips_table([("a", 8, 4.0, 0.5625), ("b", 4, 4.0, 0.5625), ("c", 4, 4.0, 0.5625)])
    out = find_duplicates(table, feats, CFG)
    assert list(out.columns) == ["clip_id", "dup_of", "similarity"]
    by_id = out.set_index("clip_id")
    assert by_id.loc["b", "dup_of"] == "a" and by_id.loc["b", "similarity"] == pytest.approx(1.0)
    assert pd.isna(by_id.loc["a", "dup_of"]) and pd.isna(by_id.loc["c", "dup_of"])
    assert by_id.loc["c", "similarity"] < CFG.embed_threshold


def test_shorter_means_shorter_in_seconds_and_ties_drop_the_later_clip():
    source = _walk(8, 0)
    feats = {"a": embed_clip(source[:4], fps=2.0), "b": embed_clip(source, fps=2.0)}
    # a: 40 frames at 24 fps (1.7 s) is shorter than b: 24 frames at 8 fps (3 s)
    out = find_duplicates(clips_table([("a", 40, 24.0, 1.0), ("b", 24, 8.0, 1.0)]), feats, CFG).set_index("clip_id")
    assert out.loc["a", "dup_of"] == "b" and pd.isna(out.loc["b", "dup_of"])
    same = {"x": embed_clip(source), "y": embed_clip(source)}
    tie = find_duplicates(clips_table([("y", 8, 4.0, 1.0), ("x", 8, 4.0, 1.0)]), same, CFG).set_index("clip_id")
    assert tie.loc["y", "dup_of"] == "x" and pd.isna(tie.loc["x", "dup_of"])


def test_chains_do_not_drop_a_clip_for_a_dropped_one():
    base = _walk(6, 0)
    mid = base + 0.35 * _walk(6, 1)  # close to base and to far, which is not close to base
    far = base + 0.7 * _walk(6, 1)
    feats = {"a": embed_clip(base), "b": embed_clip(mid[:5]), "c": embed_clip(far[:4])}
    cfg = DedupConfig(embed_threshold=0.85)
    sims = {pair: clip_similarity(feats[pair[1]], feats[pair[0]], cfg) for pair in [("a", "b"), ("b", "c"), ("a", "c")]}
    assert sims[("a", "b")] >= 0.85 and sims[("b", "c")] >= 0.85 and sims[("a", "c")] < 0.85, sims
    out = find_duplicates(clips_table([("a", 6, 4.0, 1.0), ("b", 5, 4.0, 1.0), ("c", 4, 4.0, 1.0)]), feats, cfg)
    assert out.set_index("clip_id")["dup_of"].fillna("").to_dict() == {"a": "", "b": "a", "c": ""}


def test_copies_keep_their_aspect_ratio():
    source = _walk(4, 0)
    feats = {"wide": embed_clip(source), "square": embed_clip(source)}
    table = clips_table([("wide", 4, 4.0, 0.5625), ("square", 4, 4.0, 1.0)])
    assert find_duplicates(table, feats, CFG)["dup_of"].isna().all()
    assert find_duplicates(table, feats, DedupConfig(max_aspect_change=None))["dup_of"].notna().sum() == 1


def test_bad_features_are_named():
    table = clips_table([("a", 4, 4.0, 1.0), ("b", 4, 4.0, 1.0)])
    with pytest.raises(KeyError, match=r"no features for 1 clip\(s\), e.g. \['b'\]"):
        find_duplicates(table, {"a": embed_clip(_walk(4, 0))}, CFG)
    signature = ClipFeatures(np.zeros(1), signature=clip_signature(frame(0.3)[None], SIG))
    with pytest.raises(TypeError, match="features mix kinds"):
        find_duplicates(table, {"a": embed_clip(_walk(4, 0)), "b": signature}, CFG)


def test_background_buckets_keep_every_pair_that_can_reach_the_threshold():
    # 3 backgrounds x 2 colours x 2 places, one frame each; near-duplicates share a background
    combos = [(bg, colour, x) for bg in ("gray", "brown", "navy") for colour in ("orange", "cyan") for x in (0.3, 0.6)]
    feats = {f"c{i}": ClipFeatures(np.zeros(1), signature=clip_signature(frame(x, colour, bg)[None], SIG))
             for i, (bg, colour, x) in enumerate(combos)}
    feats["dup"] = ClipFeatures(np.zeros(1), signature=clip_signature(shift(frame(0.3), 0.06)[None], SIG))
    bucketed = candidate_pairs(feats, DedupConfig(exact_below=0))
    exact = {pair for pair in combinations(sorted(feats), 2)
             if clip_similarity(feats[pair[0]], feats[pair[1]], CFG) >= CFG.signature_threshold}
    assert ("c0", "dup") in exact and exact <= bucketed
    assert len(bucketed) < len(list(combinations(feats, 2))) / 2  # other backgrounds never meet
