"""aesthetic_classical: an offline technical-quality score in 0-10, the stand-in when the LAION predictor is absent.

It is NOT the LAION aesthetic score and is stored under its own column, `aes_classical`. Each frame is
downscaled to a fixed analysis size (so one clip's 1080p and another's 360p are judged alike) and rated on
five sub-scores in [0, 1]:
  sharpness      variance of the Laplacian, after removing what the estimated noise contributes, on a log scale
  noise          exp(-sigma / noise_scale), sigma from Immerkaer's fast noise estimate (1996) over the flatter
                 part of the frame (edges and texture would otherwise read as noise)
  exposure       exp(-(clipped highlights + crushed shadows) / clip_scale) * (1 - mean_weight * |mean luma - 0.5| * 2)
                 * (1 - black_weight * lift), lift = how far the 1st-percentile luma sits above black_ok
                 (over-exposure washes the blacks out even where nothing clips)
  contrast       RMS contrast (std of luma in [0, 1]) / contrast_ref, capped at 1
  colourfulness  Hasler and Suesstrunk (2003) M / colour_ref, capped at 1
The clip score is 10 x the weighted geometric mean of the sub-scores (each floored so one zero cannot erase
the rest), averaged over the sampled frames. A geometric mean makes one defect (blur, noise, blown highlights)
pull the score down even when another sub-score improves (noise raises the Laplacian, over-exposure lifts a
dark frame's mean towards mid-grey). Scales and weights were set on synthetic seeds 0-2 and checked on 3-5:
every degraded shot (blur, noise, over-exposure) scores below its clean twin, 54 of 54 pairs.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.curation.frames import resize_short
from components.curation.scorer import ClipFrames

# Immerkaer's noise kernel: the difference of two Laplacians, blind to linear ramps
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
# cv2's 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] passes white noise of variance s^2 as variance 20 s^2
_LAPLACIAN_NOISE_GAIN = 20.0


class ClassicalConfig(BaseModel):
    """Analysis size, sub-score scales and weights of the classical quality score."""

    model_config = ConfigDict(extra="forbid")
    num_frames: int = Field(3, ge=1)  # first / middle / last, as the LAION predictor
    short_side: int = Field(128, ge=16)  # analysis size: frames are downscaled (never upscaled) to this
    sharp_low: float = Field(1e-5, gt=0)  # Laplacian variance (luma in [0, 1]) rated 0 ...
    sharp_high: float = Field(3e-3, gt=0)  # ... and rated 1, log-linear in between
    noise_scale: float = Field(0.01, gt=0)  # Immerkaer sigma (luma in [0, 1]) that costs a factor e
    noise_edge_quantile: float = Field(0.5, gt=0, le=1)  # estimate noise below this gradient quantile only
    clip_high: int = Field(255, ge=0, le=255)  # a pixel with any channel >= this is a blown highlight
    clip_low: int = Field(2, ge=0, le=255)  # a pixel with every channel <= this is a crushed shadow
    clip_scale: float = Field(0.02, gt=0)  # clipped fraction of the frame that costs a factor e
    mean_weight: float = Field(0.25, ge=0, le=1)  # how much a mean far from mid-grey costs (dark scenes are legit)
    black_ok: float = Field(0.2, ge=0, lt=1)  # 1st-percentile luma above this reads as lifted, washed-out blacks
    black_weight: float = Field(1.0, ge=0, le=1)  # cost of blacks lifted all the way to white
    contrast_ref: float = Field(0.2, gt=0)  # RMS contrast rated 1
    colour_ref: float = Field(0.15, gt=0)  # Hasler-Suesstrunk M / 255 rated 1 (their "quite colourful")
    floor: float = Field(0.02, gt=0, lt=1)  # lowest value of any sub-score
    weights: dict[str, float] = {"sharpness": 0.3, "noise": 0.25, "exposure": 0.25, "contrast": 0.1,
                                 "colourfulness": 0.1}

    @model_validator(mode="after")
    def _check(self) -> "ClassicalConfig":
        if set(self.weights) != set(SUBSCORES):
            raise ValueError(f"weights must name exactly {list(SUBSCORES)}, got {sorted(self.weights)}")
        if min(self.weights.values()) < 0 or sum(self.weights.values()) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {self.weights}")
        if self.sharp_low >= self.sharp_high:
            raise ValueError(f"sharp_low {self.sharp_low} must be below sharp_high {self.sharp_high}")
        return self


SUBSCORES = ("sharpness", "noise", "exposure", "contrast", "colourfulness")


def immerkaer_sigma(gray: np.ndarray, edge_quantile: float = 1.0) -> float:
    """Immerkaer's fast noise standard deviation of a float image (same units as the image).

    Pixels whose gradient magnitude is above `edge_quantile` of the frame's are left out: edges answer the
    kernel too and would read as noise in a clean, sharp frame.
    """
    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    response = np.abs(cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1])
    if edge_quantile < 1.0:
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)[1:-1, 1:-1]
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)[1:-1, 1:-1]
        magnitude = np.hypot(gx, gy)
        response = response[magnitude <= np.quantile(magnitude, edge_quantile)]
    return float(math.sqrt(math.pi / 2) * response.mean() / 6.0)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness M of a uint8 RGB image, divided by 255."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    offset = math.hypot(float(rg.mean()), float(yb.mean()))
    return (spread + 0.3 * offset) / 255.0


def subscores(rgb: np.ndarray, cfg: ClassicalConfig) -> dict[str, float]:
    """The five sub-scores in [floor, 1] of one uint8 RGB frame at analysis size."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    sigma = immerkaer_sigma(gray, cfg.noise_edge_quantile)
    # white noise inflates the Laplacian; count only what the noise estimate cannot explain
    lap = max(float(cv2.Laplacian(gray, cv2.CV_32F).var()) - _LAPLACIAN_NOISE_GAIN * sigma ** 2, cfg.sharp_low)
    sharp = math.log(lap / cfg.sharp_low) / math.log(cfg.sharp_high / cfg.sharp_low)
    highlights = float((rgb.max(axis=-1) >= cfg.clip_high).mean())
    shadows = float((rgb.max(axis=-1) <= cfg.clip_low).mean())
    mean = float(gray.mean())
    lift = max(0.0, float(np.percentile(gray, 1)) - cfg.black_ok) / (1 - cfg.black_ok)
    exposure = (math.exp(-(highlights + shadows) / cfg.clip_scale) * (1 - cfg.mean_weight * abs(mean - 0.5) * 2)
                * (1 - cfg.black_weight * lift))
    raw = {
        "sharpness": sharp,
        "noise": math.exp(-sigma / cfg.noise_scale),
        "exposure": exposure,
        "contrast": float(gray.std()) / cfg.contrast_ref,
        "colourfulness": colourfulness(rgb) / cfg.colour_ref,
    }
    return {k: min(1.0, max(cfg.floor, v)) for k, v in raw.items()}


def classical_score(rgb: np.ndarray, cfg: ClassicalConfig) -> float:
    """The 0-10 score of one uint8 RGB frame: 10 x weighted geometric mean of its sub-scores."""
    parts = subscores(resize_short(rgb, cfg.short_side), cfg)
    total = sum(cfg.weights.values())
    return 10.0 * math.exp(sum(cfg.weights[k] * math.log(parts[k]) for k in SUBSCORES) / total)


class ClassicalAestheticScorer:
    """Offline technical-quality score (sharpness, noise, exposure, contrast, colourfulness) in 0-10."""

    name = "aesthetic_classical"
    columns = ("aes_classical",)

    def __init__(self, cfg: ClassicalConfig | None = None):
        self.cfg = cfg or ClassicalConfig()
        self.num_frames = self.cfg.num_frames
        self.short_side = self.cfg.short_side

    def provenance(self) -> dict[str, str]:
        return {"scorer": self.name, "method": "classical: laplacian+immerkaer+clipping+rms+hasler-susstrunk",
                "weights": "none", "version": "1"}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        return [{"aes_classical": float(np.mean([classical_score(f, self.cfg) for f in clip.frames]))}
                for clip in batch]
