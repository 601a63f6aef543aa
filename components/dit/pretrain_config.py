"""Configs of the quality-tiered pretraining stages (pretrain.tier1..3) and of their validation-loss grid.

PretrainConfig is a DiTStageConfig (model switches, init, diffusion, VAE, buckets, masks, EMA, samples) plus
where its latents come from (the cache.latents output, or encoded on the fly) and the validation grid it logs
as curves. GridConfig is shared with the eval.loss stage, so the curves during training and the final grid are
the same cells, clips, timesteps and noise.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.config import resolve
from components.data.aspect_ratios import get_resolution
from components.dit.config import DiTDataConfig, DiTStageConfig
from components.evaluation.clips import ClipSelection

TIER_TABLES = ["curate/tier/tier1.parquet", "curate/tier/tier2.parquet", "curate/tier/tier3.parquet"]
INGEST_TABLE = "data/ingest/metadata.parquet"  # the fallback when curation has not written its tiers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Cell(NamedTuple):
    """One cell of the validation grid: a bucket resolution and a pixel frame count (1: image)."""

    resolution: str
    num_frames: int

    @property
    def name(self) -> str:
        """`<res>x<frames>`, the suffix of the val/loss/<cell> curves (64pxx17, 240px51)."""
        return f"{self.resolution}x{self.num_frames}"


class GridConfig(_Strict):
    """The Open-Sora validation-loss grid: rectified-flow loss at `points` equidistant t per (resolution, length)."""

    # None: every (resolution, frame count) of the profile's three pretraining bucket configs
    cells: list[tuple[str, int]] | None = None
    tables: list[str] = Field(default_factory=lambda: TIER_TABLES + [INGEST_TABLE], min_length=1)
    # every existing table of `tables` is read (union by clip_id); the ingest table only when no tier table exists
    heldout_fraction: float = Field(ClipSelection().fraction, gt=0, le=1)  # components/evaluation/clips.py rule
    heldout_salt: str = ClipSelection().salt
    max_clips: int = Field(4, ge=1)  # held-out clips per cell (the first by held-out score)
    batch_size: int = Field(4, ge=1)
    points: int = Field(10, ge=1)  # equidistant timesteps (bin centres (i + 0.5) / points)
    seed: int = 0  # the fixed noise of every evaluation
    frame_interval: int = Field(1, ge=1)  # as the buckets': F frames need F x interval source frames
    min_pixel_ratio: float = Field(0.8, gt=0, le=1)  # a clip enters a resolution's cells with >= this x its pixels
    image_fps: float = Field(120.0, gt=0)
    videos_as_images: bool = True  # a held-out video also gives one frame to the image cells (few images held out)

    @model_validator(mode="after")
    def _known(self) -> "GridConfig":
        for res, frames in self.cells or []:
            get_resolution(res)
            if frames < 1:
                raise ValueError(f"cells: ({res}, {frames}): frame count must be >= 1")
        return self

    def cell_list(self) -> list[Cell] | None:
        return [Cell(r, f) for r, f in self.cells] if self.cells is not None else None


class LatentSourceConfig(_Strict):
    """Where training latents and caption embeddings come from."""

    kind: Literal["cache", "on_the_fly"] = "cache"  # on_the_fly: VAE + text encoder every (un-memoised) request
    dir: str = "cache/latents"  # the cache.latents output folder, workspace-relative


class ValCurvesConfig(GridConfig):
    """The grid evaluated during pretraining: at step 0, every `every` steps and at the last step."""

    every: int | None = Field(None, ge=1)


class PretrainConfig(DiTStageConfig):
    """One pretraining tier: its table and buckets, the latent source, and the validation curves."""

    tier: Literal["tier1", "tier2", "tier3"] = "tier1"
    data: DiTDataConfig = DiTDataConfig(tables=[TIER_TABLES[0], INGEST_TABLE], images_from_videos=False)
    latents: LatentSourceConfig = LatentSourceConfig()
    val: ValCurvesConfig = ValCurvesConfig()

    @model_validator(mode="after")
    def _video(self) -> "PretrainConfig":
        if self.vae.kind != "video":
            raise ValueError("pretraining reads video VAE latents: set vae.kind=video (and vae.dir to its export)")
        if self.mode != "train":
            raise ValueError("pretrain stages train: mode must be train")
        if not {"heldout_fraction", "heldout_salt"} & self.model_fields_set:  # training skips what the grid holds out
            self.heldout_fraction, self.heldout_salt = self.val.heldout_fraction, self.val.heldout_salt
        if (self.heldout_fraction, self.heldout_salt) != (self.val.heldout_fraction, self.val.heldout_salt):
            raise ValueError(f"heldout_fraction/heldout_salt ({self.heldout_fraction}, {self.heldout_salt!r}) must equal "
                             f"val.heldout_fraction/val.heldout_salt ({self.val.heldout_fraction}, "
                             f"{self.val.heldout_salt!r}): training skips exactly the clips the grid holds out")
        return self


PRETRAIN_STAGES = ("pretrain.tier1", "pretrain.tier2", "pretrain.tier3")


def profile_cells(profile: str) -> list[Cell]:
    """Every (resolution, frame count) of the profile's three pretraining bucket configs; largest, longest first."""
    cells = set()
    for name in PRETRAIN_STAGES:
        cfg = resolve(name, PretrainConfig, profile)
        cells |= {Cell(res, frames) for res, entries in cfg.data.buckets.resolutions.items() for frames in entries}
    return sorted(cells, key=lambda c: (-get_resolution(c.resolution).pixels, -c.num_frames))
