"""eval.vbench without weights: weights-free dimensions computed, every other one reported with its reason."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.evaluation.results import read_stage
from components.evaluation.vbench import report
from components.evaluation.vbench.compute import compute
from components.evaluation.vbench.config import EvalVBenchConfig
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.prompts import (VideoItem, custom_videos, load_suite, prompt_from_filename, select,
                                                  tiny_suite, video_name)
from components.evaluation.vbench.stage import STATIC_OFF, eval_vbench
from components.evaluation.vbench.weights import locate
from components.stage import StageContext
from components.tracking import NoopTracker
from vbench_testing import flat_video, write_lossless

REPO = Path(__file__).resolve().parents[2]


def context(ws: Path, cfg: EvalVBenchConfig) -> StageContext:
    out = ws / "eval" / "vbench"
    out.mkdir(parents=True)
    return StageContext("eval.vbench", "tiny", cfg, ws, out, {}, ws / "checkpoints" / "eval.vbench",
                        tracker=NoopTracker())


@pytest.mark.slow  # matplotlib's import and the polar chart take ~2 s here
def test_custom_mode_without_weights(workspace, tmp_path):
    videos = tmp_path / "videos"
    write_lossless(flat_video([10, 13, 7]), videos / "a red circle-0.mp4")  # 250.5 / 255
    write_lossless(flat_video([0, 51, 0, 51]), videos / "a blue square.mp4")  # 204 / 255
    store = tmp_path / "store"
    cfg = EvalVBenchConfig(mode="custom", videos=str(videos), weights={"store": str(store)}, device="cpu")
    metrics = eval_vbench(context(workspace, cfg))

    flicker = (250.5 + 204) / 2 / 255
    assert metrics["eval.vbench/temporal_flickering"] == pytest.approx(flicker)
    partial = (flicker - 0.6293) / (1 - 0.6293)  # the only dimension present: its normalised value
    assert metrics["eval.vbench/partial.total"] == pytest.approx(partial)
    assert "eval.vbench/total" not in metrics and metrics["eval.vbench/partial.dimensions"] == 1
    doc = json.loads((workspace / "eval/vbench/vbench.json").read_text())
    scores = doc["scores"]
    assert scores["total"]["value"] is None and "15 not computed" in scores["total"]["reason"]
    assert scores["partial"]["note"].startswith("PARTIAL: 1 of 16 dimensions")
    assert scores["subject_consistency"]["reason"] == \
        f"missing dino-vitb16: {store}/vbench/dino_vitbase16_pretrain.pth"
    assert scores["motion_smoothness"]["reason"] == f"missing amt-s: {store}/vbench/amt_s.pth"
    assert scores["scene"]["reason"].startswith("custom mode supports only")  # scene needs the prompt's aux info
    assert scores["color"]["reason"].startswith("custom mode supports only subject_consistency")
    per_video = json.loads((workspace / "eval/vbench/dimensions/temporal_flickering.json").read_text())["videos"]
    assert [(Path(v["video"]).name, v["prompt"]) for v in per_video] == [("a blue square.mp4", "a blue square"),
                                                                         ("a red circle-0.mp4", "a red circle")]
    assert (workspace / "eval/vbench/vbench_chart.png").stat().st_size > 10_000
    # the evaluation report and the registry gate read these names
    result = read_stage(workspace, "eval.vbench")
    assert result.metrics["eval.vbench/temporal_flickering"] == pytest.approx(flicker)
    assert result.metrics["eval.vbench/partial.total"] == pytest.approx(partial)
    assert result.not_computed["eval.vbench/total"].startswith("Total needs all 16 dimensions")


def test_not_computed_reasons_and_partial_block(workspace, tmp_path):
    video = write_lossless(flat_video([10, 13, 7]), tmp_path / "a-0.mp4")
    located = locate(["dino-vitb16", "amt-s"], "full", str(tmp_path / "store"))
    outcome = compute(["temporal_flickering", "subject_consistency", "motion_smoothness", "scene"],
                      lambda dim: [VideoItem(str(video), "a")] if dim != "scene" else [], ModelHub(located))
    assert outcome.results["temporal_flickering"].value == pytest.approx(250.5 / 255)
    assert outcome.not_computed == {
        "subject_consistency": f"missing dino-vitb16: {tmp_path}/store/vbench/dino_vitbase16_pretrain.pth",
        "motion_smoothness": f"missing amt-s: {tmp_path}/store/vbench/amt_s.pth",
        "scene": "tag2text: not located; bert-base-uncased-vocab: not located; tag2text-tag-list: not located"}
    block, agg = report.scores(outcome)
    assert block["quality"]["value"] is None and block["partial"]["quality"] == pytest.approx(
        (250.5 / 255 - 0.6293) / 0.3707)
    assert block["object_class"]["reason"] == "not requested (dimensions in the stage config)"
    assert block["temporal_flickering"]["min"] == 0.6293 and block["temporal_flickering"]["weight"] == 1.0
    assert set(report.metrics(block)) == {"eval.vbench/temporal_flickering", "eval.vbench/partial.quality",
                                          "eval.vbench/partial.total", "eval.vbench/partial.dimensions"}


def test_prompt_names_and_suites(tmp_path):
    assert video_name("a red circle", 3) == "a red circle-3.mp4"
    assert prompt_from_filename("x/a red circle-3.mp4") == "a red circle" == prompt_from_filename("a red circle.mp4")
    with pytest.raises(ValueError, match="contains '/'"):
        video_name("left/right", 0)
    shipped = load_suite(REPO / "configs/tiny/vbench_prompts.json")
    assert shipped == tiny_suite()  # the shipped file is the generator's output
    picked = select(shipped, ["temporal_flickering", "color"], per_dimension=1)
    assert [e.prompt for e in picked] == ["a yellow star standing still on a black background",
                                          "a green triangle standing still on a gray background"]
    (tmp_path / "bad.json").write_text(json.dumps([{"prompt_en": "p", "dimension": ["flicker"]}]))
    with pytest.raises(ValueError, match=r"bad.json: entry 0 \('p'\): unknown dimension\(s\) \['flicker'\]"):
        load_suite(tmp_path / "bad.json")


def test_custom_prompt_file_and_config_errors(tmp_path):
    write_lossless(flat_video([1, 2]), tmp_path / "v1.mp4")
    (tmp_path / "prompts.json").write_text(json.dumps({"v1.mp4": "a cat", "v9.mp4": "a dog"}))
    with pytest.raises(ValueError, match=r"prompts.json: names videos not in .*\['v9.mp4'\]"):
        custom_videos(tmp_path, tmp_path / "prompts.json")
    (tmp_path / "prompts.json").write_text(json.dumps({"v1.mp4": "a cat"}))
    assert custom_videos(tmp_path, tmp_path / "prompts.json")[0].prompt == "a cat"
    with pytest.raises(ValueError, match="mode custom needs `videos`"):
        EvalVBenchConfig(mode="custom")
    with pytest.raises(ValueError, match="unknown VBench dimension"):
        EvalVBenchConfig(dimensions=["sharpness"])


@pytest.mark.slow  # two stage runs with their charts
def test_standard_mode_on_sampled_videos_needs_raft_for_the_static_filter(workspace, tmp_path):
    prompt = "a yellow star standing still on a black background"  # the tiny suite's first flickering prompt
    write_lossless(flat_video([10, 13, 7]), tmp_path / "videos" / video_name(prompt, 0))
    write_lossless(flat_video([10, 10, 10]), tmp_path / "videos" / video_name(prompt, 1))
    common = dict(videos=str(tmp_path / "videos"), dimensions=["temporal_flickering"], prompts_per_dimension=1,
                  videos_per_prompt=2, weights={"store": str(tmp_path / "store")}, device="cpu")
    eval_vbench(context(workspace, EvalVBenchConfig(**common)))
    scores = json.loads((workspace / "eval/vbench/vbench.json").read_text())["scores"]
    assert scores["temporal_flickering"]["reason"].startswith(
        "the standard protocol's static filter needs RAFT: missing raft-things")
    shutil.rmtree(workspace / "eval")
    metrics = eval_vbench(context(workspace, EvalVBenchConfig(**common, static_filter={"enabled": False})))
    assert metrics["eval.vbench/temporal_flickering"] == pytest.approx((250.5 / 255 + 1.0) / 2)
    record = json.loads((workspace / "eval/vbench/vbench.json").read_text())["scores"]["temporal_flickering"]
    assert record["static_filter"] == STATIC_OFF and record["videos"] == 2
