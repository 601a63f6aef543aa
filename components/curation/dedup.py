"""Near-duplicate clips (xGen: similarity >= threshold is a duplicate; drop the shorter clip).

A near-duplicate is typically a shorter, re-encoded, slightly cropped or shifted copy of a segment of another
clip. Each clip keeps features of `num_frames` frames sampled evenly over it, with their times. Two clips
compare by their best-matching frames, in order: for every time offset of the shorter clip (by duration)
inside the longer one, each of the shorter clip's frames takes its best match among the longer clip's frames
within one sampling step of its shifted time; the clip similarity is the best offset's mean, in [0, 1].
Keeping the frames in order is what stops two different clips that show similar frames at different moments
(a shape crossing the frame both ways) from passing as copies. Copies keep their aspect ratio, so pairs whose
aspect ratios differ by more than max_aspect_change are never duplicates.

Features: offline signatures (components/curation/dedup_signature.py; threshold `signature_threshold`) or
CLIP image embeddings when the weights are in the store (cosine; RECIPE and xGen: >= 0.9).

Scaling: below `exact_below` clips every pair is compared. Above it, clips are first bucketed by a coarse
key and only clips sharing a bucket are compared: for signatures the key is each frame's background (median)
colour quantised into cells of bg_tolerance * (1 - threshold), probing neighbouring cells, which never misses a
pair that can reach the threshold (a duplicate needs at least one frame pair with a background gap under that
size); for embeddings it is LSH banding of a random-hyperplane SimHash of each frame (probabilistic).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations, product
from typing import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.curation.dedup_signature import SignatureConfig, clip_signature, signature_similarity
from components.curation.frames import read_frames, sample_indices

DUP_COLUMNS = {"clip_id": "string", "dup_of": "string", "similarity": "float64"}


class DedupConfig(BaseModel):
    """Sampling, thresholds and candidate search of curate.dedup."""

    model_config = ConfigDict(extra="forbid")
    num_frames: int = Field(12, ge=1)  # per clip, evenly spaced: dense enough to meet a copy's frames in time
    short_side: int = Field(64, ge=16)  # decode size; the signature is a 12x12 thumbnail anyway
    signature: SignatureConfig = SignatureConfig()
    signature_threshold: float = Field(0.9, gt=0, le=1)  # offline signatures (measured: see the tests)
    embed_threshold: float = Field(0.9, gt=-1, le=1)  # CLIP cosine (RECIPE, xGen)
    time_slack: float = Field(0.1, ge=0)  # seconds a copy may start before / end after its source's range
    # copies keep their aspect ratio (a crop of every side, a shift); None compares across aspect ratios too
    max_aspect_change: float | None = Field(0.1, ge=0)  # |aspect_a / aspect_b - 1| allowed for a pair
    exact_below: int = Field(1000, ge=0)  # compare every pair below this many clips
    lsh_bands: int = Field(8, ge=1, le=64)  # embeddings: bands of the 64-bit SimHash
    seed: int = 0  # SimHash hyperplanes


@dataclass
class ClipFeatures:
    """Per-frame features of one clip: `times` (T,) seconds from the clip start, and either a signature or
    L2-normalised embeddings (T, D)."""

    times: np.ndarray
    signature: tuple[np.ndarray, np.ndarray] | None = None
    embedding: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return "embedding" if self.embedding is not None else "signature"


def _sample(row, cfg: DedupConfig) -> tuple[list[int], np.ndarray]:
    idx = sample_indices(int(row.start_frame), int(row.end_frame), cfg.num_frames)
    return idx, (np.asarray(idx, np.float64) - int(row.start_frame)) / float(row.fps)


def signature_features(clips: pd.DataFrame, cfg: DedupConfig) -> dict[str, ClipFeatures]:
    """clip_id -> offline signature features of each clip (rows with CLIP_COLUMNS: path, frames, fps)."""
    out = {}
    for row in clips.itertuples(index=False):
        idx, times = _sample(row, cfg)
        frames = read_frames(row.path, indices=idx, short_side=cfg.short_side)
        out[row.clip_id] = ClipFeatures(times, signature=clip_signature(frames, cfg.signature))
    return out


def embedding_features(clips: pd.DataFrame, cfg: DedupConfig, embed: Callable[[np.ndarray], np.ndarray],
                       short_side: int = 224) -> dict[str, ClipFeatures]:
    """clip_id -> CLIP features; `embed` maps T uint8 RGB frames to (T, D) L2-normalised embeddings
    (e.g. components.curation.scorers.temporal.ClipEmbedder(folder).embed)."""
    out = {}
    for row in clips.itertuples(index=False):
        idx, times = _sample(row, cfg)
        frames = read_frames(row.path, indices=idx, short_side=short_side)
        out[row.clip_id] = ClipFeatures(times, embedding=np.asarray(embed(list(frames)), np.float32))
    return out


def frame_similarity(a: ClipFeatures, b: ClipFeatures, cfg: DedupConfig) -> np.ndarray:
    """(Ta, Tb) frame-to-frame similarities."""
    if a.kind != b.kind:
        raise TypeError(f"cannot compare {a.kind} features with {b.kind} features; extract one kind for all clips")
    if a.kind == "embedding":
        return a.embedding @ b.embedding.T
    return signature_similarity(a.signature, b.signature, cfg.signature)


def aligned_similarity(sims: np.ndarray, short_times: np.ndarray, long_times: np.ndarray, slack: float) -> float:
    """Best mean similarity over time offsets of the short clip inside the long one.

    At each offset a short-clip frame takes its best match among the long clip's frames within one sampling
    step of its shifted time: the two clips' samples rarely land on the same instants.
    """
    offsets = np.unique(long_times[None, :] - short_times[:, None])
    span = long_times[-1] - short_times[-1]
    offsets = offsets[(offsets >= -slack) & (offsets <= span + slack)]
    if len(offsets) == 0:  # the "short" clip spans longer than the long one's samples: only offset 0
        offsets = np.zeros(1)
    step = float(np.diff(long_times).max()) if len(long_times) > 1 else 0.0
    best = -1.0
    for offset in offsets:
        near = np.abs(long_times[None, :] - (short_times[:, None] + offset)) <= step + 1e-9  # (Ts, Tl)
        best = max(best, float(np.where(near, sims, -1.0).max(axis=1).mean()))
    return best


def clip_similarity(short: ClipFeatures, long: ClipFeatures, cfg: DedupConfig) -> float:
    """Similarity of the shorter clip to the longer one, in [0, 1] for signatures, [-1, 1] for embeddings."""
    return aligned_similarity(frame_similarity(short, long, cfg), short.times, long.times, cfg.time_slack)


def _background_buckets(features: dict[str, ClipFeatures], cell: float) -> set[tuple[str, str]]:
    """Pairs with some frames whose median colours fall in the same or neighbouring cells of size `cell`."""
    buckets: dict[tuple[int, ...], set[str]] = defaultdict(set)
    for cid, feat in features.items():
        medians = feat.signature[1].reshape(-1, 3)
        for key in {tuple(k) for k in np.floor(medians / cell).astype(int).tolist()}:
            buckets[key].add(cid)
    pairs = set()
    for key, members in buckets.items():
        for step in product((-1, 0, 1), repeat=3):
            other = buckets.get(tuple(k + s for k, s in zip(key, step)), set())
            pairs.update((a, b) for a in members for b in other if a < b)
    return pairs


def simhash(embeddings: np.ndarray, seed: int) -> np.ndarray:
    """64-bit random-hyperplane codes of (T, D) embeddings -> (T,) uint64: close angles share most bits."""
    planes = np.random.default_rng(seed).standard_normal((embeddings.shape[1], 64))
    bits = (embeddings @ planes) > 0  # (T, 64)
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def _lsh_bands(features: dict[str, ClipFeatures], bands: int, seed: int) -> set[tuple[str, str]]:
    """Pairs sharing a band value of some frame's SimHash (LSH banding)."""
    width = 64 // bands
    mask = np.uint64((1 << width) - 1)
    buckets: dict[tuple[int, int], set[str]] = defaultdict(set)
    for cid, feat in features.items():
        codes = simhash(feat.embedding, seed)
        for band in range(bands):
            for value in set(((codes >> np.uint64(band * width)) & mask).tolist()):
                buckets[(band, value)].add(cid)
    pairs = set()
    for members in buckets.values():
        pairs.update(combinations(sorted(members), 2))
    return pairs


def _may_reach(a: ClipFeatures, b: ClipFeatures, cell: float) -> bool:
    """False when no frame pair's background gap is within `cell`: the pair cannot reach the threshold."""
    ma, mb = a.signature[1].reshape(-1, 3), b.signature[1].reshape(-1, 3)
    return bool((np.abs(ma[:, None] - mb[None]).max(axis=-1) <= cell).any())


def candidate_pairs(features: dict[str, ClipFeatures], cfg: DedupConfig) -> set[tuple[str, str]]:
    """Clip pairs worth an exact comparison: all of them for small corpora, else bucketed (module docstring).

    Signature pairs are also dropped when their backgrounds rule the threshold out (an exact bound, not a
    guess), which is most pairs of a varied corpus.
    """
    ids = sorted(features)
    kinds = {f.kind for f in features.values()}
    if kinds == {"embedding"}:
        return set(combinations(ids, 2)) if len(ids) < cfg.exact_below else _lsh_bands(features, cfg.lsh_bands,
                                                                                         cfg.seed)
    cell = cfg.signature.bg_tolerance * (1 - cfg.signature_threshold)
    pairs = set(combinations(ids, 2)) if len(ids) < cfg.exact_below else _background_buckets(features, cell)
    return {(a, b) for a, b in pairs if _may_reach(features[a], features[b], cell)}


def _durations(clips: pd.DataFrame) -> dict[str, float]:
    return dict(zip(clips["clip_id"], clips["num_frames"].astype(float) / clips["fps"].astype(float)))


def _same_aspect(clips: pd.DataFrame, tolerance: float | None) -> Callable[[str, str], bool]:
    if tolerance is None:
        return lambda a, b: True
    aspect = dict(zip(clips["clip_id"], clips["aspect_ratio"].astype(float)))
    return lambda a, b: abs(aspect[a] / aspect[b] - 1.0) <= tolerance


def find_duplicates(clips: pd.DataFrame, features: dict[str, ClipFeatures],
                    cfg: DedupConfig | None = None) -> pd.DataFrame:
    """One row per clip: dup_of = the kept clip it duplicates (<NA> when kept), similarity = its best match.

    Clips are visited longest first (equal durations: earlier clip_id first); a clip whose similarity to an
    already kept clip reaches the threshold is dropped as that clip's duplicate. A chain A~B~C therefore never
    drops C for A's sake unless C itself matches a kept clip.
    """
    cfg = cfg or DedupConfig()
    ids = list(clips["clip_id"])
    missing = [c for c in ids if c not in features]
    if missing:
        raise KeyError(f"find_duplicates: no features for {len(missing)} clip(s), e.g. {missing[:3]}")
    feats = {c: features[c] for c in ids}
    kinds = {f.kind for f in feats.values()}
    if len(kinds) > 1:
        raise TypeError(f"find_duplicates: features mix kinds {sorted(kinds)}; extract one kind for all clips")
    threshold = cfg.embed_threshold if kinds == {"embedding"} else cfg.signature_threshold
    duration, same_aspect = _durations(clips), _same_aspect(clips, cfg.max_aspect_change)
    order_key = {c: (-duration[c], c) for c in ids}  # keep priority: longer first, then earlier clip_id
    sims: dict[str, dict[str, float]] = defaultdict(dict)
    for a, b in candidate_pairs(feats, cfg):
        if not same_aspect(a, b):
            continue
        long, short = sorted((a, b), key=order_key.get)
        sims[a][b] = sims[b][a] = clip_similarity(feats[short], feats[long], cfg)
    kept: set[str] = set()
    rows = {}
    for cid in sorted(ids, key=order_key.get):
        matches = {other: s for other, s in sims[cid].items() if other in kept and s >= threshold}
        if matches:
            dup_of = max(matches, key=lambda o: (matches[o], o))
            rows[cid] = (cid, dup_of, matches[dup_of])
        else:
            kept.add(cid)
            rows[cid] = (cid, None, max(sims[cid].values(), default=float("nan")))
    return pd.DataFrame([rows[c] for c in ids], columns=list(DUP_COLUMNS)).astype(DUP_COLUMNS)
