"""Stages dit.stage0 and dit.adapt1..8: from an image DiT to a video DiT (Open-Sora 1.2 §4.2, RECIPE §5).

dit.stage0  tiny: a small image STDiT (no QK-norm, no temporal blocks, learned sigma, DDPM like PixArt) trained
            on frames and images in the tiny 2D VAE's latents; it stands in for PixArt-Σ. full: PixArt-Σ 2K
            converted from the weights store (mode import, no training), so every profile's adapt1 starts from
            workspace/dit/stage0 and DVC tracks the imported weights like any stage output.
dit.adaptN  the previous stage's export + one change (configs/<profile>/dit.yaml): 1 multi-resolution images,
            2 QK-norm, 3 rectified flow, 4 logit-normal + resolution-aware t, 5 AdamW eps 1e-15, 6 video VAE
            latents + fps conditioning, 7 zero-initialised temporal blocks on images, 8 frame masks on videos.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from components.config import ConfigError
from components.data.video_table import resolve_table
from components.dit.captions import CaptionEmbeddings, caption_embeddings
from components.dit.config import DiTStageConfig
from components.dit.data import build_data, load_caption_table, without_heldout
from components.dit.latents import EXPORT_WEIGHTS, LatentSource, OnTheFlyLatents, build_codec
from components.dit.model_io import (EMA_FILE, MODEL_FILE, InitReport, build_model, export_model, load_export,
                                     load_pixart_weights)
from components.dit.objective import Objective
from components.dit.samples import SampleWriter, write_loss_curve
from components.training.stale import guard_checkpoints, recipe_digest
from components.dit.text_encoders import apply_null_caption
from components.dit.trainer import DiTTrainer
from components.hashing import content_hash
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.training.checkpoint import Checkpointer
from components.training.engine import DistInfo, build_engine, pick_device
from models.diffusion import MASK_PRESETS
from models.stdit import STDiT

INIT_REPORT = "init.json"
LOSS_CURVE = "loss_curve.png"


def dit_inputs(cfg: DiTStageConfig, ws: Path) -> dict[str, str]:
    """The clip table, the VAE export and the export this stage starts from (checked before any work)."""
    inputs: dict[str, str] = {}
    if cfg.mode == "train":
        inputs["clips"] = resolve_table(cfg.data.tables, ws)
        if cfg.vae.source == "export":
            inputs["vae"] = str(ws / cfg.vae.dir / EXPORT_WEIGHTS)
    if cfg.init.kind == "stage":
        inputs["init"] = str(ws / cfg.init.stage / (MODEL_FILE if cfg.init.weights == "model" else EMA_FILE))
    return inputs


def initialise(cfg: DiTStageConfig, ctx: StageContext, captions: CaptionEmbeddings | None) -> tuple[STDiT, InitReport]:
    """The stage's STDiT: fresh (with the text encoder's null caption), from the previous export, or PixArt-Σ."""
    model = build_model(cfg.model, cfg.seed)
    if cfg.init.kind == "stage":
        return model, load_export(model, ctx.workspace / cfg.init.stage, cfg.init.weights)
    if cfg.init.kind == "pixart":
        return model, load_pixart_weights(model, ctx.profile, cfg.init.pixart)
    if captions is not None:
        apply_null_caption(model, captions.encoder.null_embedding())
    return model, InitReport(source="random", loaded=0)


def check_shapes(cfg: DiTStageConfig, captions: CaptionEmbeddings, codec: Any, model: STDiT) -> None:
    """The text encoder and VAE must fit the model's input widths (a recipe mixing sizes fails here, by field)."""
    if captions.dim != cfg.model.caption_channels:
        raise ConfigError(f"model.caption_channels={cfg.model.caption_channels} but the {cfg.text.kind} text encoder "
                          f"gives {captions.dim}")
    if codec.channels != model.cfg.in_channels or codec.stride != cfg.model.vae_spatial_stride:
        raise ConfigError(f"the VAE ({cfg.vae.kind}, {cfg.vae.dir}) gives {codec.channels} channels at stride "
                          f"{codec.stride}; the model takes {model.cfg.in_channels} at model.vae_spatial_stride="
                          f"{cfg.model.vae_spatial_stride}")


def stage_info(ctx: StageContext, cfg: DiTStageConfig, init: InitReport, step: int) -> dict[str, Any]:
    """What dit.json records beside the STDiT config: enough for the next stage and for sampling later."""
    return {"stage": ctx.name, "profile": ctx.profile, "step": step, "diffusion": cfg.diffusion.model_dump(),
            "vae": cfg.vae.model_dump(), "text": cfg.text.model_dump(), "init": init.source}


def import_stage(ctx: StageContext) -> dict[str, Any]:
    """mode import (full dit.stage0): convert the init weights into the image STDiT and export them."""
    cfg: DiTStageConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    model, init = initialise(cfg, ctx, None)
    if ctx.is_main:
        export_model(ctx.out, model, None, stage_info(ctx, cfg, init, 0))
        (ctx.out / INIT_REPORT).write_text(json.dumps(init.to_dict(), indent=2) + "\n")
        tracker.log_dict(init.to_dict(), INIT_REPORT)
    return {"loaded": init.loaded, "kept_init": len(init.new)}


def run_dit_stage(ctx: StageContext) -> dict[str, Any]:
    """Train (or import) one DiT stage, with the configured torch threads for its duration."""
    cfg: DiTStageConfig = ctx.cfg
    if cfg.mode == "import":
        return import_stage(ctx)
    threads = torch.get_num_threads()
    if cfg.torch_threads is not None and pick_device(ctx.local_rank).type == "cpu":
        torch.set_num_threads(cfg.torch_threads)
    try:
        return train_stage(ctx)
    finally:
        torch.set_num_threads(threads)


def train_stage(ctx: StageContext, latents: LatentSource | None = None,
                captions: CaptionEmbeddings | None = None) -> dict[str, Any]:
    """Train one DiT stage with DiTTrainer (DDP or ZeRO-2) and export its weights into ctx.out.

    latents / captions: where samples come from (default: encoded on the fly with the stage's VAE, captions
    through the text cache); a latent cache (cache.latents) plugs in here.
    """
    cfg: DiTStageConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    info = DistInfo(rank=ctx.rank, world_size=ctx.world_size, local_rank=ctx.local_rank)
    device = pick_device(ctx.local_rank)
    captions = captions or caption_embeddings(cfg.text, cfg.text_cache, ctx.profile, ctx.workspace)
    codec = build_codec(cfg.vae, ctx.workspace, ctx.profile, device)  # samples are decoded with it too
    model, init = initialise(cfg, ctx, captions)
    check_shapes(cfg, captions, codec, model)
    source = ctx.inputs["clips"]
    table, held = without_heldout(load_caption_table(source), cfg.heldout_fraction, cfg.heldout_salt, source)
    data = build_data(table, cfg.data, latents or OnTheFlyLatents(codec, cfg.vae.memo), captions, cfg.seed,
                      ctx.rank, ctx.world_size, cfg.eval_samples, codec.stride, source)
    if ctx.is_main:
        tracker.log_params({f"data_{k}": v for k, v in data.summary.items()}
                           | {"data_heldout": held, "init_source": init.source, "init_loaded": init.loaded, "init_new": len(init.new)})
        tracker.log_dataset(name="dit-clips", source=source, digest=content_hash(source), context="training")
    objective = Objective(cfg.diffusion, cfg.model.learn_sigma)
    guard_checkpoints(ctx.checkpoint_dir, ctx.inputs, ctx.rank, recipe_digest(cfg))
    engine = build_engine(cfg, model, info)
    samples = SampleWriter(cfg.sample, objective, codec, captions, ctx.out / "samples", tracker,
                           cfg.data.image_fps) if ctx.is_main else None
    checkpointer = Checkpointer(ctx.checkpoint_dir, cfg.keep_checkpoints, ctx.rank, ctx.world_size)
    trainer = DiTTrainer(cfg, model, data.batches, engine, checkpointer, tracker, info, objective=objective,
                         mask_ratios=MASK_PRESETS[cfg.mask] if cfg.mask != "none" else None,
                         eval_batches=data.eval_batches, samples=samples)
    try:
        result = trainer.train()
        if ctx.is_main:
            ema = trainer.ema.state_dict() if trainer.ema is not None else None
            export_model(ctx.out, engine.module, ema, stage_info(ctx, cfg, init, result["step"]))
            _report(ctx, trainer, init, result, samples)
    finally:
        engine.close()
    history = trainer.history
    return {"loss_first": result["loss_first"], "loss_last": result["loss_last"], "step": result["step"],
            "val_loss_first": history.get("val_first"), "val_loss_last": history.get("val_last")}


def _report(ctx: StageContext, trainer: DiTTrainer, init: InitReport, result: dict[str, Any],
            samples: SampleWriter) -> None:
    """Rank 0: init report, loss curve and metrics.json in the output, logged to the run."""
    tracker = ctx.tracker or NoopTracker()
    history = trainer.history
    curve = write_loss_curve(history.get("loss_curve", []), history.get("val_curve", []), ctx.out / LOSS_CURVE,
                             ctx.name)
    tracker.log_artifact(curve, "plots")
    (ctx.out / INIT_REPORT).write_text(json.dumps(init.to_dict(), indent=2) + "\n")
    metrics = {**result, "val_loss_first": history.get("val_first"), "val_loss_last": history.get("val_last"),
               "loss_curve": history.get("loss_curve", []), "val_curve": history.get("val_curve", []),
               "samples": [str(p.relative_to(ctx.out)) for p in samples.written]}
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    tracker.log_dict(init.to_dict(), INIT_REPORT)


def _spec(name: str) -> dict[str, Any]:
    return {"config": DiTStageConfig, "output": f"dit/{name.split('.')[1]}", "inputs": dit_inputs}


@stage("dit.stage0", **_spec("dit.stage0"))
def dit_stage0(ctx: StageContext) -> dict[str, Any]:
    """Train the tiny image DiT (DDPM, learned sigma) in the 2D VAE's latents; full: import PixArt-Σ."""
    return run_dit_stage(ctx)


@stage("dit.adapt1", **_spec("dit.adapt1"))
def dit_adapt1(ctx: StageContext) -> dict[str, Any]:
    """Multi-resolution image generation (bucketed resolutions and aspect ratios)."""
    return run_dit_stage(ctx)


@stage("dit.adapt2", **_spec("dit.adapt2"))
def dit_adapt2(ctx: StageContext) -> dict[str, Any]:
    """Add QK-norm (RMSNorm on queries and keys, weight 1)."""
    return run_dit_stage(ctx)


@stage("dit.adapt3", **_spec("dit.adapt3"))
def dit_adapt3(ctx: StageContext) -> dict[str, Any]:
    """Switch DDPM to rectified flow (velocity target; the variance half of the output is ignored)."""
    return run_dit_stage(ctx)


@stage("dit.adapt4", **_spec("dit.adapt4"))
def dit_adapt4(ctx: StageContext) -> dict[str, Any]:
    """Logit-normal and resolution-aware timestep sampling."""
    return run_dit_stage(ctx)


@stage("dit.adapt5", **_spec("dit.adapt5"))
def dit_adapt5(ctx: StageContext) -> dict[str, Any]:
    """AdamW eps 1e-15 with QK-norm."""
    return run_dit_stage(ctx)


@stage("dit.adapt6", **_spec("dit.adapt6"))
def dit_adapt6(ctx: StageContext) -> dict[str, Any]:
    """Video VAE latents (per-channel normalised) and fps conditioning (zero-initialised)."""
    return run_dit_stage(ctx)


@stage("dit.adapt7", **_spec("dit.adapt7"))
def dit_adapt7(ctx: StageContext) -> dict[str, Any]:
    """Zero-initialised temporal blocks, trained on images."""
    return run_dit_stage(ctx)


@stage("dit.adapt8", **_spec("dit.adapt8"))
def dit_adapt8(ctx: StageContext) -> dict[str, Any]:
    """Frame-mask strategy (UL2-style conditioning) on videos."""
    return run_dit_stage(ctx)
