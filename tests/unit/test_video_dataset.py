"""The training video dataset: shapes, zero padding, frame choice, image mixing, determinism, resume, corrupt clips."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from components.data.clip_cache import ClipCache
from components.data.video_config import VideoDataConfig
from components.data.video_dataset import VideoBatches, VideoClipDataset, build_loader, frame_indices, random_window
from components.data.video_decode import fit_frame, to_tensor, to_uint8
from components.data.video_sampler import EpochPlan, SampleKey
from components.data.video_table import TABLE_COLUMNS, load_clip_table, normalise
from components.media import write_mp4

H, W = 24, 32  # source frames; training size is 16x16


def frame_colour(video: int, frame: int) -> tuple[int, int, int]:
    """A flat colour that names (video, frame), far enough apart to survive H.264."""
    return (40 + 60 * video, 8 * frame, 200)


def _video(path: Path, video: int, frames: int) -> str:
    pixels = np.stack([np.full((H, W, 3), frame_colour(video, i), np.uint8) for i in range(frames)])
    write_mp4(pixels, path, fps=8, crf=0)
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pd.DataFrame:
    """3 videos (24, 20, 10 frames), 2 images and a corrupt 'video', as a normalised clip table."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for v, n in enumerate((24, 20, 10)):
        rows.append(dict(clip_id=f"v{v}-000000-{n:06d}", video_id=f"v{v}", path=_video(root / f"v{v}.mp4", v, n),
                         media="video", start_frame=0, end_frame=n, num_frames=n, fps=8.0))
    for i in range(2):
        Image.fromarray(np.full((H, W, 3), (250, 250 - 100 * i, 10), np.uint8)).save(root / f"i{i}.png")
        rows.append(dict(clip_id=f"i{i}-000000-000001", video_id=f"i{i}", path=str(root / f"i{i}.png"),
                         media="image", start_frame=0, end_frame=1, num_frames=1, fps=120.0))
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    rows.append(dict(clip_id="bad-000000-000030", video_id="bad", path=str(root / "bad.mp4"), media="video",
                     start_frame=0, end_frame=30, num_frames=30, fps=8.0))
    return pd.DataFrame(rows)[TABLE_COLUMNS]


def cfg(**kw) -> VideoDataConfig:
    return VideoDataConfig(**{"size": (16, 16), "num_frames": 8, "num_workers": 0, "heldout_fraction": 0.0, **kw})


def test_fit_frame_covers_then_crops_the_centre():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, :40] = (255, 0, 0)  # left half red, right half blue
    frame[:, 40:] = (0, 0, 255)
    out = fit_frame(frame, (20, 20))  # scale 0.5 -> 20x40, centre crop keeps columns 10..30
    assert out.shape == (20, 20, 3)
    assert (out[:, :10] == (255, 0, 0)).all() and (out[:, 10:] == (0, 0, 255)).all()
    assert fit_frame(np.zeros((8, 6, 3), np.uint8), (16, 16)).shape == (16, 16, 3)  # small frames grow


def test_to_tensor_range_padding_and_inverse():
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 255, 51)])
    x = to_tensor(frames, 5)
    assert x.shape == (3, 5, 4, 4)
    assert x[:, 0].eq(-1).all() and x[:, 1].eq(1).all() and torch.allclose(x[:, 2], torch.tensor(-0.6))
    assert x[:, 3:].eq(0).all()  # zero padding after the real frames
    assert (to_uint8(x[:, :3]) == frames).all()


def test_frame_indices_stride_offset_and_short_clips():
    rng = np.random.default_rng(0)
    picks = [frame_indices(10, 30, 4, 3, rng) for _ in range(200)]
    assert all(np.diff(p).tolist() == [3, 3, 3] and 10 <= p[0] and p[-1] < 30 for p in picks)
    assert {p[0] for p in picks} == set(range(10, 21))  # every valid offset occurs
    assert frame_indices(0, 5, 8, 2, rng) == [0, 2, 4]  # a short clip gives what it has


def test_video_sample_shape_frames_and_zero_padding(corpus):
    ds = VideoClipDataset(corpus, cfg(num_frames=16))
    sample = ds[SampleKey(row=2, image=False, length=16, seed=3)]  # v2 has only 10 frames
    x = sample["video"]
    assert x.shape == (3, 16, 16, 16) and sample["num_frames"] == 10 and not sample["is_image"]
    assert x[:, 10:].eq(0).all() and x.abs().max() <= 1
    green = ((x[1, :10, 8, 8] + 1) * 127.5).round()  # the green channel counts frames: 8 * frame index
    assert torch.allclose(green, torch.arange(10) * 8.0, atol=3)


def test_crop_takes_one_window_of_the_whole_frames(corpus):
    key = SampleKey(row=0, image=False, length=8, seed=21)
    whole = VideoClipDataset(corpus, cfg())[key]["video"]
    frame = np.zeros((8, 16, 16, 3), np.uint8)
    frame[:, :, :, 0] = np.arange(16)[None, :, None] * 16 + np.arange(16)[None, None, :]  # unique per pixel
    window = random_window(frame, (8, 8), np.random.default_rng(0))
    assert window.shape == (8, 8, 8, 3) and (window == window[:1]).all()  # one window for all frames
    top, left = divmod(int(window[0, 0, 0, 0]), 16)
    assert (window[0, :, :, 0] == frame[0, top:top + 8, left:left + 8, 0]).all()
    cropped = VideoClipDataset(corpus, cfg(crop=(8, 8)))[key]["video"]
    assert cropped.shape == (3, 8, 8, 8)
    found = [(t, l) for t in range(9) for l in range(9) if torch.equal(whole[:, :, t:t + 8, l:l + 8], cropped)]
    assert len(found) >= 1  # a window of the very frames the uncropped sample holds
    with pytest.raises(ValueError, match="crop \\(20, 8\\) must fit inside size \\(16, 16\\)"):
        cfg(crop=(20, 8))


def test_image_samples_are_one_frame_zero_padded(corpus):
    ds = VideoClipDataset(corpus, cfg())
    real = ds[SampleKey(row=3, image=True, length=1, seed=0)]  # an image row
    stand_in = ds[SampleKey(row=0, image=True, length=1, seed=5)]  # one frame of a video
    for s in (real, stand_in):
        assert s["is_image"] and s["num_frames"] == 1 and s["video"][:, 1:].eq(0).all()
    assert to_uint8(real["video"][:, :1])[0, 8, 8].tolist() == [250, 250, 10]


def test_epoch_plan_mixes_images_at_the_configured_ratio():
    table = pd.DataFrame({"media": ["video"] * 40 + ["image"] * 5})
    plan = EpochPlan(table, cfg(image_ratio=0.2), seed=1, global_batch=4)
    keys = [k for epoch in range(10) for k in plan.keys(epoch)]
    share = np.mean([k.image for k in keys])
    assert share == pytest.approx(0.2, abs=0.01)
    assert {k.row for k in keys if k.image} == set(range(40, 45))  # images come from the image rows
    assert all(k.length == 8 for k in keys if not k.image) and all(k.length == 1 for k in keys if k.image)
    videos_only = EpochPlan(pd.DataFrame({"media": ["video"] * 8}), cfg(image_ratio=0.2), 1, 4)
    stand_ins = [k for k in videos_only.keys(0) if k.image]
    assert len(stand_ins) == 2 and all(k.row < 8 for k in stand_ins)  # single frames of videos


def test_random_lengths_cover_one_to_num_frames():
    plan = EpochPlan(pd.DataFrame({"media": ["video"] * 50}), cfg(random_length=True, image_ratio=0.0), 0, 2)
    lengths = [k.length for e in range(20) for k in plan.keys(e)]
    assert set(lengths) == set(range(1, 9))


def test_epoch_shorter_than_a_global_batch_repeats():
    plan = EpochPlan(pd.DataFrame({"media": ["video"] * 3}), cfg(image_ratio=0.0), 0, global_batch=8)
    assert plan.size == 9 and len(plan.keys(0)) == 9


def test_ranks_split_the_global_batch_and_epochs_reshuffle(corpus):
    table = corpus[corpus["clip_id"] != "bad-000000-000030"]
    one = build_loader(table, cfg(), seed=4, batch_size=2, rank=0, world_size=1, workspace=Path("."))
    r0 = build_loader(table, cfg(), seed=4, batch_size=1, rank=0, world_size=2, workspace=Path("."))
    r1 = build_loader(table, cfg(), seed=4, batch_size=1, rank=1, world_size=2, workspace=Path("."))
    for _ in range(6):
        both = next(one)
        a, b = next(r0), next(r1)
        assert both["clip_id"] == a["clip_id"] + b["clip_id"]
        assert torch.equal(both["video"], torch.cat([a["video"], b["video"]]))
    plan = one.plan
    assert [k.row for k in plan.keys(0)] != [k.row for k in plan.keys(1)]
    again = EpochPlan(table.reset_index(drop=True), cfg(), 4, 2)
    assert again.keys(1) == plan.keys(1)  # a function of (seed, epoch) only


def test_state_dict_resumes_with_the_next_unseen_batch(corpus):
    table = corpus[corpus["clip_id"] != "bad-000000-000030"]
    first = build_loader(table, cfg(), seed=2, batch_size=2, rank=0, world_size=1, workspace=Path("."))
    # an epoch: 3 videos + round(3 * 0.2 / 0.8) = 1 image = 4 samples, 2 batches of 2
    seen = [next(first) for _ in range(5)]
    state = first.state_dict()
    assert (state["epoch"], state["cursor"]) == (2, 2)
    following = next(first)
    resumed = build_loader(table, cfg(), seed=2, batch_size=2, rank=0, world_size=1, workspace=Path("."))
    resumed.load_state_dict(state)
    again = next(resumed)
    assert again["clip_id"] == following["clip_id"] and torch.equal(again["video"], following["video"])
    assert seen[0]["clip_id"] != following["clip_id"] or seen[1]["clip_id"] != following["clip_id"]
    with pytest.raises(ValueError, match="seed 2, this run uses seed 9"):
        build_loader(table, cfg(), seed=9, batch_size=2, rank=0, world_size=1, workspace=Path(".")).load_state_dict(state)


def test_corrupt_clip_is_logged_replaced_and_counted(corpus, caplog):
    ds = VideoClipDataset(corpus, cfg())
    with caplog.at_level(logging.WARNING, logger="components.data.video_dataset"):
        sample = ds[SampleKey(row=5, image=False, length=8, seed=11)]
    assert sample["failed"] == ["bad-000000-000030"]
    assert sample["clip_id"] != "bad-000000-000030" and sample["video"].shape == (3, 8, 16, 16)
    assert "corrupt clip bad-000000-000030" in caplog.text and "bad.mp4" in caplog.text
    loader = VideoBatches(ds, EpochPlan(ds.table, cfg(image_ratio=0.0), 0, 4), batch_size=4)
    first = next(loader)
    assert first["video"].shape == (4, 3, 8, 16, 16)  # the batch stays full
    assert loader.take_corrupt() == first["failed"] and loader.take_corrupt() == []


def test_only_corrupt_clips_fail_loudly(corpus):
    bad_only = corpus[corpus["clip_id"] == "bad-000000-000030"]
    ds = VideoClipDataset(bad_only, cfg(max_retries=2))
    with pytest.raises(RuntimeError, match="3 clips in a row failed to decode"):
        ds[SampleKey(row=0, image=False, length=8, seed=0)]


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_cache_gives_the_decoded_frames(corpus, tmp_path, mode):
    key = SampleKey(row=0, image=False, length=8, seed=7)
    plain = VideoClipDataset(corpus, cfg(frame_stride=2))[key]
    cache = ClipCache(mode, tmp_path if mode == "disk" else None)
    cached = VideoClipDataset(corpus, cfg(frame_stride=2), cache)
    assert torch.equal(cached[key]["video"], plain["video"]) and torch.equal(cached[key]["video"], plain["video"])
    assert (cache.misses, cache.hits) == (1, 1)
    assert len(list(tmp_path.glob("*.npy"))) == (1 if mode == "disk" else 0)


def test_metadata_table_becomes_whole_clips_and_eval_heldout_clips_are_val(tmp_path):
    from components.evaluation.clips import is_heldout

    ids = [f"v{i}" for i in range(12)]
    meta = pd.DataFrame({"id": ids + ["short", "img"], "path": [f"{i}.mp4" for i in ids] + ["s.mp4", "i.png"],
                         "media": ["video"] * 13 + ["image"], "num_frames": [30] * 12 + [3, 1],
                         "fps": [24.0] * 13 + [120.0]})
    clips = normalise(meta, "meta.parquet")
    assert clips.loc[clips["video_id"] == "v0", ["start_frame", "end_frame", "clip_id"]].values.tolist() == \
        [[0, 30, "v0-000000-000030"]]
    meta.to_parquet(tmp_path / "meta.parquet")
    table = load_clip_table(str(tmp_path / "meta.parquet"), 0.3, "salt", min_frames=5)
    assert table.too_short == 1 and "short" not in set(table.train["video_id"]) | set(table.val["video_id"])
    expected = {c for c in clips["clip_id"] if is_heldout(c, 0.3, "salt") and not c.startswith("short")}
    assert set(table.val["clip_id"]) == expected and 0 < len(expected) < 12
    assert not set(table.train["clip_id"]) & expected and len(table.train) + len(table.val) == 13
    with pytest.raises(ValueError, match="meta.parquet: metadata table lacks column\\(s\\) \\['fps'\\]"):
        normalise(meta.drop(columns=["fps"]), "meta.parquet")
