"""The perceptual term of VAE training: LPIPS when its weights are in the store, else off and said so; or SSIM.

The LPIPS module and its loading are eval.vae's (models/lpips.py, components/evaluation/loaders.py): the AlexNet
trunk comes from the weights store (`lpips-alexnet`), the linear heads from the `lpips` wheel. `ssim` takes
1 - SSIM per frame (models/ssim.py) instead: no weights, for profiles that train offline (the tiny one).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from components import weights
from components.evaluation.loaders import lpips_heads_path, load_lpips
from models.lpips import LPIPS
from models.ssim import SSIMDistance

WEIGHT_NAME = "lpips-alexnet"
STANDIN = "offline stand-in: L1 only"


@dataclass
class Perceptual:
    """The loaded LPIPS module (None when off) and a line for the run's params and tags."""

    module: LPIPS | SSIMDistance | None
    status: str  # "lpips" | "ssim: …" | "off: <why> (offline stand-in: L1 only)" | "unused: …"

    @property
    def on(self) -> bool:
        return self.module is not None


def build_perceptual(mode: str, profile: str, device: torch.device | str = "cpu") -> Perceptual:
    """mode lpips: required (a clear error when missing); auto: used when present; ssim: 1 - SSIM; off: never."""
    if mode == "off":
        return Perceptual(None, f"off: perceptual=off in the config ({STANDIN})")
    if mode == "ssim":
        return Perceptual(SSIMDistance().to(device), ("ssim: 1 - SSIM per frame (11x11 Gaussian, sigma 1.5), "
                                                 "the stand-in for LPIPS"))
    entries = {e["name"]: e for e in weights.manifest_for(profile)}
    if mode == "auto":
        if WEIGHT_NAME not in entries:
            return Perceptual(None, f"off: {WEIGHT_NAME} is not listed in configs/{profile}/weights.yaml ({STANDIN})")
        status = weights.check_one(entries[WEIGHT_NAME], weights.store_uri(), verify=False).status
        if status != "present":
            return Perceptual(None, f"off: {WEIGHT_NAME} is {status} in the weights store {weights.store_uri()} "
                                    f"({STANDIN})")
    trunk = weights.require(profile, [WEIGHT_NAME])[WEIGHT_NAME]  # mode lpips: raises naming the missing file
    heads = lpips_heads_path("alex")
    if heads is None:
        raise FileNotFoundError("LPIPS heads: lpips/weights/v0.1/alex.pth not found (pip install lpips==0.1.4)")
    model, _ = load_lpips(trunk, heads, "alex")
    return Perceptual(model.to(device), "lpips")
