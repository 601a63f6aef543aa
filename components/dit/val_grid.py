"""The validation-loss grid (Open-Sora 1.2, RECIPE §8): loss at equidistant t per (resolution, length) cell.

Clips: the held-out rule of components/evaluation/clips.py over the tier tables (the pretraining stages train
on everything else). A clip enters a cell when it has the pixels (min_pixel_ratio) and the frames; it is read at
its closest aspect ratio of that resolution, with the frames the DiT dataset gives it (fixed per seed and clip),
so a cache filled for training can serve it. Each cell's loss is the per-sample rectified-flow loss averaged
over `points` equidistant timesteps and the cell's clips, with noise fixed by the grid seed.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from components.data.aspect_ratios import get_resolution
from components.data.bucket_sampler import BucketItem
from components.data.buckets import BucketConfig, salt
from components.dit.captions import CaptionEmbeddings
from components.dit.config import DiffusionConfig, DiTDataConfig
from components.dit.data import DiTDataset, collate, heldout_mask, load_caption_table, with_text
from components.dit.latent_cache import LatentCache
from components.dit.latent_plan import aspect_label
from components.dit.latents import LatentRequest, LatentSource
from components.dit.objective import Objective
from components.dit.pretrain_config import INGEST_TABLE, Cell, GridConfig
from components.evaluation.clips import heldout_score
from components.hashing import exists
from components.workspace import is_remote


def table_uris(tables: list[str], ws: Path) -> list[str]:
    """The tables that exist (workspace-relative or URI); the ingest table only when no other one exists."""
    uris = [t if is_remote(t) or Path(t).is_absolute() else str(Path(ws) / t) for t in tables]
    found = [u for u, t in zip(uris, tables) if exists(u) and t != INGEST_TABLE]
    if found:
        return found
    fallback = [u for u, t in zip(uris, tables) if exists(u) and t == INGEST_TABLE]
    if not fallback:
        raise FileNotFoundError(f"validation grid: none of the clip tables {uris} exists; run data.ingest "
                                "(or the curate stages) first")
    return fallback


def heldout_clips(cfg: GridConfig, ws: Path) -> tuple[pd.DataFrame, list[str]]:
    """Held-out clips of every existing table (one row per clip), ordered by held-out score; and the sources."""
    sources = table_uris(cfg.tables, ws)
    table = pd.concat([load_caption_table(s) for s in sources], ignore_index=True).drop_duplicates("clip_id")
    table = table[heldout_mask(table, cfg.heldout_fraction, cfg.heldout_salt)].copy()
    table["heldout_score"] = [heldout_score(str(c), cfg.heldout_salt) for c in table["clip_id"]]
    return table.sort_values(["heldout_score", "clip_id"]).reset_index(drop=True), sources


def cell_items(table: pd.DataFrame, cell: Cell, cfg: GridConfig) -> list[BucketItem]:
    """The first max_clips clips that fit a cell, as dataset requests at their closest aspect ratio."""
    res = get_resolution(cell.resolution)
    items = []
    for i, row in table.iterrows():
        height, width, frames = int(row["height"]), int(row["width"]), int(row["num_frames"])
        if height * width < cfg.min_pixel_ratio * res.pixels:
            continue
        if cell.num_frames == 1:
            fits = row["media"] == "image" or cfg.videos_as_images
        else:
            fits = row["media"] == "video" and frames >= cell.num_frames * cfg.frame_interval
        if fits:
            h, w = res.table[aspect_label(height, width)]
            items.append(BucketItem(int(i), cell.num_frames, h, w))
        if len(items) == cfg.max_clips:
            break
    return items


@dataclass
class GridBatches:
    """Every cell's collated batches (same size within a batch) and how their latents were obtained."""

    cells: list[Cell]
    batches: dict[Cell, list[dict[str, Any]]]
    clips: dict[Cell, list[str]]
    sources: list[str]
    latents: dict[str, int] = field(default_factory=dict)  # cached / encoded counts

    def empty_cells(self) -> list[Cell]:
        return [c for c in self.cells if not self.clips[c]]


class CacheOrEncode:
    """Latents from the latent cache when it holds the request, else encoded on the fly (counted, not hidden)."""

    def __init__(self, cache: LatentCache | None, live: LatentSource):
        self.cache, self.live = cache, live
        self.cached = 0
        self.encoded = 0

    def get(self, request: LatentRequest) -> torch.Tensor:
        if self.cache is not None and self.cache.contains(request):
            self.cached += 1
            return self.cache.get(request)
        self.encoded += 1
        return self.live.get(request)


def build_grid(cfg: GridConfig, cells: list[Cell], ws: Path, latents: CacheOrEncode, captions: CaptionEmbeddings,
               seed: int, stride: int) -> GridBatches:
    """Read each cell's held-out clips once (latents + caption embeddings), batched by size."""
    table, sources = heldout_clips(cfg, ws)
    # the dataset only reads frame_interval and image_fps from its data config; one cell of buckets is a stand-in
    data_cfg = DiTDataConfig(tables=sources, images_from_videos=False, image_fps=cfg.image_fps,
                             buckets=BucketConfig(resolutions={"64px": {1: (1.0, 1)}},
                                                  frame_interval=cfg.frame_interval))
    dataset = DiTDataset(table, data_cfg, latents, seed, stride)
    batches: dict[Cell, list[dict[str, Any]]] = {}
    clips: dict[Cell, list[str]] = {}
    for cell in cells:
        items = cell_items(table, cell, cfg)
        by_size: dict[tuple[int, int], list[BucketItem]] = defaultdict(list)
        for item in items:
            by_size[(item.height, item.width)].append(item)
        batches[cell] = [with_text(collate([dataset[it] for it in group[i : i + cfg.batch_size]]), captions)
                         for group in by_size.values() for i in range(0, len(group), cfg.batch_size)]
        clips[cell] = [str(table.iloc[it.index]["clip_id"]) for it in items]
    return GridBatches(cells, batches, clips, sources, {"cached": latents.cached, "encoded": latents.encoded})


def grid_objective(cfg: DiffusionConfig, learn_sigma: bool, points: int) -> Objective:
    """The model's objective with the grid's number of equidistant timesteps."""
    return Objective(cfg.model_copy(update={"eval_points": points}), learn_sigma)


@torch.no_grad()
def cell_loss(objective: Objective, model: Callable, batches: list[dict[str, Any]],
              gen: torch.Generator) -> tuple[list[float], int]:
    """Loss per equidistant timestep (averaged over the cell's samples) and the number of samples."""
    totals: list[float] | None = None
    count = 0
    for batch in batches:
        x0 = batch["x0"]
        noise = objective.noise(x0.shape, gen).to(x0.device, x0.dtype)
        per_t = [float(objective.losses(model, batch, t=t, noise=noise, eval_terms=True).float().sum())
                 for t in objective.eval_timesteps(x0.shape[0], x0.device)]
        totals = per_t if totals is None else [a + b for a, b in zip(totals, per_t)]
        count += x0.shape[0]
    return [v / count for v in totals] if count else [], count


@dataclass
class GridResult:
    """Per cell: loss (mean over timesteps), loss per timestep, samples; the timesteps; the mean over cells."""

    t: list[float]
    loss: dict[str, float]
    per_t: dict[str, list[float]]
    samples: dict[str, int]

    @property
    def mean(self) -> float | None:
        return sum(self.loss.values()) / len(self.loss) if self.loss else None

    def metrics(self, prefix: str = "val/loss/") -> dict[str, float]:
        out = {f"{prefix}{name}": value for name, value in self.loss.items()}
        return out | ({f"{prefix}mean": self.mean} if self.mean is not None else {})


@torch.no_grad()
def evaluate_grid(objective: Objective, model: torch.nn.Module, grid: GridBatches, seed: int,
                  to_device: Callable = lambda b: b) -> GridResult:
    """Every non-empty cell's loss; noise is seeded per cell, so a cell's number never depends on the others."""
    was_training = model.training
    model.eval()
    try:
        loss, per_t, samples = {}, {}, {}
        for cell in grid.cells:
            if not grid.batches[cell]:
                continue
            gen = torch.Generator().manual_seed(salt(seed, cell.resolution, cell.num_frames) % 2**63)
            values, n = cell_loss(objective, model, [to_device(b) for b in grid.batches[cell]], gen)
            per_t[cell.name], samples[cell.name] = values, n
            loss[cell.name] = sum(values) / len(values)
    finally:
        model.train(was_training)
    t = [float(x[0]) for x in objective.eval_timesteps(1, torch.device("cpu"))]
    return GridResult(t, loss, per_t, samples)
