"""Stages pretrain.tier1 → tier2 → tier3: quality-tiered pretraining (Open-Sora 1.2 §4.3, RECIPE §7).

Each tier trains the video DiT on its curated tier table with its own bucket config (tier 1 low resolution,
tier 2 mid, tier 3 high with the stage-3 masks), images and videos jointly, with EMA, starting from the
previous export (tier 1 from dit.adapt8). Latents and caption embeddings come from the latent cache
(cache.latents) behind the same LatentSource interface as on-the-fly encoding, so the trainer is unchanged;
held-out clips (components/evaluation/clips.py rule) are left out of training and form the validation grid,
logged as curves val/loss/<res>x<frames> and val/loss/mean.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from components.data.video_table import resolve_table
from components.dit.captions import CaptionEmbeddings, caption_embeddings
from components.dit.data import build_data, load_caption_table, without_heldout
from components.dit.latent_cache import INDEX, META, LatentCache
from components.dit.latent_stage import vae_identity
from components.dit.latents import EXPORT_WEIGHTS, LatentCodec, LatentSource, OnTheFlyLatents, build_codec
from components.dit.model_io import EMA_FILE, MODEL_FILE, export_model
from components.dit.objective import Objective
from components.dit.pretrain_config import PretrainConfig, profile_cells
from components.dit.pretrain_trainer import PretrainTrainer
from components.dit.samples import SampleWriter, write_loss_curve
from components.dit.stages import INIT_REPORT, check_shapes, stage_info, initialise
from components.training.stale import guard_checkpoints, recipe_digest
from components.dit.val_grid import CacheOrEncode, GridBatches, build_grid, grid_objective
from components.evaluation.val_loss import heatmap
from components.hashing import content_hash
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.training.checkpoint import Checkpointer
from components.training.engine import DistInfo, build_engine, pick_device
from models.diffusion import MASK_PRESETS

log = logging.getLogger(__name__)
VAL_GRID = "val_grid.json"
GRID_PLOT = "val_grid.png"
LOSS_CURVE = "loss_curve.png"


def _ws_path(ws: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else Path(ws) / path


def pretrain_inputs(cfg: PretrainConfig, ws: Path) -> dict[str, str]:
    """The tier table, the VAE export, the weights it starts from and (cache mode) the latent cache's index."""
    inputs = {"clips": resolve_table(cfg.data.tables, ws), "vae": str(_ws_path(ws, cfg.vae.dir) / EXPORT_WEIGHTS)}
    if cfg.init.kind == "stage":
        inputs["init"] = str(ws / cfg.init.stage / (MODEL_FILE if cfg.init.weights == "model" else EMA_FILE))
    if cfg.latents.kind == "cache":
        folder = _ws_path(ws, cfg.latents.dir)
        inputs |= {"cache_index": str(folder / INDEX), "cache_meta": str(folder / META)}
    return inputs


def latent_source(cfg: PretrainConfig, ws: Path, codec: LatentCodec,
                  on_the_fly_captions: CaptionEmbeddings) -> tuple[LatentSource, CaptionEmbeddings, LatentCache | None]:
    """Training latents and captions: the cache (checked against this stage's VAE) or on-the-fly encoding."""
    if cfg.latents.kind == "on_the_fly":
        return OnTheFlyLatents(codec, cfg.vae.memo), on_the_fly_captions, None
    version = vae_identity(_ws_path(ws, cfg.vae.dir), codec)["version"]
    cache = LatentCache(_ws_path(ws, cfg.latents.dir), expect_vae=version)
    return cache, cache.captions(), cache


def training_table(source: str, cfg: PretrainConfig) -> tuple[pd.DataFrame, int]:
    """The tier table without the clips the validation grid holds out; and how many were held out."""
    return without_heldout(load_caption_table(source), cfg.heldout_fraction, cfg.heldout_salt, source)


def _log_start(ctx: StageContext, cfg: PretrainConfig, source: str, held: int, data_summary: dict, init: Any,
               grid: Any) -> None:
    tracker = ctx.tracker or NoopTracker()
    fallback = str(source) != str(_ws_path(ctx.workspace, cfg.data.tables[0]))
    tracker.log_params({f"data_{k}": v for k, v in data_summary.items()}
                       | {"data_table": source, "data_heldout": held, "init_source": init.source,
                          "init_loaded": init.loaded, "init_new": len(init.new), "latent_source": cfg.latents.kind})
    tags = {"reelforge.pretrain.tier": cfg.tier, "reelforge.pretrain.latents": cfg.latents.kind}
    if fallback:  # curation has not written its tier: say so, never silently
        tags["reelforge.pretrain.table_fallback"] = f"{cfg.data.tables[0]} is missing; trained on {source}"
        log.warning("%s: %s is missing; training on %s", ctx.name, cfg.data.tables[0], source)
    tracker.set_tags(tags)
    tracker.log_dataset(name=f"pretrain-{cfg.tier}", source=source, digest=content_hash(source), context="training")
    if grid is not None:
        tracker.log_params({"val_grid_cells": ",".join(c.name for c in grid.cells if grid.clips[c]),
                            "val_grid_empty_cells": ",".join(c.name for c in grid.empty_cells()),
                            "val_grid_latents_cached": grid.latents["cached"],
                            "val_grid_latents_encoded": grid.latents["encoded"]})


def run_pretrain_stage(ctx: StageContext) -> dict[str, Any]:
    """Train one tier, with the configured torch threads for its duration."""
    threads = torch.get_num_threads()
    if ctx.cfg.torch_threads is not None and pick_device(ctx.local_rank).type == "cpu":
        torch.set_num_threads(ctx.cfg.torch_threads)
    try:
        return train_tier(ctx)
    finally:
        torch.set_num_threads(threads)


@dataclass
class TierRun:
    """A tier ready to train: its trainer (over the engine), how it was initialised, its grid and sample writer."""

    trainer: PretrainTrainer
    engine: Any
    init: Any
    grid: GridBatches | None
    samples: SampleWriter | None


def prepare_tier(ctx: StageContext, evaluate: bool = True) -> TierRun:
    """Model, data, engine and trainer of one tier; `evaluate` False leaves out the grid and the samples."""
    cfg: PretrainConfig = ctx.cfg
    ws = Path(ctx.workspace)
    info = DistInfo(rank=ctx.rank, world_size=ctx.world_size, local_rank=ctx.local_rank)
    device = pick_device(ctx.local_rank)
    codec = build_codec(cfg.vae, ws, ctx.profile, device)
    text = caption_embeddings(cfg.text, cfg.text_cache, ctx.profile, ws)  # lazy: loads only on a miss
    latents, captions, cache = latent_source(cfg, ws, codec, text)
    model, init = initialise(cfg, ctx, captions)
    check_shapes(cfg, captions, codec, model)
    source = ctx.inputs["clips"]
    table, held = training_table(source, cfg)
    data = build_data(table, cfg.data, latents, captions, cfg.seed, ctx.rank, ctx.world_size, cfg.eval_samples,
                      codec.stride, source)
    grid = None
    if ctx.is_main and evaluate:
        cells = cfg.val.cell_list() if cfg.val.cells is not None else profile_cells(ctx.profile)
        grid_latents = CacheOrEncode(cache, OnTheFlyLatents(codec, memo=False))
        grid = build_grid(cfg.val, cells, ws, grid_latents, text, cfg.seed, codec.stride)
    if ctx.is_main:
        _log_start(ctx, cfg, source, held, data.summary, init, grid)
    objective = Objective(cfg.diffusion, cfg.model.learn_sigma)
    guard_checkpoints(ctx.checkpoint_dir, ctx.inputs, ctx.rank, recipe_digest(cfg))
    engine = build_engine(cfg, model, info)
    tracker = ctx.tracker or NoopTracker()
    samples = SampleWriter(cfg.sample, objective, codec, text, ctx.out / "samples", tracker,
                           cfg.data.image_fps) if ctx.is_main and evaluate else None
    checkpointer = Checkpointer(ctx.checkpoint_dir, cfg.keep_checkpoints, ctx.rank, ctx.world_size)
    trainer = PretrainTrainer(cfg, model, data.batches, engine, checkpointer, tracker, info, objective=objective,
                              mask_ratios=MASK_PRESETS[cfg.mask] if cfg.mask != "none" else None,
                              eval_batches=data.eval_batches, samples=samples, grid=grid,
                              grid_objective=grid_objective(cfg.diffusion, cfg.model.learn_sigma, cfg.val.points),
                              grid_seed=cfg.val.seed, grid_every=cfg.val.every)
    return TierRun(trainer, engine, init, grid, samples)


def train_tier(ctx: StageContext) -> dict[str, Any]:
    """Train one tier with PretrainTrainer (DDP or ZeRO-2) and export model + EMA into ctx.out."""
    cfg: PretrainConfig = ctx.cfg
    run = prepare_tier(ctx)
    trainer = run.trainer
    try:
        result = trainer.train()
        if ctx.is_main:
            ema = trainer.ema.state_dict() if trainer.ema is not None else None
            info = stage_info(ctx, cfg, run.init, result["step"]) | {"tier": cfg.tier,
                                                                      "latents": cfg.latents.model_dump()}
            export_model(ctx.out, run.engine.module, ema, info)
            _report(ctx, trainer, run.init, result, run.samples, run.grid)
    finally:
        run.engine.close()
    return _summary(trainer.history, result)


def _summary(history: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The stage's metrics: train loss, fixed-batch val loss, and the grid's mean and cells, first and last."""
    out = {"loss_first": result["loss_first"], "loss_last": result["loss_last"], "step": result["step"],
           "val_loss_first": history.get("val_first"), "val_loss_last": history.get("val_last")}
    grids = history.get("val_grid") or []
    if grids:
        out |= {"val_grid_mean_first": grids[0]["mean"], "val_grid_mean_last": grids[-1]["mean"]}
        out |= {f"val_grid_last/{name}": value for name, value in grids[-1]["loss"].items()}
    return out


def _report(ctx: StageContext, trainer: PretrainTrainer, init: Any, result: dict[str, Any],
            samples: SampleWriter, grid: Any) -> None:
    """Rank 0: the grid curves (JSON), the loss curve, init report and metrics.json, logged to the run."""
    tracker = ctx.tracker or NoopTracker()
    history = trainer.history
    curves = {"t": history.get("val_grid_t", []), "weights": trainer.grid_weights,
              "evaluations": history.get("val_grid", []),
              "clips": {c.name: ids for c, ids in grid.clips.items()}, "tables": grid.sources,
              "latents": grid.latents}
    (ctx.out / VAL_GRID).write_text(json.dumps(curves, indent=2) + "\n")
    tracker.log_dict(curves, VAL_GRID)
    if history.get("val_grid"):
        last = history["val_grid"][-1]
        title = f"{ctx.name}: validation loss, step {last['step']}"
        png = heatmap(last["loss"], grid.cells, ctx.out / GRID_PLOT, title)
        tracker.log_artifact(png, "plots")
    val = [[e["step"], e["mean"]] for e in history.get("val_grid", []) if e["mean"] is not None]
    curve = write_loss_curve(history.get("loss_curve", []), val, ctx.out / LOSS_CURVE,
                             f"{ctx.name} (val: grid mean)")
    tracker.log_artifact(curve, "plots")
    (ctx.out / INIT_REPORT).write_text(json.dumps(init.to_dict(), indent=2) + "\n")
    metrics = {**_summary(history, result), "loss_curve": history.get("loss_curve", []),
               "samples": [str(p.relative_to(ctx.out)) for p in samples.written]}
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def _spec(name: str) -> dict[str, Any]:
    return {"config": PretrainConfig, "output": f"pretrain/{name.split('.')[1]}", "inputs": pretrain_inputs}


@stage("pretrain.tier1", **_spec("pretrain.tier1"))
def pretrain_tier1(ctx: StageContext) -> dict[str, Any]:
    """Tier 1: the broad, low-quality tier at low resolution, from dit.adapt8."""
    return run_pretrain_stage(ctx)


@stage("pretrain.tier2", **_spec("pretrain.tier2"))
def pretrain_tier2(ctx: StageContext) -> dict[str, Any]:
    """Tier 2: the aesthetic-filtered tier at mid resolution, from pretrain.tier1."""
    return run_pretrain_stage(ctx)


@stage("pretrain.tier3", **_spec("pretrain.tier3"))
def pretrain_tier3(ctx: StageContext) -> dict[str, Any]:
    """Tier 3: the curated high-quality tier at high resolution with 25% frame masking, from pretrain.tier2."""
    return run_pretrain_stage(ctx)
