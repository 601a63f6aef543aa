"""Stages vae.stage0..3: the video VAE of Open-Sora 1.2 trained in three stages (RECIPE §2), plus the tiny 2D VAE.

vae.stage0  the 2D VAE every later stage starts from. Tiny profile: trains the small 2D AutoencoderKL on frames
            (L1 + KL, + LPIPS when its weights exist), standing in for SDXL's, which no offline machine has.
            Full profile (spatial=sdxl): no training, exports SDXL's VAE from the weights store, so both profiles
            chain stage0 -> stage1 -> stage2 -> stage3 the same way (one DVC graph).
vae.stage1  2D frozen: L1 between the 2D latents and their temporal-VAE reconstruction, + identity on images.
vae.stage2  2D encoder trainable: the 2D-latent reconstruction only.
vae.stage3  pixel L1 + 0.1 LPIPS through the learnable log-variance + 1e-6 KL, random lengths 1..34; the tiny
            profile then measures the per-channel latent shift/scale and stores them with the weights.
Each stage starts from the previous one's export (workspace/vae/stageN).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.config import ConfigError
from components.data.video_dataset import build_loader
from components.data.video_table import load_clip_table, resolve_table
from components.hashing import content_hash
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.training.checkpoint import Checkpointer
from components.training.engine import DistInfo, build_engine, pick_device
from components.training.perceptual import Perceptual, build_perceptual
from components.training.stale import guard_checkpoints, recipe_digest
from components.training.vae_config import VAEStageConfig
from components.training.vae_model import EXPORT_WEIGHTS, VAETrainModule, build_vae, export_vae, set_trainable
from components.training.vae_stats import measure_latent_stats
from components.training.vae_trainer import VAETrainer
from components.training.vae_validation import Validator, validation_batch

PIXEL_STAGES = (0, 3)  # the stages whose loss sees pixels, so the only ones with a perceptual term


def vae_inputs(cfg: VAEStageConfig, ws: Path) -> dict[str, str]:
    """The clip table (curated when it exists, else the ingest metadata) and the export this stage starts from."""
    inputs = {"clips": resolve_table(cfg.data.tables, ws)}
    if cfg.init:
        inputs["init"] = str(ws / cfg.init / EXPORT_WEIGHTS)
    return inputs


def _record(tracker: Any, source: str, summary: dict, perceptual: Perceptual, counts: dict[str, int]) -> None:
    """What the run trained on and how: data counts, the table's digest, parameter counts, the perceptual term."""
    tracker.log_params({f"data_{k}": v for k, v in summary.items()} | counts |
                       {"perceptual_effective": perceptual.status})
    tags = {"reelforge.vae.perceptual": perceptual.status}
    if perceptual.status.startswith(("off", "ssim")):  # the recipe's term is LPIPS
        tags["reelforge.offline_standin"] = f"perceptual term: {perceptual.status}"
    tracker.set_tags(tags)
    tracker.log_dataset(name="vae-clips", source=source, digest=content_hash(source), context="training")


def run_vae_stage(ctx: StageContext, stage_number: int) -> dict[str, Any]:
    """Train one VAE stage with VAETrainer (DDP or ZeRO-2) and export the weights into ctx.out."""
    cfg: VAEStageConfig = ctx.cfg
    if stage_number == 0 and cfg.spatial == "sdxl":
        return import_sdxl(ctx)
    if stage_number == 0 and cfg.spatial != "random":
        raise ConfigError(f"vae.stage0: spatial must be random (train the tiny 2D VAE) or sdxl (import SDXL's), "
                          f"got {cfg.spatial}")
    tracker = ctx.tracker or NoopTracker()
    info = DistInfo(rank=ctx.rank, world_size=ctx.world_size, local_rank=ctx.local_rank)
    table = load_clip_table(ctx.inputs["clips"], cfg.data.heldout_fraction, cfg.data.heldout_salt,
                            cfg.data.min_frames)
    device = pick_device(ctx.local_rank)
    perceptual = build_perceptual(cfg.perceptual, ctx.profile, device) if stage_number in PIXEL_STAGES \
        else Perceptual(None, "unused: latent losses only")
    init = ctx.workspace / cfg.init if cfg.init else None
    vae = build_vae(cfg.model, cfg.spatial, init, ctx.profile, cfg.seed, cfg.posterior_logvar_init)
    counts = set_trainable(vae, cfg.trainable)
    if ctx.is_main:
        _record(tracker, table.source, table.summary(), perceptual, counts)
    module = VAETrainModule(vae, stage_number, cfg.logvar_init, cfg.sample_posterior)
    data = build_loader(table.train, cfg.data, cfg.seed, cfg.batch_size, ctx.rank, ctx.world_size, ctx.workspace)
    engine = build_engine(cfg, module, info)
    validator = None
    if ctx.is_main:
        batch = validation_batch(table.val, table.train, cfg.data, cfg.val_clips, cfg.seed)
        validator = Validator(batch, stage_number == 0, ctx.out / "samples", tracker, cfg.media_upscale,
                              cfg.media_fps)
    guard_checkpoints(ctx.checkpoint_dir, ctx.inputs, ctx.rank, recipe_digest(cfg))
    checkpointer = Checkpointer(ctx.checkpoint_dir, cfg.keep_checkpoints, ctx.rank, ctx.world_size)
    trainer = VAETrainer(cfg, module, data, engine, checkpointer, tracker, info, stage=stage_number,
                         perceptual=perceptual, validator=validator)
    try:
        result = trainer.train()
        if ctx.is_main:
            result |= _finish(ctx, stage_number, engine, table, perceptual, tracker)
    finally:
        data.close()
        engine.close()
    result["corrupt_skipped"] = trainer.history.get("corrupt_skipped", 0)
    result["val"] = trainer.history.get("val_last", {})
    result["terms"] = trainer.history.get("terms_last", {})
    if ctx.is_main:
        (ctx.out / "metrics.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    flat = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return flat | {k.replace("/", "_"): v for k, v in result["val"].items()}


def import_sdxl(ctx: StageContext) -> dict[str, Any]:
    """Full profile: SDXL's 2D VAE from the weights store becomes the stage-0 export (nothing to train)."""
    cfg: VAEStageConfig = ctx.cfg
    vae = build_vae(cfg.model, "sdxl", None, ctx.profile, cfg.seed)
    if ctx.is_main:
        export_vae(vae, ctx.out, {"model": cfg.model, "stage": 0, "source": "sdxl-vae (weights store)"},
                   parts=["spatial"])
        (ctx.tracker or NoopTracker()).set_tags({"reelforge.vae.spatial": "sdxl-vae from the weights store"})
    return {"imported": 1, "step": 0}


def _finish(ctx: StageContext, stage_number: int, engine: Any, table: Any, perceptual: Perceptual,
            tracker: Any) -> dict[str, Any]:
    """Rank 0: latent statistics (when asked) and the export of the weights."""
    cfg: VAEStageConfig = ctx.cfg
    vae = engine.module.vae
    out: dict[str, Any] = {}
    if cfg.latent_stats:
        stats_cfg = cfg.data.model_copy(update={"random_length": False, "image_ratio": 0.0, "num_workers": 0,
                                                 "crop": None})
        batches = build_loader(table.train, stats_cfg, cfg.seed + 1, cfg.batch_size, 0, 1, ctx.workspace)
        vae.eval()
        shift, scale = measure_latent_stats(vae, batches, cfg.latent_stats_batches, engine.to_device,
                                            engine.autocast)
        vae.set_latent_stats(shift, scale)
        out["latent_shift"], out["latent_scale"] = list(shift), list(scale)
        tracker.log_dict({"shift": shift, "scale": scale}, "latent_stats.json")
    meta = {"model": cfg.model, "stage": stage_number, "perceptual": perceptual.status,
            "latent_stats": "measured" if cfg.latent_stats else "config"}
    export_vae(vae, ctx.out, meta, parts=["spatial"] if stage_number == 0 else None)
    return out


@stage("vae.stage0", config=VAEStageConfig, output="vae/stage0", inputs=vae_inputs)
def vae_stage0(ctx: StageContext) -> dict[str, Any]:
    """Train the tiny profile's 2D AutoencoderKL on frames: L1 + KL (+ LPIPS when its weights are present)."""
    return run_vae_stage(ctx, 0)


@stage("vae.stage1", config=VAEStageConfig, output="vae/stage1", inputs=vae_inputs)
def vae_stage1(ctx: StageContext) -> dict[str, Any]:
    """Train the temporal VAE on frozen 2D latents: latent L1 + identity loss on images."""
    return run_vae_stage(ctx, 1)


@stage("vae.stage2", config=VAEStageConfig, output="vae/stage2", inputs=vae_inputs)
def vae_stage2(ctx: StageContext) -> dict[str, Any]:
    """Train the temporal VAE and the 2D encoder on the 2D-latent reconstruction."""
    return run_vae_stage(ctx, 2)


@stage("vae.stage3", config=VAEStageConfig, output="vae/stage3", inputs=vae_inputs)
def vae_stage3(ctx: StageContext) -> dict[str, Any]:
    """Train the whole video VAE on pixels (L1 + LPIPS + KL) at random lengths; measure the latent statistics."""
    return run_vae_stage(ctx, 3)
