"""VAEStageConfig: the shared TrainConfig plus the VAE's model source, trainable parts, data, losses and samples."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.data.video_config import VideoDataConfig
from components.training.config import TrainConfig

Part = Literal["spatial_encoder", "spatial_decoder", "temporal"]


class VAEStageConfig(TrainConfig):
    """One video-VAE training stage (RECIPE §2); configs/<profile>/vae.yaml derives stage n+1 from stage n."""

    model: Literal["tiny", "full"] = "tiny"  # models.vae.VAE_models size
    # workspace folder of the export this stage starts from (vae/stage1); None starts fresh
    init: str | None = None
    # where the 2D VAE comes from: the init export, SDXL's from the weights store, or random (vae.stage0)
    spatial: Literal["init", "sdxl", "random"] = "init"
    # what the optimiser updates; the rest is frozen. Stages 1-2 never reach the 2D decoder (latent losses),
    # and DDP requires every trainable parameter to get a gradient, so it is listed only where it learns.
    trainable: list[Part] = Field(default_factory=lambda: ["spatial_encoder", "spatial_decoder", "temporal"],
                                  min_length=1)
    data: VideoDataConfig = VideoDataConfig()
    sample_posterior: bool = True  # draw latents from the posteriors while training (Open-Sora does)
    # log-variance bias of freshly initialised posterior heads (None: the default init, as Open-Sora); see
    # vae_model.init_posterior_logvar
    posterior_logvar_init: float | None = None
    logvar_init: float = 0.0  # the learnable log-variance every reconstruction term goes through
    kl_weight: float = Field(1e-6, ge=0)
    # stage 0 only (the tiny profile's stand-in for SDXL's VAE): + weight * pixel MSE. L1 alone settles on the
    # background colour where a small saturated object is uncertain (a median); MSE makes those errors count.
    mse_weight: float = Field(0.0, ge=0)
    # auto: LPIPS if its weights are in the store; ssim: 1 - SSIM per frame, no weights (the tiny profile)
    perceptual: Literal["auto", "lpips", "ssim", "off"] = "auto"
    perceptual_weight: float = Field(0.1, ge=0)
    # the fixed validation batch: reconstructed, scored and written as side-by-side mp4 + gif every val_every steps
    val_every: int = Field(100, ge=1)
    val_clips: int = Field(4, ge=1)
    media_upscale: int = Field(4, ge=1)  # nearest-neighbour enlargement of the side-by-side media
    media_fps: float = Field(8.0, gt=0)
    # measure the per-channel latent shift/scale on training clips after training, and store them with the weights
    latent_stats: bool = False
    latent_stats_batches: int = Field(8, ge=1)

    @field_validator("perceptual", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    @model_validator(mode="after")
    def _consistent(self) -> "VAEStageConfig":
        if self.spatial == "init" and self.init is None:
            raise ValueError("spatial=init needs `init` (the workspace folder of the previous stage's export)")
        if self.model == "full" and self.spatial == "random":
            raise ValueError("model=full takes SDXL's 2D VAE (spatial=sdxl) or a previous stage's (spatial=init)")
        return self
