"""eval_flow: the pipeline's last segment, scoring what the chain trained (eval.vae, eval.adherence)."""
from __future__ import annotations

from prefect import flow

from flows.tasks import stage

EVAL_STAGES = ["eval.vae", "eval.adherence"]


@flow(name="eval_flow", log_prints=True)
def eval_flow(profile: str = "tiny", use_dvc: bool = True, start: str | None = None) -> list[dict]:
    """VAE reconstruction metrics and prompt adherence of the pretrained DiT (eval.loss runs with pretraining)."""
    names = EVAL_STAGES[EVAL_STAGES.index(start):] if start else EVAL_STAGES
    return [stage(name, profile, use_dvc) for name in names]
