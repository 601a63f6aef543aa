"""Helpers of the evaluation tests: the synthetic corpus with its ground truth, and a micro DiT export laid out as
pretrain.tier3 leaves it (model + EMA weights, dit.json, its manifest), ready to register and evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from components import manifest
from components.data.synth import SynthConfig, synthesize
from components.dit.model_io import EMA_FILE, MODEL_FILE
from components.training.checkpoint import export_safetensors, load_safetensors
from tests.unit.sampling_testing import write_dit_export

TIER3 = "pretrain/tier3"
EMA_NOISE = 0.01  # EMA = model + this x N(0, 1): close to the model, as after training
# micro sizes of each DiT eval stage (--set items), so a whole evaluate_flow runs in about a minute on 2 cores
MICRO = {
    "eval.adherence": ["samples=4", "steps=2", "resolution=32px", "num_frames=9", "grid_columns=2", "upscale=1",
                       "i2v_samples=2"],
    # the ingest table of tests.unit.dit_testing.write_corpus: every clip held out, one per 32px cell, 2 timesteps
    "eval.loss": ['grid.cells=[["32px", 9], ["32px", 1]]', "grid.tables=[data/ingest/metadata.parquet]",
                  "grid.heldout_fraction=1.0", "grid.max_clips=1", "grid.points=2", "latent_cache=null"],
    # no VBench weights offline: only temporal_flickering (pixels alone) is computed once RAFT's static filter,
    # whose weights are missing too, is off; one 9-frame video per prompt
    "eval.vbench": ["static_filter.enabled=false", "prompts_per_dimension=1", "videos_per_prompt=1",
                    "sampling.steps=2", "sampling.resolution=32px", "sampling.num_frames=9"],
}


def corpus(folder: Path) -> dict:
    """A two-video synthetic corpus; its ground_truth.json holds the held-out prompt combinations."""
    return synthesize(folder, SynthConfig(n_videos=2, n_images=1, plant_bad=False))


def write_tier3_export(ws: Path, seed: int = 0) -> Path:
    """pretrain/tier3 as the stage exports it: model.safetensors, ema.safetensors and dit.json (+ vae/stage3).

    The EMA weights are the model's plus small noise, so a stage that reads `ema` samples differently from one
    that reads `model`.
    """
    folder = write_dit_export(ws, TIER3, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    ema = {k: v + EMA_NOISE * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
           for k, v in load_safetensors(folder / MODEL_FILE).items()}
    export_safetensors(ema, folder / EMA_FILE, {"stage": "pretrain.tier3", "format": "stdit"})
    info = json.loads((folder / "dit.json").read_text())
    (folder / "dit.json").write_text(json.dumps({**info, "stage": "pretrain.tier3", "tier": 3}, indent=2) + "\n")
    return folder


def write_manifest(ws: Path, stage: str, folder: Path, run_id: str | None = None) -> dict:
    """The manifest a finished `reelforge stage run` leaves, which registry.training_tags reads."""
    doc = manifest.build(stage=stage, profile="tiny", params_hash="0" * 64, inputs={}, output_dir=folder,
                         run_id=run_id, git_commit="abc", wall_time_s=1.0, world_size=1, device="cpu", metrics={})
    manifest.write(manifest.path_for(ws, stage), doc)
    return doc

