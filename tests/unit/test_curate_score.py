"""curate.score: values per clip, one decode per frame request, resumable shards, quarantine, provenance, workers."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

import components.curation.scoring as scoring_module
from components.curation.frames import read_frames, sample_indices
from components.curation.score import score
from components.curation.score_config import ScoreConfig, ScorerSpec, build_scorer
from components.data.synth import SynthConfig, synthesize
from curation_testing import MICRO, EdgeScorer, LumaScorer, context, gt_clips


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    gt = synthesize(root, SynthConfig(seed=0, n_videos=3, n_images=1, **MICRO))
    return root, gt, gt_clips(root, gt)


def _run(ws, clips: pd.DataFrame, instances, out="out", **cfg):
    """Run the stage on `clips` with scorer instances (None: build them from cfg's specs)."""
    ws.mkdir(parents=True, exist_ok=True)
    src = ws / "clips.parquet"
    clips.to_parquet(src, index=False)
    cfg.setdefault("dedup", {"enabled": False})
    ctx = context("curate.score", ScoreConfig(**cfg), ws, out, {"clips": str(src)})
    metrics = score(ctx, scorers=instances)
    return metrics, pd.read_parquet(ctx.out / "scores.parquet"), pd.read_parquet(ctx.out / "quarantine.parquet")


def test_scores_match_frames_read_directly(corpus, tmp_path):
    root, gt, clips = corpus
    luma = LumaScorer()
    metrics, scores, quarantine = _run(tmp_path, clips, [luma], batch_size=2)
    assert scores["clip_id"].tolist() == clips["clip_id"].tolist() and quarantine.empty
    row = clips.iloc[1]
    want = read_frames(row.path, indices=sample_indices(row.start_frame, row.end_frame, 3), short_side=32).mean()
    assert scores.loc[1, "luma"] == pytest.approx(float(want))
    assert scores["luma_frames"].tolist() == [min(3, n) for n in clips["num_frames"]]
    per_video = clips.groupby("video_id").size()
    assert luma.calls == sum(math.ceil(n / 2) for n in per_video)  # batches never span videos
    assert metrics["score/clips_scored"] == len(clips) and metrics["score/videos_quarantined"] == 0
    assert (scores["dup_of"] == "").all() and scores["dup_similarity"].isna().all()


def test_one_decoding_pass_per_video_serves_every_frame_request(corpus, tmp_path, monkeypatch):
    _, _, clips = corpus
    reads = []

    def counting(path, *args, **kwargs):
        reads.append(kwargs.get("short_side"))
        return read_frames(path, *args, **kwargs)

    monkeypatch.setattr(scoring_module, "read_frames", counting)
    _, once, _ = _run(tmp_path / "once", clips, [LumaScorer(), EdgeScorer()])
    videos = clips["path"].nunique()
    assert reads == [None] * videos  # native frames, resized per request in memory
    reads.clear()
    # no memory for the union: (3 frames, 32 px) and (every frame, native) each decode on their own
    _, apart, _ = _run(tmp_path / "apart", clips, [LumaScorer(), EdgeScorer()], max_decode_mib=0)
    assert len(reads) == 2 * videos and sorted(set(reads), key=str) == [32, None]
    pd.testing.assert_frame_equal(once, apart)


def test_second_run_skips_finished_videos(corpus, tmp_path):
    _, _, clips = corpus
    first = LumaScorer()
    _, scores1, _ = _run(tmp_path, clips, [first], out="a")
    assert first.calls > 0
    again = LumaScorer()
    metrics, scores2, _ = _run(tmp_path, clips, [again], out="b")
    assert again.calls == 0
    assert metrics["score/videos_cached"] == clips["video_id"].nunique() and metrics["score/videos_scored"] == 0
    pd.testing.assert_frame_equal(scores1, scores2)
    changed = LumaScorer(version="2")  # new provenance: a new shard key, so everything is scored again
    metrics, _, _ = _run(tmp_path, clips, [changed], out="c")
    assert changed.calls > 0 and metrics["score/videos_cached"] == 0


def test_failing_video_is_quarantined_and_others_scored(corpus, tmp_path):
    root, gt, clips = corpus
    bad_video = clips["video_id"].iloc[0]
    missing = clips.copy()
    gone = missing["video_id"] == clips["video_id"].iloc[-1]  # the image: point it at a file that is not there
    missing.loc[gone, "path"] = str(root / "nowhere.png")
    metrics, scores, quarantine = _run(tmp_path, missing, [LumaScorer(fail_on=bad_video)])
    assert quarantine.columns.tolist() == ["video_id", "step", "error"]
    errors = dict(zip(quarantine["video_id"], quarantine["error"]))
    assert set(errors) == {bad_video, clips["video_id"].iloc[-1]}
    assert errors[bad_video].startswith(clips["path"].iloc[0] + ": scorer luma failed on clips " + bad_video)
    assert "planted failure" in errors[bad_video]
    assert errors[clips["video_id"].iloc[-1]].startswith(str(root / "nowhere.png") + ": ")
    assert set(quarantine["step"]) == {"score"}
    kept = clips[~clips["video_id"].isin(errors)]
    assert scores["clip_id"].tolist() == kept["clip_id"].tolist()
    assert metrics["score/videos_quarantined"] == 2
    # no shard for the failed videos: a retry scores them again
    retry = LumaScorer()
    metrics, scores, quarantine = _run(tmp_path, clips, [retry], out="retry")
    assert quarantine.empty and len(scores) == len(clips) and metrics["score/videos_scored"] == 2


def test_provenance_names_every_column(corpus, tmp_path):
    _, _, clips = corpus
    src = tmp_path / "clips.parquet"
    clips.to_parquet(src, index=False)
    ctx = context("curate.score", ScoreConfig(dedup={"enabled": False}), tmp_path, "out", {"clips": str(src)})
    score(ctx, scorers=[LumaScorer(), EdgeScorer()])
    prov = json.loads((ctx.out / "provenance.json").read_text())
    assert set(prov) == {"luma", "luma_frames", "edge", "dup_of", "dup_similarity"}
    assert prov["dup_of"]["method"].startswith("disabled")
    assert prov["edge"] == {"scorer": "edge", "method": "mean abs x-gradient", "weights": "none", "version": "1"}


def test_scorer_built_from_spec_with_its_config_class():
    ocr = build_scorer(ScorerSpec(name="ocr", options={"num_frames": 2, "box_thresh": 0.4}))
    assert (ocr.num_frames, ocr.cfg.box_thresh, ocr.columns) == (2, 0.4, ("ocr_boxes", "ocr_area", "ocr_area_frac"))
    with pytest.raises(ValueError, match="scorer 'ocr'.*bad options.*nonsense"):
        build_scorer(ScorerSpec(name="ocr", options={"nonsense": 1}))
    with pytest.raises(ValueError, match="'blur': not a known scorer"):
        build_scorer(ScorerSpec(name="blur"))
    own = build_scorer(ScorerSpec(name="luma", target="curation_testing:LumaScorer", options={"version": "7"}))
    assert own.provenance()["version"] == "7"
    with pytest.raises(ValueError, match="listed twice"):
        ScoreConfig(scorers=[{"name": "ocr"}, {"name": "ocr"}])


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_worker_processes_give_the_same_scores(corpus, tmp_path, start_method):
    _, _, clips = corpus
    spec = [{"name": "luma", "target": "curation_testing:LumaScorer"}]
    metrics, parallel, _ = _run(tmp_path / "p", clips, None, scorers=spec, workers=2, start_method=start_method)
    _, single, _ = _run(tmp_path, clips, [LumaScorer()])
    pd.testing.assert_frame_equal(parallel, single)
    assert metrics["score/videos_scored"] == clips["video_id"].nunique()
    assert np.isfinite(parallel["luma"]).all()


def test_dedup_marks_the_shorter_copy_of_a_re_uploaded_clip(corpus, tmp_path):
    root, _, clips = corpus
    original = clips.iloc[0]
    upload = tmp_path / "upload.mp4"  # the same video uploaded again, cut one frame shorter
    shutil.copy(original.path, upload)
    copy = original.copy()
    copy["video_id"], copy["path"], copy["start_frame"] = "f" * 16, str(upload), original.start_frame + 1
    copy["num_frames"] = copy["end_frame"] - copy["start_frame"]
    copy["clip_id"] = f"{'f' * 16}-{copy['start_frame']:06d}-{copy['end_frame']:06d}"
    table = pd.concat([clips, copy.to_frame().T], ignore_index=True).astype(clips.dtypes.to_dict())
    ws = tmp_path / "ws"
    metrics, scores, _ = _run(ws, table, [LumaScorer()], dedup={"enabled": True})
    found = scores.set_index("clip_id")
    assert found.loc[copy["clip_id"], "dup_of"] == original.clip_id
    assert found.loc[copy["clip_id"], "dup_similarity"] >= 0.85
    assert found.loc[original.clip_id, "dup_of"] == ""  # the longer copy stays
    assert metrics["score/duplicates"] == (found["dup_of"] != "").sum() >= 1
    assert "dedup_features" not in scores.columns
    prov = json.loads((ws / "out" / "provenance.json").read_text())
    assert "signatures" in prov["dup_of"]["method"] and "dedup_features" not in prov


def test_dedup_threshold_change_reuses_the_shards(corpus, tmp_path):
    _, _, clips = corpus
    _run(tmp_path, clips, [LumaScorer()], out="a", dedup={"enabled": True})
    again = LumaScorer()
    stricter = {"enabled": True, "options": {"signature_threshold": 0.99}}
    metrics, _, _ = _run(tmp_path, clips, [again], out="b", dedup=stricter)
    assert again.calls == 0 and metrics["score/videos_cached"] == clips["video_id"].nunique()
    frames = LumaScorer()  # more frames per clip: new features, so every video is read again
    metrics, _, _ = _run(tmp_path, clips, [frames], out="c", dedup={"enabled": True, "options": {"num_frames": 4}})
    assert frames.calls > 0 and metrics["score/videos_cached"] == 0
