"""The evaluation report from fixture JSONs: metric names, not-computed reasons, stale outputs, Markdown, HTML, plots, GIFs."""
import json

import matplotlib
import numpy as np
import pytest
from PIL import Image

from components.evaluation.gate import GateConfig, GateMetric, decide
from components.evaluation.report import ReportInfo, write_report
from components.evaluation.results import all_metrics, collect

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401  (imported at collection: the import, not the rendering, takes a second)


def write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


@pytest.fixture
def ws(tmp_path):
    ws = tmp_path / "ws"
    write(ws / "eval/vae/metrics.json", {"stage": "eval.vae", "clips": {"N": 4}, "scores": {
        "psnr": {"value": 31.5, "N": 4, "frames": 17, "resize": "area"},
        "ssim": {"value": 0.91, "N": 4},
        "rfvd": {"value": None, "status": "not computed", "reason": "missing I3D weights: /w/i3d/i3d_torchscript.pt"}}})
    write(ws / "eval/loss/loss.json", {"scores": {"mean": 0.41, "per_timestep": [0.9, 0.5, 0.3, 0.2]}})
    write(ws / "eval/loss/buckets.json", {"metrics": {"240p_2s": 0.44}})
    write(ws / "eval/adherence/adherence.json", {"accuracy": 0.75, "colour": {"accuracy": 0.9}, "n": 8, "ok": True})
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)) for i in range(3)]
    (ws / "eval/vae/samples").mkdir(parents=True)
    frames[0].save(ws / "eval/vae/samples/clip_a.gif", save_all=True, append_images=frames[1:], duration=100)
    return ws


def test_collect_names_scores_by_stage_and_file(ws):
    results = {r.stage: r for r in collect(ws)}
    assert results["eval.vbench"].status == "not run" and results["eval.vbench"].metrics == {}
    assert all_metrics(collect(ws)) == {
        "eval.vae/psnr": 31.5, "eval.vae/ssim": 0.91,
        "eval.loss/mean": 0.41, "eval.loss/buckets.240p_2s": 0.44,  # a second file of a stage is named by its stem
        "eval.adherence/accuracy": 0.75, "eval.adherence/colour.accuracy": 0.9, "eval.adherence/n": 8.0,
    }
    assert results["eval.vae"].not_computed == {"eval.vae/rfvd": "missing I3D weights: /w/i3d/i3d_torchscript.pt"}
    assert results["eval.vae"].settings["eval.vae/psnr"] == {"N": 4, "frames": 17, "resize": "area"}
    assert results["eval.loss"].series == {"eval.loss/per_timestep": [0.9, 0.5, 0.3, 0.2]}
    assert [g.name for g in results["eval.vae"].gifs] == ["clip_a.gif"]


def test_outputs_of_stages_not_run_in_this_evaluation_are_left_out(ws):
    results = {r.stage: r for r in collect(ws, fresh={"eval.vae"})}
    assert results["eval.adherence"].status.startswith("stale") and results["eval.adherence"].metrics == {}
    assert set(all_metrics(results.values())) == {"eval.vae/psnr", "eval.vae/ssim"}


def test_unreadable_json_is_reported_with_its_file(tmp_path):
    (tmp_path / "eval/vbench").mkdir(parents=True)
    (tmp_path / "eval/vbench/vbench.json").write_text("{broken")
    (result,) = collect(tmp_path, stages=["eval.vbench"])
    assert result.status == "ran" and result.metrics == {}
    assert result.errors[0].startswith(f"{tmp_path / 'eval/vbench/vbench.json'}: unreadable JSON")


def test_report_renders_tables_plots_and_gif_grid(ws, tmp_path):
    results = collect(ws)
    champion = {"eval.vae/psnr": 30.0}
    cfg = GateConfig(metrics=[GateMetric(name="eval.vae/psnr", direction="higher")])
    decision = decide(cfg, all_metrics(results), champion, "1")
    info = ReportInfo("reelforge-vae", "2", "vae", "tiny", "/reg/reelforge-vae/abc", "1", champion)
    out = tmp_path / "report"
    paths = write_report(out, info, results, decision)

    md = paths["markdown"].read_text()
    assert md.startswith("# Evaluation of reelforge-vae v2")
    assert "| eval.vae/psnr | 31.5 | 30 | +1.5 |" in md
    assert "| eval.vae/rfvd | not computed | — |  | missing I3D weights: /w/i3d/i3d_torchscript.pt |" in md
    assert "## eval.vbench\n\nnot run: no outputs under the workspace" in md
    assert "**promoted** (promote: True): eval.vae/psnr 31.5 beats 30" in md
    assert "| eval.vae/psnr | higher | 0 | 31.5 | 30 | 1.5 | yes |" in md
    assert "![eval.vae: clip_a](gifs/eval_vae-clip_a.gif)" in md

    html = paths["html"].read_text()
    assert "<img src='plots/compare.png'" in html and "<img src='plots/eval_loss.png'" in html
    assert "<div class='grid'><figure><img src='gifs/eval_vae-clip_a.gif'" in html
    assert "<td>eval.vae/psnr</td><td>31.5</td><td>30</td><td>+1.5</td>" in html

    assert (out / "gifs/eval_vae-clip_a.gif").read_bytes() == (ws / "eval/vae/samples/clip_a.gif").read_bytes()
    # 7 metrics: 4 columns x 2 rows of 3.2 x 2.6 inch panels at 90 dpi
    assert Image.open(out / "plots/compare.png").size == (1152, 468)
    assert Image.open(out / "plots/eval_loss.png").size == (540, 315)
