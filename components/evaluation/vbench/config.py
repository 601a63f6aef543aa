"""eval.vbench's typed config: mode, suite, videos, the model that samples them, weights, and VBench's constants."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.config import StageConfig
from components.evaluation.vbench.aggregate import DIMENSIONS
from components.evaluation.vbench.compute import ComputeSettings
from components.evaluation.vbench.dimensions_motion import StaticConfig
from components.workspace import project_root


class SamplingSettings(BaseModel):
    """How the trained DiT samples the suite (components.sampling.SampleRequest fields; seed = seed + index)."""

    model_config = ConfigDict(extra="forbid")
    vae: str | None = None  # None: the VAE recorded in the model's dit.json
    weights: Literal["model", "ema"] = "model"
    steps: int = Field(30, ge=1)
    cfg_scale: float = Field(7.0, ge=0)
    resolution: str = "64px"
    aspect_ratio: str = "1.00"
    num_frames: int = Field(17, ge=2)
    fps: float = Field(8.0, gt=0)


class WeightsSettings(BaseModel):
    """Where VBench's networks come from: names of a weights list, or explicit paths per name."""

    model_config = ConfigDict(extra="forbid")
    profile: str = "full"  # configs/<profile>/weights.yaml lists the VBench files (tiny lists none)
    store: str | None = None  # default REELFORGE_WEIGHTS, else <workspace>/weights
    paths: dict[str, str] = {}  # weight name -> a file or folder anywhere (skips the list for that name)


class EvalVBenchConfig(StageConfig):
    """eval.vbench: standard mode samples (or reads) the suite's videos; custom mode scores any folder of videos."""

    mode: Literal["standard", "custom"] = "standard"
    model: str = "pretrain/tier3"  # standard mode without `videos`: stage folder, MLflow run or registered model
    suite: str = "configs/tiny/vbench_prompts.json"  # full-info JSON or .txt, relative to the project root
    videos: str | None = None  # standard: folder already holding {prompt}-{i}.mp4; custom: the videos to score
    prompt_file: str | None = None  # custom mode: JSON {video file name: prompt}; default: prompt from file name
    dimensions: list[str] = list(DIMENSIONS)
    prompts_per_dimension: int | None = Field(None, ge=1)  # a per-profile subset for speed; None: the whole suite
    videos_per_prompt: int = Field(5, ge=1)
    sampling: SamplingSettings = SamplingSettings()
    weights: WeightsSettings = WeightsSettings()
    compute: ComputeSettings = ComputeSettings()
    static_filter: StaticConfig = StaticConfig()
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("dimensions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [d for d in value if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown VBench dimension(s) {unknown}; known: {', '.join(DIMENSIONS)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _custom_needs_videos(self) -> "EvalVBenchConfig":
        if self.mode == "custom" and not self.videos:
            raise ValueError("mode custom needs `videos`: the folder of videos to score")
        return self

    def suite_path(self) -> Path:
        path = Path(self.suite)
        return path if path.is_absolute() else project_root() / path
