"""pretrain_flow: cache.latents → pretrain.tier1 → pretrain.tier2 → pretrain.tier3 → eval.loss."""
from __future__ import annotations

from prefect import flow

from flows.tasks import stage

PRETRAIN_STAGES = ["cache.latents", "pretrain.tier1", "pretrain.tier2", "pretrain.tier3", "eval.loss"]


@flow(name="pretrain_flow", log_prints=True)
def pretrain_flow(profile: str = "tiny", use_dvc: bool = True, start: str | None = None) -> list[dict]:
    """Latent cache → three quality tiers, each from the previous export → the validation-loss grid."""
    names = PRETRAIN_STAGES[PRETRAIN_STAGES.index(start):] if start else PRETRAIN_STAGES
    return [stage(name, profile, use_dvc) for name in names]
