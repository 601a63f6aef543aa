"""Named STDiT sizes, DiT style: `STDiT_models["XL/2"](caption_channels=4096)` builds the model."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from models.stdit.model import STDiT, STDiTConfig

# (hidden_size, depth, num_heads); patch (1, 2, 2) for all. XL/2 and 3B/2 are Open-Sora's STDiT3 sizes,
# S/2 and B/2 follow DiT; tiny and mini are CPU sizes (the tiny profile trains mini: tiny could not learn colour from
# text on the synthetic corpus, mini reaches ~50% in the same chain).
STDIT_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 2, 4),
    "mini": (128, 4, 4),
    "S/2": (384, 12, 6),
    "B/2": (768, 12, 12),
    "XL/2": (1152, 28, 16),
    "3B/2": (1872, 28, 26),
}


def stdit_config(name: str, **overrides: Any) -> STDiTConfig:
    """The config of a named size, with any field overridden."""
    if name not in STDIT_SIZES:
        raise KeyError(f"unknown STDiT size {name!r}; known: {sorted(STDIT_SIZES)}")
    hidden, depth, heads = STDIT_SIZES[name]
    return replace(STDiTConfig(hidden_size=hidden, depth=depth, num_heads=heads, patch_size=(1, 2, 2)), **overrides)


def _factory(name: str) -> Callable[..., STDiT]:
    def build(**overrides: Any) -> STDiT:
        return STDiT(stdit_config(name, **overrides))

    build.__doc__ = f"STDiT {name}."
    return build


STDiT_models: dict[str, Callable[..., STDiT]] = {name: _factory(name) for name in STDIT_SIZES}
