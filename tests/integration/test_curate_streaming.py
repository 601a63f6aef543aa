"""Streaming curation: per-video split → score → caption fill the shard stores; the stages then only assemble."""
from __future__ import annotations

import pandas as pd
import pytest

from components.config import resolve
from components.curation import streaming
from components.curation.caption import CaptionConfig, caption
from components.curation.score import score
from components.curation.score_config import ScoreConfig
from components.curation.split import SplitConfig, split
from components.data.ingest import IngestConfig, ingest
from components.data.synth import SynthConfig, synthesize
from tests.unit.curation_testing import MICRO, context

pytestmark = pytest.mark.slow


def test_stages_find_every_shard_the_streaming_run_wrote(workspace, tmp_path):
    raw = tmp_path / "raw"
    synthesize(raw, SynthConfig(seed=1, n_videos=4, n_images=1, **MICRO))
    ingest(context("data.ingest", IngestConfig(source=str(raw), progress=False), workspace, "data/ingest",
                   {"raw": str(raw)}))
    rows = streaming.videos("tiny")
    video = next(r for r in rows if r["media"] == "video")
    broken = dict(video, id="0" * 16, path=str(raw / "gone.mp4"))  # a video that vanished after ingest
    results = [streaming.caption_video(streaming.score_video(streaming.split_one(row, "tiny"), "tiny"), "tiny")
               for row in rows + [broken]]
    summary = streaming.summarise(results)
    assert summary["videos"] == len(rows) + 1 and summary["done"] == len(rows)
    assert list(summary["failed"]) == ["0" * 16] and "gone.mp4" in summary["failed"]["0" * 16]
    assert not any(r["cached"] for r in results[:-1])

    meta = str(workspace / "data/ingest/metadata.parquet")
    split(context("curate.split", resolve("curate.split", SplitConfig, "tiny"), workspace, "curate/split",
                  {"metadata": meta}))
    clips = str(workspace / "curate/split/clips.parquet")
    metrics = score(context("curate.score", resolve("curate.score", ScoreConfig, "tiny"), workspace, "curate/score",
                            {"clips": clips}))
    n_videos = pd.read_parquet(clips)["video_id"].nunique()
    assert (metrics["score/videos_cached"], metrics["score/videos_scored"]) == (n_videos, 0)
    assert metrics["score/clips_scored"] == sum(r["clips"] for r in results)
    scores = str(workspace / "curate/score/scores.parquet")
    metrics = caption(context("curate.caption", resolve("curate.caption", CaptionConfig, "tiny"), workspace,
                              "curate/caption", {"metadata": meta, "clips": clips, "scores": scores}))
    assert metrics["caption/videos_cached"] == n_videos
