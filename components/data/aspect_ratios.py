"""Bucket resolutions and their 17 aspect-ratio (h, w) tables, derived the way Open-Sora 1.2 derived its own.

A resolution is a pixel budget S (240p: 240 x 426 = 102240). Each of the 17 aspect ratios a = h / w, named by
two decimals ("0.38" = 3:8 ... "2.08" = 25:12, the exact fractions of Open-Sora's ASPECT_RATIO_MAP), gets

    h = round_m(sqrt(S * a)),   w = round_m(h / a)

with exact rational arithmetic. Open-Sora's ASPECT_RATIO_{240P..1080P} dicts use m = 2 (nearest even, ties up:
its `get_h_w` with eps); ASPECT_RATIO_144P truncates instead (m = 1, floor). Seven published entries differ from
the rule by a few pixels (hand-edited upstream); PUBLISHED_EXCEPTIONS keeps them, so every table equals
Open-Sora's. Tiny-profile resolutions "<N>px" (N x N pixels: 64px, 96px, 128px …) round to multiples of 8 so
the 8x spatial VAE divides them. Note: several full-profile sizes (426, 393, 925 …) are not multiples of 8;
Open-Sora relies on the VAE and patch embedder padding them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

# Label -> exact h / w (Open-Sora 1.2's ASPECT_RATIO_MAP: "3:8" -> "0.38" …), in ascending order.
ASPECT_RATIOS: dict[str, Fraction] = {
    "0.38": Fraction(3, 8), "0.43": Fraction(9, 21), "0.48": Fraction(12, 25), "0.50": Fraction(1, 2),
    "0.53": Fraction(9, 17), "0.54": Fraction(27, 50), "0.56": Fraction(9, 16), "0.62": Fraction(5, 8),
    "0.67": Fraction(2, 3), "0.75": Fraction(3, 4), "1.00": Fraction(1), "1.33": Fraction(4, 3),
    "1.50": Fraction(3, 2), "1.78": Fraction(16, 9), "1.89": Fraction(17, 9), "2.00": Fraction(2),
    "2.08": Fraction(25, 12),
}

# name -> (pixel budget, rounding multiple, rounding mode) of Open-Sora's named resolutions.
OPEN_SORA_RESOLUTIONS: dict[str, tuple[int, int, str]] = {
    "144p": (36864, 1, "floor"),  # 144 x 256
    "240p": (102240, 2, "nearest"),  # 240 x 426
    "360p": (230400, 2, "nearest"),  # 360 x 640
    "480p": (409920, 2, "nearest"),  # 480 x 854
    "720p": (921600, 2, "nearest"),  # 720 x 1280
    "1080p": (2073600, 2, "nearest"),  # 1080 x 1920
}
TINY_MULTIPLE = 8  # the spatial VAE's downsampling factor
_TINY_NAME = re.compile(r"^([1-9][0-9]*)px$")

# (resolution, label) -> (h, w) where Open-Sora's published table departs from its own rule.
PUBLISHED_EXCEPTIONS: dict[tuple[str, str], tuple[int, int]] = {
    ("144p", "0.54"): (141, 260),  # rule: (141, 261)
    ("240p", "0.54"): (236, 436),  # rule: (234, 434)
    ("240p", "0.67"): (262, 393),  # rule: (262, 394)
    ("480p", "0.48"): (444, 925),  # rule: (444, 926)
    ("480p", "1.33"): (740, 555),  # rule: (740, 556)
    ("720p", "0.54"): (706, 1306),  # rule: (706, 1308)
    ("1080p", "0.54"): (1058, 1958),  # rule: (1058, 1960)
}


@dataclass(frozen=True)
class Resolution:
    """A bucket resolution: its name, pixel budget and (h, w) per aspect-ratio label."""

    name: str
    pixels: int
    table: dict[str, tuple[int, int]]


def _round_to(value: Fraction, multiple: int, mode: str) -> int:
    """value rounded to a multiple: down ('floor') or to the nearest, ties up ('nearest')."""
    k = math.floor(value / multiple)
    if mode == "nearest" and value - k * multiple >= Fraction(multiple, 2):
        k += 1
    return max(k, 1) * multiple  # never a zero side


def _round_sqrt(value: Fraction, multiple: int, mode: str) -> int:
    """sqrt(value) rounded like _round_to, exactly (no float error on perfect squares such as 144p's 1.78)."""
    k = math.isqrt(math.floor(value)) // multiple  # floor(sqrt(value) / multiple)
    if mode == "nearest" and value >= (Fraction(2 * k + 1, 2) * multiple) ** 2:
        k += 1
    return max(k, 1) * multiple


def derive_hw(pixels: int, ratio: Fraction, multiple: int = 2, mode: str = "nearest") -> tuple[int, int]:
    """(h, w) of aspect ratio h / w = `ratio` with about `pixels` pixels (Open-Sora's get_h_w, exactly)."""
    if mode not in ("nearest", "floor"):
        raise ValueError(f"derive_hw: mode must be 'nearest' or 'floor', got {mode!r}")
    h = _round_sqrt(pixels * ratio, multiple, mode)
    return h, _round_to(h / ratio, multiple, mode)


@lru_cache(maxsize=None)
def get_resolution(name: str) -> Resolution:
    """The named resolution (144p … 1080p, or '<N>px' for the tiny profile) with its derived (h, w) table."""
    if name in OPEN_SORA_RESOLUTIONS:
        pixels, multiple, mode = OPEN_SORA_RESOLUTIONS[name]
    elif match := _TINY_NAME.match(name):
        pixels, multiple, mode = int(match.group(1)) ** 2, TINY_MULTIPLE, "nearest"
    else:
        raise ValueError(
            f"unknown bucket resolution {name!r}; known: {', '.join(OPEN_SORA_RESOLUTIONS)} or '<N>px' (N x N pixels)"
        )
    table = {
        label: PUBLISHED_EXCEPTIONS.get((name, label)) or derive_hw(pixels, ratio, multiple, mode)
        for label, ratio in ASPECT_RATIOS.items()
    }
    return Resolution(name=name, pixels=pixels, table=table)


def closest_ratio(height: float, width: float) -> str:
    """Label of the aspect ratio nearest to height / width (compared with the two-decimal labels, as Open-Sora)."""
    ratio = height / width
    return min(ASPECT_RATIOS, key=lambda label: abs(float(label) - ratio))
