"""curate.caption: captions by shot order (offline stand-in), LLM mode with our own captioner, shards, weights."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.curation.caption import CaptionConfig, caption, source_captions
from components.curation.captioner import CaptionerConfig, VideoCaptioner
from components.data.synth import SynthConfig, synthesize
from curation_testing import MICRO, context, gt_clips, gt_metadata


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    gt = synthesize(root, SynthConfig(seed=1, n_videos=3, n_images=1, **MICRO))
    return root, gt, gt_clips(root, gt), gt_metadata(root, gt)


class FrameCountCaptioner:
    """Says how many frames it saw and how wide they were; counts its calls."""

    def __init__(self):
        self.calls = 0

    def caption(self, clips: list[np.ndarray]) -> list[str]:
        self.calls += 1
        return [f"A clip seen in {len(f)} frames of width {f.shape[2]}." for f in clips]


def _run(ws, clips, metadata, scored=None, out="out", model=None, **cfg):
    clips.to_parquet(ws / "clips.parquet", index=False)
    metadata.to_parquet(ws / "metadata.parquet", index=False)
    pd.DataFrame({"clip_id": clips["clip_id"] if scored is None else scored}).to_parquet(ws / "scores.parquet")
    inputs = {name: str(ws / f"{name}.parquet") for name in ("metadata", "clips", "scores")}
    ctx = context("curate.caption", CaptionConfig(**cfg), ws, out, inputs)
    metrics = caption(ctx, captioner=model)
    return metrics, pd.read_parquet(ctx.out / "captions.parquet"), pd.read_parquet(ctx.out / "quarantine.parquet")


def test_source_captions_split_by_shot_order_only_when_counts_match():
    video = "a cat Then a dog Then a bird"
    clips = pd.DataFrame({"text": [""] * 3})  # curate.split leaves a part of a video uncaptioned
    assert source_captions(clips, video, " Then ") == [("a cat", "source_shot_split"), ("a dog", "source_shot_split"),
                                                       ("a bird", "source_shot_split")]
    two = clips.iloc[:2]  # the split found two clips for three shots: which segment is which is unknown
    assert source_captions(two, video, " Then ") == [(video, "source_video")] * 2
    assert source_captions(clips, video, None) == [(video, "source_video")] * 3
    assert source_captions(pd.DataFrame({"text": ["", None]}), "", " Then ") == [("", "none")] * 2
    assert source_captions(pd.DataFrame({"text": ["a star"]}), "a star", " Then ") == [("a star", "source")]


def test_stage_gives_each_shot_its_caption(corpus, tmp_path):
    root, gt, clips, meta = corpus
    metrics, table, quarantine = _run(tmp_path, clips, meta)
    want = [s["caption"] for v in gt["videos"] for s in v["shots"]] + [i["caption"] for i in gt["images"]]
    assert table["text"].tolist() == want and quarantine.empty
    n_image = len(gt["images"])
    assert table["caption_source"].tolist() == ["source_shot_split"] * (len(want) - n_image) + ["source"] * n_image
    assert not table["caption_transition"].any() and not table["caption_empty"].any()
    assert metrics["caption/clips"] == len(want)


def test_unscored_clips_are_not_captioned_and_a_lost_shot_keeps_the_whole_caption(corpus, tmp_path):
    root, gt, clips, meta = corpus
    first = clips["video_id"].iloc[0]
    lost = clips[clips["video_id"] == first]["clip_id"].iloc[0]
    split = clips[clips["clip_id"] != lost]  # the split dropped a shot: fewer clips than caption segments
    _, table, _ = _run(tmp_path, split, meta, scored=split["clip_id"].iloc[:-1])  # the image was quarantined
    assert lost not in set(table["clip_id"]) and split["clip_id"].iloc[-1] not in set(table["clip_id"])
    whole = table[table["clip_id"].str.startswith(first)]
    assert (whole["text"] == gt["videos"][0]["caption"]).all() and (whole["caption_source"] == "source_video").all()
    assert whole["caption_transition"].all()


def test_llm_mode_keeps_source_captions_and_resumes(corpus, tmp_path):
    root, gt, clips, meta = corpus
    blank = clips["text"] == ""  # the clips of multi-shot videos: the LLM captions them, the image keeps its own
    llm = FrameCountCaptioner()
    cfg = dict(mode="llm", captioner={"short_side": 32, "num_frames": 4})
    _, table, _ = _run(tmp_path, clips, meta, model=llm, out="a", **cfg)
    generated = table[blank.values]
    assert (generated["caption_source"] == "llm").all() and llm.calls == clips.loc[blank, "video_id"].nunique()
    # frames come resized to short side 32 (never upscaled): a 96x64 video arrives 48 wide
    assert generated["text"].tolist() == [f"A clip seen in {min(4, r.num_frames)} frames of width "
                                          f"{round(r.width * 32 / min(r.width, r.height))}."
                                          for r in clips[blank].itertuples()]
    assert (table.loc[~blank.values, "caption_source"] == "source").all()
    again = FrameCountCaptioner()
    metrics, table2, _ = _run(tmp_path, clips, meta, model=again, out="b", **cfg)
    assert again.calls == 0 and metrics["caption/videos_cached"] == clips["video_id"].nunique()
    pd.testing.assert_frame_equal(table, table2)


def test_missing_captioner_weights_are_named(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_WEIGHTS", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match=r"pllava-13b: .*store/captioner/pllava-13b"):
        VideoCaptioner(CaptionerConfig())
    with pytest.raises(FileNotFoundError, match=r"captioner model folder .*/nowhere does not exist"):
        VideoCaptioner(CaptionerConfig(model_dir=str(tmp_path / "nowhere")))


def test_llm_stage_without_weights_fails_instead_of_quarantining(corpus, workspace, tmp_path, monkeypatch):
    _, _, clips, meta = corpus
    monkeypatch.setenv("REELFORGE_WEIGHTS", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match="pllava-13b"):
        _run(tmp_path, clips, meta, mode="llm")
