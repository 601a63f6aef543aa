"""DiTStageConfig: the shared TrainConfig plus the DiT's model switches, init, diffusion, latents, data and samples.

configs/<profile>/dit.yaml derives each adaptation stage from the one before (`extends:`), so a stage's section
holds only its change (RECIPE §5): adapt2 flips model.qk_norm, adapt3 diffusion.kind, adapt5 eps, …
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.data.aspect_ratios import ASPECT_RATIOS, get_resolution
from components.data.buckets import BucketConfig
from components.dit.text_cache import TextCacheConfig
from components.dit.text_encoders import TextEncoderConfig
from components.evaluation.clips import ClipSelection
from components.training.config import TrainConfig
from models.diffusion import MASK_PRESETS
from models.stdit import STDIT_SIZES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DiTModelConfig(_Strict):
    """The STDiT size and the feature switches the adaptation stages turn on one by one."""

    size: str = "tiny"  # models.stdit.STDiT_models key
    qk_norm: bool = False  # adapt2
    temporal: bool = False  # adapt7: zero-initialised temporal blocks
    fps_cond: bool = False  # adapt6: fps embedding added to the timestep embedding (zero-initialised last layer)
    # PixArt's DDPM learns the variance (2·C outputs). Rectified flow reads the first C channels and ignores the
    # rest, so the weights keep their shape and every stage loads its predecessor without surgery.
    learn_sigma: bool = True
    caption_channels: int = Field(384, ge=1)  # text encoder width: MiniLM 384, T5-XXL 4096
    model_max_length: int = Field(32, ge=1)  # text tokens; must equal text.max_length
    class_dropout_prob: float = Field(0.1, ge=0, lt=1)  # caption dropout for classifier-free guidance
    input_sq_size: int = Field(512, ge=8)  # pixel side the position embedding is interpolated onto
    vae_spatial_stride: int = Field(8, ge=1)
    grad_checkpointing: bool = False
    temporal_attention: Literal["factorized", "full"] = "factorized"  # full: temporal blocks see all T·S tokens

    @model_validator(mode="after")
    def _known(self) -> "DiTModelConfig":
        if self.size not in STDIT_SIZES:
            raise ValueError(f"size {self.size!r} is not an STDiT size; known: {sorted(STDIT_SIZES)}")
        return self

    def stdit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of STDiT_models[size]."""
        return self.model_dump(exclude={"size"})


class DiTInitConfig(_Strict):
    """Where the weights start: random (dit.stage0 tiny), the previous stage's export, or PixArt-Σ (full stage0)."""

    kind: Literal["random", "stage", "pixart"] = "random"
    stage: str | None = None  # workspace folder of the export to start from, e.g. dit/adapt1
    weights: Literal["model", "ema"] = "model"  # which export file of that stage
    pixart: str = "pixart-sigma-2k"  # weights-store entry (configs/<profile>/weights.yaml) for kind pixart

    @model_validator(mode="after")
    def _stage(self) -> "DiTInitConfig":
        if self.kind == "stage" and not self.stage:
            raise ValueError("init.kind=stage needs init.stage (the workspace folder of the previous export)")
        return self


class DiffusionConfig(_Strict):
    """The training objective: PixArt's DDPM (stage0-2) or rectified flow (adapt3+) and how t is drawn."""

    kind: Literal["ddpm", "rflow"] = "ddpm"
    num_timesteps: int = Field(1000, ge=2)
    beta_start: float = Field(1e-4, gt=0)  # ddpm
    beta_end: float = Field(0.02, gt=0)  # ddpm
    timesteps: Literal["uniform", "logit_normal"] = "uniform"  # rflow training t (adapt4: logit_normal)
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    shift: bool = False  # rflow: resolution/length-aware shift of t, in training and sampling (adapt4)
    # pixel area at which the shift ratio is 1 (Open-Sora: 512²; the tiny profile's 64px images: 64²)
    shift_base_resolution: int = Field(512 * 512, ge=1)
    eval_points: int = Field(10, ge=1)  # equidistant timesteps of the fixed-batch validation loss (RECIPE §8)
    # rflow: share of the noise variance common to all latent frames, in training, validation and sampling
    # (models/diffusion/rectified_flow.py: frame_noise). 0 = Open-Sora's i.i.d. noise.
    shared_noise: float = Field(0.0, ge=0, lt=1)
    # rflow training only: weight of the frame-to-frame change of the velocity error added to the loss
    # (models/diffusion/rectified_flow.py: motion_loss). 0 = the plain velocity MSE; validation never adds it.
    motion_weight: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _rflow_only(self) -> "DiffusionConfig":
        for name in ("shared_noise", "motion_weight"):
            if getattr(self, name) and self.kind != "rflow":
                raise ValueError(f"diffusion.{name} applies to rectified flow only: set diffusion.kind=rflow")
        return self


class LatentVAEConfig(_Strict):
    """The VAE whose latents the DiT models: the 2D one (stages 0-5) or the video VAE (adapt6+)."""

    kind: Literal["image", "video"] = "image"
    source: Literal["export", "sdxl"] = "export"  # a pipeline export (workspace folder) or SDXL's from the store
    dir: str = "vae/stage0"  # export folder, relative to the workspace
    # image VAE only: latent scaling (None: the export's config; PixArt-Σ trains SDXL latents with 0.13025)
    scaling_factor: float | None = Field(None, gt=0)
    memo: bool = True  # keep each sample's latents in memory after the first encode (tiny profile)

    @model_validator(mode="after")
    def _sdxl(self) -> "LatentVAEConfig":
        if self.source == "sdxl" and self.kind != "image":
            raise ValueError("vae.source=sdxl is the 2D image VAE: set vae.kind=image")
        return self


class DiTDataConfig(_Strict):
    """The clip table and the buckets its samples are cut into."""

    tables: list[str] = Field(default_factory=lambda: ["curate/tier/tier1.parquet", "data/ingest/metadata.parquet"],
                              min_length=1)  # the first that exists is read (workspace-relative or URI)
    buckets: BucketConfig = BucketConfig(resolutions={"64px": {1: (1.0, 16)}})
    # image stages: each video clip also serves as one image (a fixed frame per clip and seed)
    images_from_videos: bool = True
    # video stages on a corpus with few images (joint image + video, RECIPE §7): each video also gives one frame
    # (fixed per clip and seed) to the 1-frame buckets, beside its video sample
    video_frames_as_images: bool = False
    image_fps: float = Field(120.0, gt=0)  # fps condition of images (Open-Sora's IMG_FPS)
    # score-to-text (RECIPE §1): append the clip's aesthetic, motion and camera-motion scores to its caption, each
    # part dropped with score_text_drop, drawn per epoch; the latent cache must hold the variants (its score_text)
    score_text: bool = False
    score_text_drop: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _frames(self) -> "DiTDataConfig":
        if self.images_from_videos and self.video_frames_as_images:
            raise ValueError("data: video_frames_as_images adds one frame of each video beside its video sample; "
                             "with images_from_videos every clip is already an image only: set one of them")
        return self


class SampleConfig(_Strict):
    """The few samples each stage logs: prompts, size, sampler steps and guidance."""

    prompts: list[str] = Field(default_factory=lambda: [
        "a red circle moving left slowly on a gray background",
        "a yellow star standing still on a black background"], min_length=1)
    steps: int = Field(30, ge=1)
    cfg_scale: float = Field(4.5, ge=0)  # PixArt 4.5 (DDPM); Open-Sora 7.0 (rectified flow)
    resolution: str = "64px"
    aspect_ratio: str = "1.00"
    num_frames: int = Field(1, ge=1)  # pixel frames
    fps: float = Field(8.0, gt=0)  # fps condition of video samples and of the written media
    every: int | None = Field(None, ge=1)  # also sample every N steps (always at the last step)
    seed: int = 0
    upscale: int = Field(4, ge=1)  # nearest-neighbour enlargement of the written media

    @model_validator(mode="after")
    def _size(self) -> "SampleConfig":
        get_resolution(self.resolution)
        if self.aspect_ratio not in ASPECT_RATIOS:
            raise ValueError(f"aspect_ratio {self.aspect_ratio!r}: known {list(ASPECT_RATIOS)}")
        return self

    def pixel_size(self) -> tuple[int, int]:
        """(H, W) of the samples."""
        return get_resolution(self.resolution).table[self.aspect_ratio]


class DiTStageConfig(TrainConfig):
    """One DiT stage: dit.stage0 (tiny image DiT, or the full profile's PixArt-Σ import) and dit.adapt1..8."""

    mode: Literal["train", "import"] = "train"  # import: convert init weights and export them, no training
    model: DiTModelConfig = DiTModelConfig()
    init: DiTInitConfig = DiTInitConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    vae: LatentVAEConfig = LatentVAEConfig()
    data: DiTDataConfig = DiTDataConfig()
    text: TextEncoderConfig = TextEncoderConfig(kind="minilm", max_length=32)
    text_cache: TextCacheConfig = TextCacheConfig()
    mask: str = "none"  # MASK_PRESETS name (adapt8: stage1_2)
    eval_samples: int = Field(8, ge=1)  # clips of the fixed validation batches (first micro-batches of epoch 0)
    val_every: int | None = Field(None, ge=1)  # validation loss every N steps too (always before step 1 and at the end)
    # intra-op threads of a CPU stage process (None: torch's default). The tiny model's matmuls are too small
    # to split, and OpenMP threads that spin-wait against other processes on 2 cores can slow a step tenfold.
    torch_threads: int | None = Field(None, ge=1)
    sample: SampleConfig = SampleConfig()
    # the clips evaluation holds out (components/evaluation/clips.py: the pretraining grid and eval.loss score
    # them) are skipped by every DiT stage, as by the VAE stages: a held-out loss is on clips no stage has seen.
    # 0 trains on every clip.
    heldout_fraction: float = Field(ClipSelection().fraction, ge=0, le=1)
    heldout_salt: str = ClipSelection().salt

    @model_validator(mode="after")
    def _consistent(self) -> "DiTStageConfig":
        if self.mask not in MASK_PRESETS:
            raise ValueError(f"mask {self.mask!r}: known presets {sorted(MASK_PRESETS)}")
        if self.model.model_max_length != self.text.max_length:
            raise ValueError(f"model.model_max_length ({self.model.model_max_length}) must equal text.max_length "
                             f"({self.text.max_length}): the null caption has one row per text token")
        videos = [f for entries in self.data.buckets.resolutions.values() for f in entries if f > 1]
        if videos and not self.model.temporal:
            raise ValueError(f"data.buckets has video frame counts {sorted(set(videos))} but model.temporal is "
                             "off: frames would never see each other")
        if (videos or self.sample.num_frames > 1) and self.vae.kind != "video":
            raise ValueError("video buckets or samples need vae.kind=video (the 2D VAE has no time axis)")
        if self.mode == "import" and self.init.kind != "pixart":
            raise ValueError("mode=import converts a PixArt checkpoint: set init.kind=pixart")
        return self
