"""dit.stage0 → dit.adapt1 … dit.adapt8 in one process at micro size, with the real tiny recipes (+ micro overrides).

Every stage: loads its predecessor (only its own new modules are missing), starts from exactly the weights its
predecessor ended with, lowers the fixed-batch validation loss over its steps, and writes weights, samples and a
loss curve that reach the tracker.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

import components.dit.stages  # noqa: F401  (registers dit.*; the lead adds it to STAGE_MODULES)
from components.config import resolve
from components.dit.config import DiTStageConfig
from components.dit.model_io import build_model, load_export
from components.runner import check_inputs, replace_dir
from components.stage import REGISTRY, StageContext
from components.training.checkpoint import load_safetensors
from components.training.trainer import SimulatedKill
from flows.adapt import ADAPT_STAGES
from tests.unit.dit_testing import MICRO, MICRO_VIDEO, write_corpus, write_vae_exports

pytestmark = pytest.mark.slow
STEPS = ["steps=60", "lr=2e-3"]  # enough to lower each stage's loss on the two-clip corpus by a clear margin
NEW_MODULES = {"dit.adapt2": ".attn.", "dit.adapt6": "fps_embedder.", "dit.adapt7": "temporal_blocks."}
# stages whose model function and validation data equal their predecessor's at step 0 (t sampling, eps and
# zero-initialised temporal blocks change nothing there): their first validation loss is the predecessor's last
SAME_FUNCTION = ("dit.adapt4", "dit.adapt5", "dit.adapt7")


class RecordingTracker:
    """Keeps what a stage logs, as MLflow would."""

    def __init__(self):
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self.artifacts: list[tuple[str, str | None]] = []

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append((str(path), artifact_path))

    def __getattr__(self, name):  # params, tags, dicts, datasets: not asserted here
        return lambda *args, **kwargs: None


def run_stage(ws, name: str, extra: tuple[str, ...] = (), ckpt: str | None = None,
              output: str | None = None) -> tuple[dict, RecordingTracker]:
    """What `reelforge stage run NAME` does in-process, with the micro overrides."""
    spec = REGISTRY[name]
    sets = MICRO + STEPS + (MICRO_VIDEO if name == "dit.adapt8" else []) + list(extra)
    cfg = resolve(name, DiTStageConfig, "tiny", sets)
    inputs = spec.inputs(cfg, ws)
    check_inputs(name, inputs)
    output = output or spec.output
    tmp = ws / f"{output}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tracker = RecordingTracker()
    ctx = StageContext(name=name, profile="tiny", cfg=cfg, workspace=ws, out=tmp, inputs=inputs,
                       checkpoint_dir=ws / "checkpoints" / (ckpt or name), tracker=tracker)
    try:
        metrics = spec.fn(ctx)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, ws / output)
    return metrics, tracker


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The nine stages run one after the other in a fresh project root and workspace."""
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("dit_chain")
    shutil.copytree(REPO / "configs", root / "project" / "configs")
    shutil.copy(REPO / "params.yaml", root / "project" / "params.yaml")
    ws = root / "ws"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REELFORGE_ROOT", str(root / "project"))
        patch.setenv("REELFORGE_HOME", str(ws))
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        write_corpus(ws, videos=2, frames=12)
        write_vae_exports(ws)
        results, trackers, started = {}, {}, time.time()
        for name in ADAPT_STAGES:
            results[name], trackers[name] = run_stage(ws, name)
        print(f"micro adaptation chain: {time.time() - started:.1f} s for {len(ADAPT_STAGES)} stages")
        yield ws, results, trackers
        torch.set_num_threads(before)


def test_adaptation_chain(chain):
    workspace, results, trackers = chain

    for i, name in enumerate(ADAPT_STAGES):
        out = workspace / "dit" / name.split(".")[1]
        metrics = results[name]
        assert metrics["step"] == 60
        assert metrics["val_loss_last"] < 0.95 * metrics["val_loss_first"], (name, metrics)
        info = json.loads((out / "dit.json").read_text())
        init = json.loads((out / "init.json").read_text())
        curve = json.loads((out / "metrics.json").read_text())["loss_curve"]
        assert [step for step, _ in curve] == [1, *range(4, 61, 4)]  # log_every=4, the first step included
        assert (out / "loss_curve.png").stat().st_size > 0
        media = ["step_00000060.mp4", "step_00000060.gif"] if name == "dit.adapt8" else ["step_00000060.png"]
        assert sorted(p.name for p in (out / "samples").iterdir()) == sorted(media)
        logged = trackers[name]
        assert sorted(p.split("/")[-1] for p, where in logged.artifacts if where == "samples") == sorted(media)
        val_steps = [step for step, m in logged.metrics if "val/loss" in m]
        assert val_steps == [0, 20, 40, 60]  # before step 1, every val_every=20 steps
        assert [step for step, m in logged.metrics if "train/loss" in m] == [1, *range(4, 61, 4)]
        if i == 0:
            assert init["source"] == "random" and info["stdit"]["temporal"] is False
            continue
        previous = ADAPT_STAGES[i - 1]
        prev_out = workspace / "dit" / previous.split(".")[1]
        assert init["source"] == str(prev_out / "model.safetensors")
        expected_new = NEW_MODULES.get(name)
        assert all(expected_new and expected_new in key for key in init["new"]), (name, sorted(init["new"])[:3])
        assert bool(init["new"]) == bool(expected_new)
        # the weights it shares with its predecessor are the predecessor's final ones
        cfg = resolve(name, DiTStageConfig, "tiny", MICRO)
        model = build_model(cfg.model, cfg.seed)
        load_export(model, prev_out)
        before = load_safetensors(prev_out / "model.safetensors")
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in before.items())
        if name in SAME_FUNCTION:
            assert metrics["val_loss_first"] == results[previous]["val_loss_last"], name

    flags = {n: json.loads((workspace / "dit" / n.split(".")[1] / "dit.json").read_text())["stdit"]
             for n in ADAPT_STAGES}
    assert [flags[n]["qk_norm"] for n in ADAPT_STAGES] == [False, False] + [True] * 7
    assert [flags[n]["fps_cond"] for n in ADAPT_STAGES] == [False] * 6 + [True] * 3
    assert [flags[n]["temporal"] for n in ADAPT_STAGES] == [False] * 7 + [True] * 2


def test_a_killed_stage_resumes_on_the_same_trajectory(chain):
    """In-process (world 1): kill adapt8 after its step-4 checkpoint, rerun, and match an uninterrupted run."""
    ws = chain[0]
    short = ("steps=8", "checkpoint_every=4", "log_every=1")
    reference, ref_log = run_stage(ws, "dit.adapt8", short, ckpt="adapt8-reference", output="resume/reference")
    with pytest.raises(SimulatedKill, match="stop_after=4"):
        run_stage(ws, "dit.adapt8", (*short, "stop_after=4"), ckpt="adapt8-killed", output="resume/killed")
    resumed, log = run_stage(ws, "dit.adapt8", short, ckpt="adapt8-killed", output="resume/killed")
    losses = {step: m["train/loss"] for step, m in log.metrics if "train/loss" in m}
    expected = {step: m["train/loss"] for step, m in ref_log.metrics if "train/loss" in m}
    assert sorted(losses) == [5, 6, 7, 8]
    assert all(losses[step] == expected[step] for step in losses), (losses, expected)
    assert resumed["loss_last"] == reference["loss_last"] and resumed["loss_first"] == reference["loss_first"]
