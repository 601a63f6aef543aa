"""Video VAE (Open-Sora 1.2): per-frame 2D VAE + causal temporal VAE, 4x8x8 compression, 4 latent channels."""
from models.vae.causal import CausalConv3d, FrameGroupNorm
from models.vae.gaussian import DiagonalGaussian
from models.vae.registry import VAE_configs, VAE_models
from models.vae.spatial import SpatialVAEConfig
from models.vae.temporal import TemporalVAE, TemporalVAEConfig
from models.vae.video_vae import VAEOutput, VideoVAE, VideoVAEConfig, channel_stats

__all__ = [
    "CausalConv3d",
    "DiagonalGaussian",
    "FrameGroupNorm",
    "SpatialVAEConfig",
    "TemporalVAE",
    "TemporalVAEConfig",
    "VAEOutput",
    "VAE_configs",
    "VAE_models",
    "VideoVAE",
    "VideoVAEConfig",
    "channel_stats",
]
