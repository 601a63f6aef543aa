"""pretrain.tier1 → tier2 → tier3 → eval.loss in one process at micro size, reading a real cache.latents output.

Acceptance: training from the latent cache gives the same loss trajectory as on-the-fly encoding (same seed).
Each tier starts from exactly its predecessor's export (its step-0 grid equals the predecessor's last grid),
lowers its validation grid, logs the grid as curves; eval.loss writes the grid JSON + heat map the report reads.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import components.dit.pretrain  # noqa: F401  (registers pretrain.*; the lead adds it to STAGE_MODULES)
import components.evaluation.val_loss  # noqa: F401  (registers eval.loss)
from components.config import resolve
from components.curation.clips import clip_id
from components.data.buckets import BucketConfig
from components.dit.captions import caption_embeddings
from components.dit.latent_cache import LatentCache
from components.dit.latent_stage import OUTPUT as CACHE_OUTPUT
from components.dit.latent_stage import LatentCacheConfig, TierSource, cache_latents
from components.dit.latents import OnTheFlyLatents, load_video_codec
from components.dit.pretrain import training_table
from components.dit.pretrain_config import Cell, PretrainConfig
from components.dit.val_grid import CacheOrEncode, build_grid
from components.evaluation.clips import heldout_score
from components.evaluation.results import read_stage
from components.evaluation.val_loss import ValLossConfig
from components.runner import check_inputs, replace_dir
from components.stage import REGISTRY, StageContext
from components.training.checkpoint import load_safetensors
from tests.integration.test_dit_adapt_chain import RecordingTracker
from tests.unit.dit_testing import write_corpus
from tests.unit.sampling_testing import write_dit_export

pytestmark = pytest.mark.slow
BUCKETS = {"32px": {1: [1.0, 2], 9: [1.0, 2]}}
CELLS = [["32px", 9], ["32px", 1], ["64px", 9]]  # 64px: no micro clip has the pixels (an empty cell)
SALT = "reelforge-heldout-v1"
MICRO = ["steps=8", "log_every=1", "checkpoint_every=8", "progress=false", "eval_samples=2", "lr=2e-3",
         "model.size=tiny", "model.model_max_length=8", "text.max_length=8", "sample.steps=2", "sample.resolution=32px",
         "sample.num_frames=9", "data.tables=[data/ingest/metadata.parquet]", "val.every=4",
         "val.tables=[data/ingest/metadata.parquet]", f"val.cells={json.dumps(CELLS)}"]


def heldout_fraction(ws: Path) -> float:
    """A fraction that holds out exactly one micro video (the one with the lowest held-out score)."""
    meta = pd.read_parquet(ws / "data/ingest/metadata.parquet")
    videos = meta[meta["media"] == "video"]
    scores = sorted(heldout_score(clip_id(i, 0, int(n)), SALT) for i, n in zip(videos["id"], videos["num_frames"]))
    return (scores[0] + scores[1]) / 2


def config(name: str, ws: Path, extra: list[str]) -> PretrainConfig:
    cfg = resolve(name, PretrainConfig, "tiny", MICRO + [f"val.heldout_fraction={heldout_fraction(ws)}"] + extra)
    # --set deep-merges bucket dicts into the recipe's; the micro corpus needs exactly these buckets
    buckets = BucketConfig.model_validate(BUCKETS)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"buckets": buckets})})


def run(ws: Path, name: str, cfg, output: str | None = None, ckpt: str | None = None) -> tuple[dict, RecordingTracker]:
    """What `reelforge stage run NAME` does in-process."""
    spec = REGISTRY[name]
    inputs = spec.inputs(cfg, ws)
    check_inputs(name, inputs)
    output = output or spec.output
    tmp = ws / f"{output}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tracker = RecordingTracker()
    ctx = StageContext(name=name, profile="tiny", cfg=cfg, workspace=ws, out=tmp, inputs=inputs,
                       checkpoint_dir=ws / "checkpoints" / (ckpt or name), tracker=tracker)
    metrics = spec.fn(ctx)
    replace_dir(tmp, ws / output)
    return metrics, tracker


def losses(tracker: RecordingTracker) -> list[float]:
    return [m["train/loss"] for _, m in tracker.metrics if "train/loss" in m]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("pretrain")
    shutil.copytree(REPO / "configs", root / "project" / "configs")
    shutil.copy(REPO / "params.yaml", root / "project" / "params.yaml")
    ws = root / "ws"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REELFORGE_ROOT", str(root / "project"))
        patch.setenv("REELFORGE_HOME", str(ws))
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        started = time.time()
        write_corpus(ws, videos=4, frames=12)
        write_dit_export(ws, "dit/adapt8")  # with vae/stage3 beside it
        tier = TierSource(table="data/ingest/metadata.parquet", buckets=BucketConfig.model_validate(BUCKETS),
                          video_frames_as_images=True)  # as the tiny profile's tiers
        cache_cfg = LatentCacheConfig(tiers={"tier1": tier}, score_text=False, text={"kind": "minilm", "max_length": 8})
        out = ws / ".cache.tmp"
        out.mkdir()
        cache_latents(StageContext(name="cache.latents", profile="tiny", cfg=cache_cfg, workspace=ws, out=out,
                                   inputs={}, checkpoint_dir=ws / "ckpt"))
        replace_dir(out, ws / CACHE_OUTPUT)
        results = {}
        for name in ("pretrain.tier1", "pretrain.tier2", "pretrain.tier3"):
            results[name] = run(ws, name, config(name, ws, []))
        live = config("pretrain.tier1", ws, ["latents.kind=on_the_fly", "vae.memo=false"])
        results["live"] = run(ws, "pretrain.tier1", live, output="pretrain/tier1_live", ckpt="live")
        eval_cfg = resolve("eval.loss", ValLossConfig, "tiny",
                           ["model=pretrain/tier3", f"grid.cells={json.dumps(CELLS)}",
                            "grid.tables=[data/ingest/metadata.parquet]",
                            f"grid.heldout_fraction={heldout_fraction(ws)}"])
        results["eval.loss"] = run(ws, "eval.loss", eval_cfg)
        print(f"micro pretraining chain: {time.time() - started:.1f} s")
        yield ws, results
        torch.set_num_threads(before)


def test_cache_and_on_the_fly_give_the_same_loss_trajectory(chain):
    ws, results = chain
    cached, live = losses(results["pretrain.tier1"][1]), losses(results["live"][1])
    assert len(cached) == len(live) == 8
    assert cached == pytest.approx(live, rel=1e-5, abs=1e-6)
    # and the two runs really read different sources
    assert json.loads((ws / "pretrain/tier1/dit.json").read_text())["latents"]["kind"] == "cache"
    assert json.loads((ws / "pretrain/tier1_live/dit.json").read_text())["latents"]["kind"] == "on_the_fly"


def test_tiers_chain_lower_their_grid_and_log_curves(chain):
    ws, results = chain
    names = ["pretrain.tier1", "pretrain.tier2", "pretrain.tier3"]
    for i, name in enumerate(names):
        metrics, tracker = results[name]
        out = ws / "pretrain" / name.split(".")[1]
        assert metrics["step"] == 8
        assert metrics["val_grid_mean_last"] < metrics["val_grid_mean_first"], (name, metrics)
        grid_steps = [step for step, m in tracker.metrics if "val/loss/mean" in m]
        assert grid_steps == [0, 4, 8]
        logged = [m for _, m in tracker.metrics if "val/loss/mean" in m][-1]
        assert set(logged) == {"val/loss/32pxx9", "val/loss/32pxx1", "val/loss/mean"}  # 64px: no clip
        assert logged["val/loss/mean"] == pytest.approx((logged["val/loss/32pxx9"] + logged["val/loss/32pxx1"]) / 2)
        curves = json.loads((out / "val_grid.json").read_text())
        assert [e["step"] for e in curves["evaluations"]] == [0, 4, 8] and len(curves["t"]) == 10
        assert curves["weights"] == "ema"
        assert len(curves["clips"]["32pxx9"]) == 1 and curves["clips"]["64pxx9"] == []
        assert {"model.safetensors", "ema.safetensors", "dit.json", "metrics.json"} <= {p.name for p in out.iterdir()}
        if i == 0:
            continue
        prev = ws / "pretrain" / names[i - 1].split(".")[1]
        init = json.loads((out / "init.json").read_text())
        assert init["source"] == str(prev / "ema.safetensors") and init["new"] == {}
        # step 0 of a tier is its predecessor's last: the grid is on the EMA weights, which the tier exports and
        # the next one starts from, so the same weights give the same grid, to the bit
        before = json.loads((prev / "val_grid.json").read_text())["evaluations"][-1]["loss"]
        assert curves["evaluations"][0]["loss"] == before
    first = load_safetensors(ws / "pretrain/tier1/model.safetensors")
    assert any(not torch.equal(v, load_safetensors(ws / "dit/adapt8/model.safetensors")[k]) for k, v in first.items())


def test_heldout_clips_are_in_the_grid_and_not_in_training(chain):
    ws, _ = chain
    cfg = config("pretrain.tier1", ws, [])
    table, held = training_table(str(ws / "data/ingest/metadata.parquet"), cfg)
    grid_clip = json.loads((ws / "pretrain/tier1/val_grid.json").read_text())["clips"]["32pxx9"][0]
    assert held == 1 and len(table) == 4  # 4 videos + 1 image, one video held out
    assert grid_clip not in set(table["clip_id"]) and heldout_score(grid_clip, SALT) < heldout_fraction(ws)


def test_eval_loss_writes_the_grid_json_and_heat_map(chain):
    ws, results = chain
    metrics, tracker = results["eval.loss"]
    doc = json.loads((ws / "eval/loss/loss.json").read_text())
    assert doc["t"] == pytest.approx([(i + 0.5) / 10 for i in range(10)]) and doc["points"] == 10
    assert doc["cells"] == ["32pxx9", "32pxx1", "64pxx9"] and doc["weights"] == "ema"
    cells = doc["scores"]["cells"]
    assert cells["64pxx9"] == {"value": None, "reason": "no held-out clip fits this cell"}
    for name in ("32pxx9", "32pxx1"):
        per_t = doc["scores"]["per_timestep"][name]
        assert len(per_t) == 10 and cells[name]["value"] == pytest.approx(sum(per_t) / 10)
    assert doc["scores"]["mean"] == pytest.approx((cells["32pxx9"]["value"] + cells["32pxx1"]["value"]) / 2)
    assert metrics["mean"] == pytest.approx(doc["scores"]["mean"])
    assert (ws / "eval/loss/loss_grid.png").stat().st_size > 0
    assert ("plots" in {where for _, where in tracker.artifacts})
    # what the evaluation report and the registry gate read
    read = read_stage(ws, "eval.loss")
    assert read.metrics["eval.loss/mean"] == pytest.approx(doc["scores"]["mean"])
    assert read.not_computed == {"eval.loss/cells.64pxx9": "no held-out clip fits this cell"}
    assert len(read.series["eval.loss/per_timestep.32pxx9"]) == 10


def test_grid_batches_have_the_cell_shapes(chain):
    ws, _ = chain
    cfg = config("pretrain.tier1", ws, [])
    codec = load_video_codec(ws / "vae/stage3", "cpu")
    cache = LatentCache(ws / CACHE_OUTPUT)
    latents = CacheOrEncode(cache, OnTheFlyLatents(codec, memo=False))
    captions = caption_embeddings(cfg.text, cfg.text_cache, "tiny", ws)
    grid = build_grid(cfg.val, cfg.val.cell_list(), ws, latents, captions, cfg.seed, codec.stride)
    video, image, empty = (Cell("32px", 9), Cell("32px", 1), Cell("64px", 9))
    # the held-out 40x48 video: aspect 0.83 -> the 0.75 bucket of 32px, 24x32 pixels = 3x4 latents
    (batch,) = grid.batches[video]
    assert tuple(batch["x0"].shape) == (1, 4, 3, 3, 4)  # 9 frames -> 1 + 2 latent frames
    assert batch["y"].shape == (1, 8, 384) and batch["num_frames"].tolist() == [9]
    (batch,) = grid.batches[image]  # the same video gives one frame to the image cell
    assert tuple(batch["x0"].shape) == (1, 4, 1, 3, 4) and batch["fps"].tolist() == [120.0]
    assert grid.batches[empty] == [] and grid.empty_cells() == [empty]
    # both from the cache: the clip's 9-frame training bucket, and the frame it gives the 1-frame buckets (the
    # profile's video_frames_as_images; the cache plans every clip of the table, the held-out ones included)
    assert grid.latents == {"cached": 2, "encoded": 0}
