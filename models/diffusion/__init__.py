"""Diffusion math as pure PyTorch: rectified flow (Open-Sora 1.2), DDPM (PixArt), samplers, frame masks."""
from models.diffusion.ddpm import DDPMConfig, GaussianDiffusion
from models.diffusion.masks import MASK_KINDS, MASK_PRESETS, MaskRatios, generate_masks, masked_mean_flat
from models.diffusion.rectified_flow import (RectifiedFlow, RectifiedFlowConfig, add_noise, frame_noise,
                                             velocity_loss)
from models.diffusion.sampler import (
    DDIMSamplerConfig,
    EulerSamplerConfig,
    ddim_sample,
    ddpm_sample,
    euler_sample,
    guided_denoiser,
)
from models.diffusion.timesteps import (
    ShiftConfig,
    TimestepSamplerConfig,
    sample_timesteps,
    shift_ratio,
    shift_timesteps,
)

__all__ = [
    "DDIMSamplerConfig", "DDPMConfig", "EulerSamplerConfig", "GaussianDiffusion", "MASK_KINDS", "MASK_PRESETS",
    "MaskRatios", "RectifiedFlow", "RectifiedFlowConfig", "ShiftConfig", "TimestepSamplerConfig", "add_noise",
    "ddim_sample", "ddpm_sample", "euler_sample", "frame_noise", "generate_masks", "guided_denoiser",
    "masked_mean_flat", "sample_timesteps", "shift_ratio", "shift_timesteps", "velocity_loss",
]
