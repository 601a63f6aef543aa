"""cache.latents: the same latents as on-the-fly encoding, a full hit on the second run, misses for a new VAE,
rank-split encoding, candidate buckets covering every epoch's assignment, and readable errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components.curation.clips import clip_id
from components.data.buckets import BucketConfig, Clips, assign_buckets
from components.dit.config import DiTDataConfig
from components.dit.data import build_data, load_caption_table
from components.dit.latent_cache import INDEX, META, LatentCache, LatentCacheError, vae_version
from components.dit.latent_plan import caption_variants, candidate_buckets
from components.dit.latent_stage import OUTPUT, LatentCacheConfig, TierSource, cache_latents, vae_identity
from components.dit.latents import LatentRequest, OnTheFlyLatents, load_video_codec
from components.dit.text_encoders import load_minilm
from components.runner import replace_dir
from components.stage import StageContext
from components.tracking import NoopTracker
from components.training.vae_model import export_vae
from models.vae import VAE_models
from tests.unit.dit_testing import write_corpus
from tests.unit.sampling_testing import write_video_vae

BUCKETS = {"32px": {1: [1.0, 2], 9: [1.0, 2]}}


def config(**overrides) -> LatentCacheConfig:
    tier = TierSource(table="data/ingest/metadata.parquet", buckets=BucketConfig.model_validate(BUCKETS))
    return LatentCacheConfig(**{"tiers": {"tier1": tier}, "score_text": False, "batch_size": 1, "shard_size": 2,
                                "text": {"kind": "minilm", "max_length": 8}} | overrides)


def run(ws: Path, cfg: LatentCacheConfig, name: str = "run", rank: int = 0, world: int = 1) -> tuple[Path, dict]:
    """One cache.latents run into a temp folder (the runner's role), then swapped into place."""
    out = ws / f".{name}"
    out.mkdir(exist_ok=True)
    ctx = StageContext(name="cache.latents", profile="tiny", cfg=cfg, workspace=ws, out=out, inputs={},
                       checkpoint_dir=ws / "ckpt", rank=rank, world_size=world, tracker=NoopTracker())
    metrics = cache_latents(ctx)
    return out, metrics


@pytest.fixture
def ws(tmp_path) -> Path:
    write_corpus(tmp_path, videos=2, frames=12)
    write_video_vae(tmp_path)
    return tmp_path


def test_cached_latents_equal_on_the_fly_encoding_and_second_run_is_a_full_hit(ws):
    out, first = run(ws, config())
    replace_dir(out, ws / OUTPUT)
    # 2 videos -> 9-frame bucket, 1 image -> 1-frame bucket
    assert (first["samples"], first["misses"], first["hits"]) == (3.0, 3.0, 0.0)
    cache = LatentCache(ws / OUTPUT)
    index = pd.read_parquet(ws / OUTPUT / INDEX)
    # 40x48 videos (h/w 0.83) take the 0.75 ratio, the 40x40 image 1.00
    assert sorted(index["bucket"]) == ["32px/1f/1.00", "32px/9f/0.75", "32px/9f/0.75"]
    live = OnTheFlyLatents(load_video_codec(ws / "vae/stage3", "cpu"), memo=False)
    meta = pd.read_parquet(ws / "data/ingest/metadata.parquet")
    paths = {clip_id(i, 0, int(n)): p for i, n, p in zip(meta["id"], meta["num_frames"], meta["path"])}
    for row in index.itertuples():
        request = LatentRequest(row.clip_id, paths[row.clip_id], tuple(int(f) for f in row.frames.split(",")),
                                row.height, row.width)
        cached, fresh = cache.get(request), live.get(request)
        latent_frames = 3 if row.num_frames == 9 else 1  # 9 frames: 1 + 4 + 4
        assert cached.shape == fresh.shape == (4, latent_frames, row.height // 8, row.width // 8)
        assert torch.equal(cached, fresh)  # bitwise: one request per VAE call, as on the fly
    captions = cache.captions()
    emb, mask = captions.get(["a red square moving right"])
    assert emb.shape == (1, 8, 384) and mask[0].sum() > 0
    # a randomly initialised model trained from the cache starts with the encoder's own null caption
    assert torch.equal(captions.encoder.null_embedding(), load_minilm(max_length=8).null_embedding())

    out, second = run(ws, config(), "again")
    assert (second["hits"], second["misses"], second["text_encoded"]) == (3.0, 0.0, 0.0)
    assert second["text_carried"] == first["captions"]
    before = {p.relative_to(ws / OUTPUT): p.read_bytes() for p in (ws / OUTPUT).rglob("*.safetensors")}
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.safetensors")}
    assert before == after  # same shards, same bytes
    assert pd.read_parquet(out / INDEX).equals(index)


def test_a_new_vae_misses_everything_and_reports_the_old_entries_stale(ws):
    out, _ = run(ws, config())
    replace_dir(out, ws / OUTPUT)
    old_version = json.loads((ws / OUTPUT / META).read_text())["vae"]["version"]
    torch.manual_seed(1)
    vae = VAE_models["tiny"]()
    export_vae(vae, ws / "vae" / "stage3", {"model": "tiny", "stage": 3})
    out, metrics = run(ws, config(), "new_vae")
    assert (metrics["hits"], metrics["misses"]) == (0.0, 3.0)
    assert (metrics["stale"], metrics["stale_other_vae"]) == (3.0, 3.0)
    meta = json.loads((out / META).read_text())
    assert meta["stale"]["vae_versions"] == [old_version] and meta["vae"]["version"] != old_version
    assert set(pd.read_parquet(out / INDEX)["vae_version"]) == {meta["vae"]["version"]}
    with pytest.raises(LatentCacheError, match=f"holds latents of VAE {meta['vae']['version']}"):
        LatentCache(out, expect_vae=old_version)


def test_new_latent_statistics_alone_make_a_new_vae_version(ws):
    codec = load_video_codec(ws / "vae/stage3", "cpu")
    before = vae_identity(ws / "vae/stage3", codec)
    assert before["version"] == vae_version(before["sha256"], before["shift"], before["scale"])
    assert vae_version(before["sha256"], before["shift"], [1.0, 1.0, 1.0, 1.0]) != before["version"]
    codec.vae.set_latent_stats((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0))
    export_vae(codec.vae, ws / "vae" / "stage3", {"model": "tiny", "stage": 3})
    after = vae_identity(ws / "vae/stage3", load_video_codec(ws / "vae/stage3", "cpu"))
    assert after["scale"] == [1.0, 1.0, 1.0, 1.0] and after["version"] != before["version"]


@pytest.mark.slow
def test_two_ranks_encode_halves_that_merge_into_the_single_rank_cache(ws):
    single, _ = run(ws, config(), "single")
    # rank 1 first: rank 0 merges the parts the others left (the barrier's order under torchrun)
    out = ws / ".split"
    out.mkdir()
    for rank in (1, 0):
        ctx = StageContext(name="cache.latents", profile="tiny", cfg=config(), workspace=ws, out=out, inputs={},
                           checkpoint_dir=ws / "ckpt", rank=rank, world_size=2, tracker=NoopTracker())
        metrics = cache_latents(ctx)
    assert metrics["misses"] == 3.0
    assert pd.read_parquet(out / INDEX).drop(columns="shard").equals(
        pd.read_parquet(single / INDEX).drop(columns="shard"))
    a, b = LatentCache(single), LatentCache(out)
    for key in a.index:
        assert torch.equal(a._shard(a.index[key]).get_tensor(key), b._shard(b.index[key]).get_tensor(key))


def test_a_request_outside_the_cache_names_clip_frames_and_size(ws):
    out, _ = run(ws, config())
    request = LatentRequest("nope-000000-000009", "x.mp4", (0, 1), 32, 32)
    with pytest.raises(LatentCacheError, match=r"no latents for clip nope-000000-000009 frames 0,1 at 32x32"):
        LatentCache(out).get(request)
    with pytest.raises(LatentCacheError, match="not cached .*with score_text: true"):
        LatentCache(out).captions().get(["a caption nobody cached"])


def test_candidate_buckets_cover_every_epoch_assignment():
    cfg = BucketConfig.model_validate({"96px": {1: [0.5, 4], 17: [0.5, 2], 33: [[0.5, 0.5], 2]},
                                       "64px": {1: [1.0, 4], 9: [1.0, 4], 17: [0.3, 4]}, "32px": {9: [1.0, 2]}})
    rng = np.random.default_rng(0)
    n = 40
    clips = Clips.from_records([{"height": int(h), "width": int(w), "num_frames": int(f), "media": m}
                                for h, w, f, m in zip(rng.integers(40, 130, n), rng.integers(40, 130, n),
                                                      rng.integers(5, 60, n), rng.choice(["video", "image"], n))])
    candidates = candidate_buckets(clips, cfg)
    seen = [set() for _ in range(n)]
    for epoch in range(60):
        assignment = assign_buckets(clips, cfg, seed=3, epoch=epoch)
        for i in range(n):
            key = assignment.key(i)
            if key is not None:
                assert key in candidates[i], (i, key, candidates[i])
                seen[i].add(key)
    # 60 epochs at probabilities >= 0.3 reach every candidate (chance of missing one < 1e-9 per clip)
    assert [set(c) for c in candidates] == seen


def test_caption_variants_are_every_subset_of_the_score_parts():
    row = {"aes": 5.46, "flow": 10.0, "cmotion": "pan_left"}
    variants = caption_variants("a red circle moving left.", row, score_text=True)
    assert len(variants) == 8
    assert "a red circle moving left. aesthetic score: 5.5, motion score: 10, camera motion: pan left." in variants
    assert "a red circle moving left. camera motion: pan left." in variants
    assert caption_variants("a cat", {"aes": None}, score_text=True) == ["a cat"]
    assert caption_variants("a cat", row, score_text=False) == ["a cat"]


def test_dit_data_reads_every_epoch_on_any_world_size_from_the_cache_alone(ws):
    out, _ = run(ws, config())
    cache = LatentCache(out)
    captions = cache.captions()  # no text encoder behind it: a miss would raise
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    data_cfg = DiTDataConfig(buckets=BucketConfig.model_validate(BUCKETS), images_from_videos=False)
    for world in (1, 2):
        for rank in range(world):
            data = build_data(table, data_cfg, cache, captions, seed=0, rank=rank, world_size=world, eval_samples=2)
            for _ in range(6):  # several epochs of 2 micro-batches
                batch = next(data.batches)
                assert batch["x0"].shape[1] == 4 and batch["y"].shape[1:] == (8, 384)
    assert cache.hits > 0


def test_video_frames_as_images_are_cached_and_read_back_beside_the_videos(ws):
    tier = TierSource(table="data/ingest/metadata.parquet", buckets=BucketConfig.model_validate(BUCKETS),
                      video_frames_as_images=True)
    out, metrics = run(ws, config(tiers={"tier1": tier}))
    # 2 videos in the 9-frame bucket, plus one frame of each and the image in the 1-frame bucket
    assert metrics["samples"] == 5.0
    index = pd.read_parquet(out / INDEX)
    assert sorted(index["bucket"]) == ["32px/1f/0.75", "32px/1f/0.75", "32px/1f/1.00", "32px/9f/0.75", "32px/9f/0.75"]
    cache = LatentCache(out)
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    data_cfg = DiTDataConfig(buckets=BucketConfig.model_validate(BUCKETS), images_from_videos=False,
                             video_frames_as_images=True)
    data = build_data(table, data_cfg, cache, cache.captions(), seed=0, rank=0, world_size=1, eval_samples=2)
    frames = sorted(next(data.batches)["x0"].shape[2] for _ in range(9))  # three epochs of 3 micro-batches
    assert frames.count(1) == 6 and frames.count(3) == 3  # image batches (1 latent frame) and the 9-frame videos
    assert cache.hits >= 9  # every sample from the cache: a request outside it raises
