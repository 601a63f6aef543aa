"""Motion-family scorers against the synthetic ground truth (seeds 0 and 1): static shots, camera direction,
fast vs slow flow, temporal consistency of true shots vs spliced ones. Clips are GT shots minus their fade frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.curation.frames import read_frames
from components.curation.scorer import ClipFrames
from components.curation.scorers.flow import FlowConfig, FlowScorer
from components.curation.scorers.motion import STATIC_THRESHOLD, MotionScorer
from components.curation.scorers.temporal import TemporalConfig, TemporalScorer
from components.data.synth import SynthConfig, synthesize

pytestmark = pytest.mark.slow

SHORT_SIDE = 96  # the motion and flow scorers' default: one decode serves both


def clean_range(shot: dict, transitions: list[dict]) -> tuple[int, int]:
    """The shot's frames without the ones a fade blends with its neighbour."""
    start, end = shot["start"], shot["end"]
    for t in transitions:
        if t["kind"] != "fade":
            continue
        first = t["frame"] - t["length"] // 2
        last = first + t["length"]
        if first <= start < last:
            start = last
        if first < end <= last:
            end = first
    return start, end


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0", "seed1"])
def scored(request, tmp_path_factory) -> list[dict]:
    """One record per GT shot: its ground truth, first/last frames and every motion-family column."""
    root = tmp_path_factory.mktemp(f"synth{request.param}")
    gt = synthesize(root, SynthConfig(seed=request.param, n_videos=24, n_images=0, plant_bad=False))
    motion, flow = MotionScorer(), FlowScorer(FlowConfig(method="farneback"))
    temporal = TemporalScorer(TemporalConfig(method="features"))
    records = []
    for video in gt["videos"]:
        for shot in video["shots"]:
            start, end = clean_range(shot, video["transitions"])
            frames = read_frames(str(Path(root) / video["path"]), start, end, short_side=SHORT_SIDE)
            clip = ClipFrames(shot["id"], frames, list(range(start, end)), float(video["fps"]))
            row = motion.score([clip])[0] | flow.score([clip])[0] | temporal.score([clip])[0]
            records.append({"shot": shot, "video": video["path"], "first": frames[0], "last": frames[-1], **row})
    return records


def test_static_shots_score_below_the_static_threshold(scored):
    static = [r["motion"] for r in scored if r["shot"]["kind"] == "static"]
    moving = [r["motion"] for r in scored if r["shot"]["kind"] != "static"]
    recall = np.mean([m < STATIC_THRESHOLD for m in static])
    false_static = np.mean([m < STATIC_THRESHOLD for m in moving])
    message = (f"threshold {STATIC_THRESHOLD}: static recall {recall:.3f} ({len(static)} shots), moving shots "
               f"called static {false_static:.3f} ({len(moving)} shots)")
    print(message)
    assert len(static) >= 5 and recall >= 0.95, message
    assert false_static <= 0.1, message


def test_camera_shots_get_their_direction(scored):
    # the corpus puts camera shots on 2D textures only (diagonal stripes would make pan and tilt identical)
    camera = [r for r in scored if r["shot"]["kind"] == "camera"]
    accuracy = np.mean([r["cmotion"] == r["shot"]["camera"] for r in camera])
    others = [r for r in scored if r["shot"]["kind"] != "camera"]
    false_camera = np.mean([r["cmotion"] != "static" for r in others])
    wrong = [(r["shot"]["id"], r["shot"]["camera"], r["cmotion"]) for r in camera if r["cmotion"] != r["shot"]["camera"]]
    message = (f"direction right in {accuracy:.3f} of {len(camera)} camera shots; still-camera shots given a camera "
               f"motion {false_camera:.3f} of {len(others)}; wrong: {wrong}")
    print(message)
    assert len(camera) >= 5 and accuracy >= 0.9, message
    assert false_camera <= 0.05, message


def test_fast_shots_have_more_flow_than_slow_ones(scored):
    # the shape's own speed is the only motion in undegraded, camera-free shots
    plain = [r for r in scored if r["shot"]["kind"] in ("normal", "text", "near_duplicate")]
    fast = [r["flow"] for r in plain if r["shot"]["speed"] == "fast"]
    slow = [r["flow"] for r in plain if r["shot"]["speed"] == "slow"]
    message = f"mean flow fast {np.mean(fast):.3f} ({len(fast)} shots), slow {np.mean(slow):.3f} ({len(slow)} shots)"
    print(message)
    assert len(fast) >= 5 and len(slow) >= 5 and np.mean(fast) > np.mean(slow), message


def test_true_shots_are_more_consistent_than_spliced_ones(scored):
    scorer = TemporalScorer(TemporalConfig(method="features"))
    wins, pairs = 0, 0
    for before, after in zip(scored, scored[1:]):
        if before["video"] != after["video"]:
            continue
        spliced = ClipFrames("spliced", np.stack([before["first"], after["last"]]), [0, 1], 24.0)
        wins += before["temporal"] > scorer.score([spliced])[0]["temporal"]  # a missed cut inside the clip
        pairs += 1
    message = f"true shot above its splice with the next shot in {wins}/{pairs} pairs"
    print(message)
    assert pairs >= 20 and wins / pairs >= 0.9, message
