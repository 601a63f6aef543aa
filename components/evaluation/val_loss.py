"""Stage eval.loss: the Open-Sora validation-loss grid of a trained DiT on held-out clips (RECIPE §8).

Rectified-flow loss averaged over 10 equidistant timesteps for each (resolution, length) cell of the profile's
pretraining buckets (components/dit/val_grid.py: the same cells, clips, timesteps and noise as the curves the
pretrain.* stages log). Writes loss.json (scores under `scores`: `mean` and `cells.<res>x<frames>`, the loss per
timestep as lists) and a heat map (rows: resolutions, columns: lengths), both logged to MLflow.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from components.config import StageConfig
from components.dit.latent_cache import LatentCache, LatentCacheError
from components.dit.latent_stage import vae_identity
from components.dit.latents import OnTheFlyLatents
from components.dit.pretrain_config import Cell, GridConfig, profile_cells
from components.dit.val_grid import CacheOrEncode, GridResult, build_grid, evaluate_grid, grid_objective
from components.model_source import load_dit, resolve_model
from components.stage import StageContext, stage
from components.tracking import NoopTracker

OUTPUT = "eval/loss"
REPORT = "loss.json"
HEATMAP = "loss_grid.png"


class ValLossConfig(StageConfig):
    """eval.loss: the DiT (folder, MLflow run or registered model), its weights and the grid."""

    model: str = "pretrain/tier3"  # components/model_source.py reference
    weights: Literal["model", "ema"] = "ema"  # the EMA weights are the pretrained model's final ones
    vae: str | None = None  # None: the VAE recorded in the model's dit.json
    latent_cache: str | None = "cache/latents"  # serve held-out latents from it when it holds them (same VAE)
    grid: GridConfig = GridConfig()  # grid.cells unset: every cell of the profile's pretrain.* buckets
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


def val_loss_inputs(cfg: ValLossConfig, ws: Path) -> dict[str, str]:
    """A model folder's weights are checked before any work (run ids and registry refs resolve at run time)."""
    from components.evaluation.adherence_stage import is_reference

    if is_reference(cfg.model):
        return {}
    folder = Path(cfg.model) if Path(cfg.model).is_absolute() else ws / cfg.model
    return {"model": str(folder / ("model.safetensors" if cfg.weights == "model" else "ema.safetensors"))}


def _cache(cfg: ValLossConfig, ws: Path, codec: Any, vae_dir: Path) -> LatentCache | None:
    """The latent cache when it exists and was built with this model's VAE; None otherwise (all encoded)."""
    if cfg.latent_cache is None:
        return None
    folder = Path(cfg.latent_cache) if Path(cfg.latent_cache).is_absolute() else ws / cfg.latent_cache
    if not (folder / "cache.json").exists():
        return None
    try:
        return LatentCache(folder, expect_vae=vae_identity(vae_dir, codec)["version"])
    except LatentCacheError:
        return None


def heatmap(loss: dict[str, float], cells: list[Cell], path: Path, title: str) -> Path:
    """Loss per cell as a heat map: resolutions (rows, largest on top) x lengths (columns); blank: no clip."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(dict.fromkeys(c.resolution for c in cells))
    cols = sorted({c.num_frames for c in cells})
    grid = np.full((len(rows), len(cols)), np.nan)
    for c in cells:
        if loss.get(c.name) is not None:
            grid[rows.index(c.resolution), cols.index(c.num_frames)] = loss[c.name]
    fig = Figure(figsize=(1.2 + 1.1 * len(cols), 1.0 + 0.6 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    low, high = (np.nanmin(grid), np.nanmax(grid)) if not np.isnan(grid).all() else (0.0, 0.0)
    for (i, j), value in np.ndenumerate(grid):
        bright = not np.isnan(value) and (value - low) > 0.6 * (high - low)  # viridis is light at the top
        ax.text(j, i, "—" if np.isnan(value) else f"{value:.3f}", ha="center", va="center", fontsize=7,
                color="gray" if np.isnan(value) else ("black" if bright else "white"))
    ax.set_xticks(range(len(cols)), ["image" if f == 1 else f"{f}f" for f in cols], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def report(cfg: ValLossConfig, result: GridResult, grid: Any, folder: Path) -> dict[str, Any]:
    """loss.json: scores (mean, per cell, per timestep), the timesteps, the clips of each cell and the settings."""
    cells = {name: {"value": value, "samples": result.samples[name]} for name, value in result.loss.items()}
    empty = {c.name: {"value": None, "reason": "no held-out clip fits this cell"} for c in grid.empty_cells()}
    return {"scores": {"mean": result.mean, "cells": cells | empty, "per_timestep": result.per_t},
            "t": result.t, "points": cfg.grid.points, "cells": [c.name for c in grid.cells],
            "clips": {c.name: ids for c, ids in grid.clips.items()}, "tables": grid.sources,
            "latents": grid.latents, "model": str(folder), "model_ref": cfg.model, "weights": cfg.weights,
            "seed": cfg.grid.seed, "heldout": {"fraction": cfg.grid.heldout_fraction, "salt": cfg.grid.heldout_salt}}


@stage("eval.loss", config=ValLossConfig, output=OUTPUT, inputs=val_loss_inputs)
def eval_loss(ctx: StageContext) -> dict[str, float]:
    """Validation-loss grid (10 equidistant t per resolution x length cell) of a DiT on held-out clips."""
    from components.training.engine import pick_device

    cfg: ValLossConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    ws, out = Path(ctx.workspace), Path(ctx.out)
    device = pick_device(ctx.local_rank) if cfg.device == "auto" else cfg.device
    folder = resolve_model(cfg.model, ws)
    bundle = load_dit(folder, ws, cfg.vae, cfg.weights, device)
    cells = cfg.grid.cell_list() or profile_cells(ctx.profile)
    latents = CacheOrEncode(_cache(cfg, ws, bundle.codec, bundle.vae_dir), OnTheFlyLatents(bundle.codec, memo=False))
    grid = build_grid(cfg.grid, cells, ws, latents, bundle.captions, cfg.seed, bundle.codec.stride)
    if not any(grid.clips.values()):
        raise ValueError(f"eval.loss: no held-out clip of {grid.sources} fits any cell of "
                         f"{[c.name for c in cells]} (heldout_fraction={cfg.grid.heldout_fraction})")
    objective = grid_objective(bundle.diffusion, bundle.model.cfg.learn_sigma, cfg.grid.points)
    to_device = lambda batch: {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}  # noqa: E731
    result = evaluate_grid(objective, bundle.model, grid, cfg.grid.seed, to_device)
    doc = report(cfg, result, grid, folder)
    (out / REPORT).write_text(json.dumps(doc, indent=2) + "\n")
    png = heatmap(result.loss, cells, out / HEATMAP, f"validation loss, {folder.name} ({cfg.weights})")
    tracker.log_dict(doc, REPORT)
    tracker.log_artifact(png, "plots")
    tracker.log_metrics(result.metrics(prefix="val/loss/"))
    metrics = {"mean": float(result.mean)} | {f"cells/{k}": float(v) for k, v in result.loss.items()}
    return metrics | {"latents_encoded": float(grid.latents["encoded"])}
