"""adapt_flow: dit.stage0 → dit.adapt1 → … → dit.adapt8, each stage starting from the previous one's export."""
from __future__ import annotations

from prefect import flow

from flows.tasks import stage

ADAPT_STAGES = ["dit.stage0"] + [f"dit.adapt{i}" for i in range(1, 9)]


@flow(name="adapt_flow", log_prints=True)
def adapt_flow(profile: str = "tiny", use_dvc: bool = True, start: str | None = None) -> list[dict]:
    """Image DiT (tiny: trained; full: PixArt-Σ imported) → eight adaptation stages → the video DiT."""
    names = ADAPT_STAGES[ADAPT_STAGES.index(start):] if start else ADAPT_STAGES
    return [stage(name, profile, use_dvc) for name in names]
