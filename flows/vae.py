"""vae_flow: the video VAE's stages in order (stage 0 trains the tiny 2D VAE, or imports SDXL's on full)."""
from __future__ import annotations

from prefect import flow

from flows.tasks import stage

VAE_STAGES = ["vae.stage0", "vae.stage1", "vae.stage2", "vae.stage3"]


@flow(name="vae_flow", log_prints=True)
def vae_flow(profile: str = "tiny", use_dvc: bool = True, start: str | None = None) -> list[dict]:
    """2D VAE → temporal VAE on frozen 2D latents → + 2D encoder → the whole VAE on pixels."""
    names = VAE_STAGES[VAE_STAGES.index(start):] if start else VAE_STAGES
    return [stage(name, profile, use_dvc) for name in names]
