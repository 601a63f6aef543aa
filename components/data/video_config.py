"""VideoDataConfig: every knob of the training video dataset (table, size, length, mixing, workers, cache)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class VideoDataConfig(BaseModel):
    """Which clip table to read and how a sample is cut from it; shared by the VAE and DiT training stages."""

    model_config = ConfigDict(extra="forbid")
    # the first of these that exists is read (relative to the workspace, or a URI): curated clips first,
    # the ingest metadata (whole videos and images) when curation has not run
    tables: list[str] = Field(default_factory=lambda: ["curate/tier/tier1.parquet", "data/ingest/metadata.parquet"],
                              min_length=1)
    size: tuple[int, int] = (256, 256)  # (H, W) after resizing the shorter side and centre-cropping
    # train on a random (h, w) window of the `size` frames (the same window for every frame of a sample): a fully
    # convolutional VAE learns the objects at the scale it will see at `size` for a fraction of the compute
    crop: tuple[int, int] | None = None
    num_frames: int = Field(17, ge=1)  # T of every sample tensor; shorter clips and images are zero-padded to it
    frame_stride: int = Field(1, ge=1)  # take every k-th source frame
    # share of samples that are single images (real images, else one frame of a video), zero-padded to T
    image_ratio: float = Field(0.2, ge=0, le=1)
    # stage 3: each video sample gets a length drawn uniformly from 1..num_frames (then zero-padded to T)
    random_length: bool = False
    min_frames: int = Field(1, ge=1)  # video clips with fewer source frames are left out (and counted)
    # clips held out for evaluation, chosen exactly as eval.vae chooses them (components/evaluation/clips.py):
    # never trained on; the fixed validation batch comes from them
    heldout_fraction: float = Field(0.1, ge=0, le=1)
    heldout_salt: str = "reelforge-heldout-v1"
    num_workers: int = Field(2, ge=0)  # DataLoader worker processes per rank
    prefetch_factor: int = Field(2, ge=1)
    # decoded clips at training size: memory (per worker process) or disk (shared by workers and ranks)
    cache: Literal["off", "memory", "disk"] = "off"
    cache_dir: str = "cache/clips"  # relative to the workspace when cache is disk
    max_retries: int = Field(8, ge=0)  # replacement draws for a corrupt clip before the batch fails

    @field_validator("cache", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    @model_validator(mode="after")
    def _check(self) -> "VideoDataConfig":
        h, w = self.size
        if h < 1 or w < 1:
            raise ValueError(f"size must be positive (H, W), got {self.size}")
        if self.crop is not None and not (1 <= self.crop[0] <= h and 1 <= self.crop[1] <= w):
            raise ValueError(f"crop {self.crop} must fit inside size {self.size}")
        return self
