"""DiT data: the captioned clip table, fixed frame choice, bucket sizes, memoised latents, codecs, lazy text encoder,
score-to-text captions."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from components.data.bucket_sampler import BucketItem, plan_epoch
from components.data.buckets import assign_buckets
from components.data.buckets import salt
from components.dit.captions import LazyEncoder
from components.dit.config import DiTDataConfig
from components.dit.data import (AS_IMAGE, SCORE_FIELDS, DiTDataset, add_frame_images, bucket_clips, build_data,
                                 collate, eval_batches, load_caption_table, score_fields, without_heldout)
from components.evaluation.clips import heldout_score
from components.dit.latent_plan import caption_variants
from components.dit.latents import OnTheFlyLatents, load_image_codec, load_video_codec
from components.dit.text_encoders import TextEncoderConfig
from tests.unit.dit_testing import CAPTIONS, write_corpus, write_vae_exports


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Two 12-frame videos and one image with captions, and random-init VAE exports."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dit_data")
    write_corpus(root, videos=2, frames=12)
    write_vae_exports(root)
    return root


def test_caption_table_from_ingest_metadata(ws, tmp_path):
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    assert list(table["media"]) == ["video", "video", "image"]
    assert list(table["text"]) == [CAPTIONS[0], CAPTIONS[1], CAPTIONS[2]]
    assert list(table["height"]) == [40, 40, 40] and list(table["width"]) == [48, 48, 40]
    assert list(table["end_frame"]) == [12, 12, 1] and table["clip_id"].iloc[0] == f"{0:016x}-000000-000012"
    bad = tmp_path / "no_height.parquet"
    pd.read_parquet(ws / "data/ingest/metadata.parquet").drop(columns=["height"]).to_parquet(bad)
    with pytest.raises(ValueError, match=r"no_height.parquet: lacks column\(s\) \['height'\]"):
        load_caption_table(str(bad))


def test_frames_are_fixed_per_seed_and_clip(ws):
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    cfg = DiTDataConfig(buckets={"resolutions": {"32px": {1: [1.0, 2], 4: [1.0, 2]}}, "frame_interval": 3})
    a = DiTDataset(table, cfg, None, seed=0)
    video, image = table.iloc[0], table.iloc[2]
    assert a.frames(image, 1) == (0,)
    # one frame of a video: a hash of (seed, clip), the same every epoch and on every rank
    assert a.frames(video, 1) == (salt(0, video["clip_id"]) % 12,)
    assert DiTDataset(table, cfg, None, seed=5).frames(video, 1) == (salt(5, video["clip_id"]) % 12,)
    # 4 frames 3 apart span 10 of the 12 frames: the offset is the hash modulo the 3 possible starts
    start = salt(0, video["clip_id"]) % 3
    assert a.frames(video, 4) == (start, start + 3, start + 6, start + 9)
    with pytest.raises(ValueError, match=f"clip {video['clip_id']}: 12 frames cannot give 5 frames 3 apart"):
        a.frames(video, 5)


def test_bucket_sizes_floor_to_the_vae_stride_and_latents_are_memoised(ws):
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    latents = OnTheFlyLatents(load_image_codec(ws / "vae/stage0", None, "cpu"))
    dataset = DiTDataset(table, DiTDataConfig(), latents, seed=0, stride=8)
    first = dataset[BucketItem(0, 1, 42, 35)]  # 42x35 → 40x32: 5x4 latents
    assert first["x0"].shape == (4, 1, 5, 4) and (first["height"], first["width"]) == (40, 32)
    assert first["fps"] == 120.0 and first["caption"] == CAPTIONS[0]
    again = dataset[BucketItem(0, 1, 42, 35)]
    assert again["x0"] is first["x0"] and (latents.hits, latents.misses) == (1, 1)
    batch = collate([first, dataset[BucketItem(1, 1, 42, 35)]])
    assert batch["x0"].shape == (2, 4, 1, 5, 4) and batch["caption"] == CAPTIONS[:2]


def test_score_text_appends_the_clip_scores_drawn_per_epoch(ws, tmp_path):
    raw = pd.read_parquet(ws / "data/ingest/metadata.parquet")
    raw["aes"], raw["flow"], raw["cmotion"] = [5.5, 4.04, 6.0], [10.0, 0.5, None], ["pan_left", "static", None]
    raw.to_parquet(tmp_path / "scored.parquet")
    table = load_caption_table(str(tmp_path / "scored.parquet"))
    row = table.iloc[0]
    assert score_fields(row) == {"aes": 5.5, "flow": 10.0, "cmotion": "pan_left"}
    assert load_caption_table(str(ws / "data/ingest/metadata.parquet"))[SCORE_FIELDS].isna().all().all()
    keep_all = DiTDataset(table, DiTDataConfig(score_text=True, score_text_drop=0.0), None, seed=0)
    full = f"{CAPTIONS[0]}. aesthetic score: 5.5, motion score: 10, camera motion: pan left."
    assert keep_all.caption(row, 0) == full
    assert keep_all.caption(table.iloc[2], 0) == f"{CAPTIONS[2]}. aesthetic score: 6."  # unscored parts are skipped
    assert DiTDataset(table, DiTDataConfig(), None, seed=0).caption(row, 0) == CAPTIONS[0]  # off by default
    # RECIPE's p = 0.2 per part, drawn per (seed, epoch, clip): an epoch always gives the same caption, and every
    # caption training can give is one the latent cache encodes
    dataset = DiTDataset(table, DiTDataConfig(score_text=True), None, seed=0)
    captions = [dataset.caption(row, epoch) for epoch in range(200)]
    assert captions == [dataset.caption(row, epoch) for epoch in range(200)]
    assert set(captions) <= set(caption_variants(CAPTIONS[0], score_fields(row), score_text=True))
    assert len(set(captions)) >= 4 and 0.7 < sum("aesthetic score: 5.5" in c for c in captions) / 200 < 0.9
    # a bucket item carries the epoch that drew it, and the dataset reads its caption for that epoch
    dataset.latents = OnTheFlyLatents(load_image_codec(ws / "vae/stage0", None, "cpu"))
    assert dataset[BucketItem(0, 1, 40, 40, epoch=7)]["caption"] == captions[7]
    plan = plan_epoch(bucket_clips(table, True), DiTDataConfig(buckets={"32px": {1: [1.0, 2]}}).buckets, 0, 3)
    assert {item.epoch for g in range(plan.num_batches) for item in plan.items(g)} == {3}


def test_video_codec_shapes_and_normalisation(ws):
    codec = load_video_codec(ws / "vae/stage3", "cpu")
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    cfg = DiTDataConfig(buckets={"32px": {9: [1.0, 2]}}, images_from_videos=False)
    dataset = DiTDataset(table, cfg, OnTheFlyLatents(codec), seed=0)
    sample = dataset[BucketItem(0, 9, 32, 32)]
    assert sample["x0"].shape == (4, 3, 4, 4)  # 9 frames → 1 + ceil(8 / 4) latent frames
    assert sample["fps"] == 8.0
    assert codec.decode(sample["x0"][None], 9).shape == (1, 3, 9, 32, 32)
    # the fixture set shift/scale from these very latents: about zero mean and unit scale per channel
    assert sample["x0"].mean().abs() < 1.0 and 0.3 < sample["x0"].std() < 3.0
    with pytest.raises(ValueError, match="a 2D-only export such as vae/stage0 cannot encode videos"):
        load_video_codec(ws / "vae/stage0", "cpu")


def test_eval_batches_take_the_first_clips_across_buckets(ws):
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    cfg = DiTDataConfig(buckets={"32px": {1: [1.0, 2]}})
    clips = bucket_clips(table, cfg.images_from_videos)
    plan = plan_epoch(clips, cfg.buckets, 0, 0)
    dataset = DiTDataset(table, cfg, OnTheFlyLatents(load_image_codec(ws / "vae/stage0", None, "cpu")), seed=0)

    class Captions:
        def get(self, captions):
            return torch.zeros(len(captions), 8, 16), torch.ones(len(captions), 8, dtype=torch.bool)

    batches = eval_batches(plan, dataset, Captions(), samples=3)
    # the image is 1:1 and the videos 0.83 → the 1.00 and 0.75 buckets: two micro-batches, three clips
    assert sorted(len(b["caption"]) for b in batches) == [1, 2]
    assert sorted(c for b in batches for c in b["caption"]) == sorted(CAPTIONS)
    assert len(eval_batches(plan, dataset, Captions(), samples=1)) == 1


def test_lazy_encoder_knows_its_identity_without_loading():
    encoder = LazyEncoder(TextEncoderConfig(kind="minilm", max_length=16), "tiny")
    assert (encoder.name, encoder.dim, encoder.max_length, len(encoder.version)) == ("minilm-l6", 384, 16, 64)
    assert encoder.loaded is False


def test_video_frames_as_images_add_one_frame_of_each_video_beside_its_video_sample(ws):
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    joint = add_frame_images(table)
    # the table, then a copy of each video row (not of the image), marked; the copies keep media "video"
    assert list(joint["clip_id"]) == list(table["clip_id"]) + list(table["clip_id"][:2])
    assert list(joint[AS_IMAGE]) == [False, False, False, True, True] and list(joint["media"][3:]) == ["video"] * 2
    clips = bucket_clips(joint, images_from_videos=False)
    assert list(clips.num_frames) == [12, 12, 1, 1, 1] and list(clips.is_image) == [False, False, True, True, True]
    buckets = DiTDataConfig(buckets={"32px": {1: [1.0, 4], 9: [1.0, 2]}}).buckets
    frames = [k.num_frames for k in map(assign_buckets(clips, buckets, 0, 0).key, range(5))]
    assert frames == [9, 9, 1, 1, 1]  # each video in the 9-frame bucket and, as its copy, in the 1-frame one
    # a copy asks for the video's one frame that DiTDataset.frames draws per (seed, clip), at the image fps
    cfg = DiTDataConfig(buckets=buckets, images_from_videos=False, video_frames_as_images=True)
    dataset = DiTDataset(joint, cfg, None, seed=0)
    assert dataset.request(BucketItem(3, 1, 32, 32)).frames == (salt(0, table["clip_id"].iloc[0]) % 12,)

    class Captions:
        def get(self, captions):
            return torch.zeros(len(captions), 8, 16), torch.ones(len(captions), 8, dtype=torch.bool)

    codec = load_video_codec(ws / "vae/stage3", "cpu")
    data = build_data(table, cfg, OnTheFlyLatents(codec), Captions(), seed=0, rank=0, world_size=1, eval_samples=5)
    assert data.summary["clips"] == 5 and data.summary["assigned"] == 5
    plain = build_data(table, cfg.model_copy(update={"video_frames_as_images": False}), OnTheFlyLatents(codec),
                       Captions(), seed=0, rank=0, world_size=1, eval_samples=5)
    assert plain.summary["clips"] == 3
    with pytest.raises(ValueError, match="video_frames_as_images adds one frame of each video"):
        DiTDataConfig(images_from_videos=True, video_frames_as_images=True)


def test_dit_stages_skip_the_clips_evaluation_holds_out(ws):
    table = load_caption_table(str(ws / "data/ingest/metadata.parquet"))
    scores = sorted(heldout_score(c, "s") for c in table["clip_id"])
    # a fraction between the lowest and the second-lowest score holds out exactly one clip
    kept, held = without_heldout(table, (scores[0] + scores[1]) / 2, "s", "t.parquet")
    assert held == 1 and len(kept) == 2
    assert min(heldout_score(c, "s") for c in kept["clip_id"]) == scores[1]
    assert without_heldout(table, 0.0, "s", "t.parquet")[1] == 0  # 0 trains on every clip
    with pytest.raises(ValueError, match=r"t.parquet: every one of its 3 clips is held out \(heldout_fraction=1.0\)"):
        without_heldout(table, 1.0, "s", "t.parquet")
