"""Drawing for the synthetic corpus: the vocabulary, shapes, backgrounds, burned-in text and degradations.

Every function is a pure function of its arguments (seeds included), so a corpus renders bit-for-bit the same.
Frames are (H, W, 3) uint8 RGB arrays.
"""
from __future__ import annotations

import cv2
import numpy as np

# RGB; names are the words that appear in captions.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 50),
    "blue": (40, 70, 235),
    "yellow": (245, 220, 30),
    "white": (250, 250, 250),
    "magenta": (225, 40, 220),
    "cyan": (30, 215, 230),
    "orange": (250, 140, 10),
}
SHAPES = ("circle", "square", "triangle", "star", "hexagon")
# Screen-space unit vectors (x right, y down).
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
ADVERBS = {"slow": "slowly", "fast": "quickly"}
# A pan/tilt names where the camera turns, so the scene content moves the opposite way on screen.
CAMERAS: dict[str, tuple[int, int]] = {"pan_left": (-1, 0), "pan_right": (1, 0),
                                       "tilt_up": (0, -1), "tilt_down": (0, 1)}
CAMERA_PHRASES = {"pan_left": "pans left", "pan_right": "pans right", "tilt_up": "tilts up", "tilt_down": "tilts down"}
DEGRADATIONS = ("blur", "noise", "overexposed")
OVERLAY_TEXTS = ("SALE TODAY", "BREAKING NEWS", "SUBSCRIBE", "HELLO", "LIVE NOW", "TOP 10", "FREE GIFT", "WATCH")

# name -> (family, caption phrase, colours). Plain and gradient colours are dark or muted so every shape
# colour stands out; textures are grey so camera motion is visible without competing with the shape.
BACKGROUNDS: dict[str, tuple[str, str, tuple]] = {
    "gray": ("plain", "a gray background", ((110, 110, 110),)),
    "black": ("plain", "a black background", ((10, 10, 10),)),
    "navy": ("plain", "a navy background", ((15, 20, 80),)),
    "brown": ("plain", "a brown background", ((90, 55, 30),)),
    "sunset": ("gradient", "a purple-to-brown gradient background", ((70, 20, 90), (120, 70, 30))),
    "ocean": ("gradient", "a teal-to-navy gradient background", ((20, 90, 100), (10, 15, 60))),
    "checker": ("texture", "a checkered background", ((70, 70, 70), (130, 130, 130))),
    "stripes": ("texture", "a striped background", ((60, 60, 60), (140, 140, 140))),
    "noise": ("texture", "a mottled background", ((50, 50, 50), (150, 150, 150))),
}
TEXTURES = tuple(name for name, (family, _, _) in BACKGROUNDS.items() if family == "texture")
# Camera shots need a texture whose shift shows its direction: diagonal stripes look the same after a pan
# and after a tilt (the aperture problem), so no method could label those shots from the frames.
CAMERA_TEXTURES = tuple(name for name in TEXTURES if name != "stripes")

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions keep slow motion smooth
_SCALE = 1 << _SHIFT


def background(name: str, width: int, height: int, seed: int) -> np.ndarray:
    """The background `name` at (height, width); textures depend on `seed`, plain and gradients do not."""
    family, _, colours = BACKGROUNDS[name]
    if family == "plain":
        return np.broadcast_to(np.array(colours[0], np.uint8), (height, width, 3)).copy()
    if family == "gradient":
        ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        top, bottom = (np.array(c, np.float32) for c in colours)
        img = top * (1 - ramp) + bottom * ramp
        return np.broadcast_to(img, (height, width, 3)).round().astype(np.uint8)
    dark, light = (np.array(c, np.float32) for c in colours)
    rng = np.random.default_rng(seed)
    cell = max(6, int(rng.integers(8, 17)))
    ys, xs = np.mgrid[0:height, 0:width]
    if name == "checker":
        mask = ((ys // cell + xs // cell) % 2).astype(np.float32)
    elif name == "stripes":
        mask = (((xs + ys) // cell) % 2).astype(np.float32)
    else:  # smooth blobs: coarse random grid upsampled
        coarse = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)
        mask = cv2.resize(coarse, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
        mask = np.clip(mask[cell:cell + height, cell:cell + width], 0.0, 1.0)
    img = dark * (1 - mask[..., None]) + light * mask[..., None]
    return img.round().astype(np.uint8)


def shape_points(shape: str, cx: float, cy: float, size: float) -> np.ndarray:
    """Polygon vertices (N, 2) of a shape centred at (cx, cy) with bounding size `size` (not for circles)."""
    r = size / 2
    if shape == "square":
        angles = np.deg2rad([45, 135, 225, 315])
        radii = np.full(4, r * np.sqrt(2))
    elif shape == "triangle":
        angles = np.deg2rad([-90, 30, 150])
        radii = np.full(3, r)
    elif shape == "hexagon":
        angles = np.deg2rad(np.arange(6) * 60)
        radii = np.full(6, r)
    elif shape == "star":
        angles = np.deg2rad(np.arange(10) * 36 - 90)
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def draw_shape(img: np.ndarray, shape: str, colour: str, cx: float, cy: float, size: float) -> None:
    """Draw a filled, anti-aliased shape in place."""
    rgb = COLOURS[colour]
    if shape == "circle":
        centre = (int(round(cx * _SCALE)), int(round(cy * _SCALE)))
        cv2.circle(img, centre, int(round(size / 2 * _SCALE)), rgb, -1, cv2.LINE_AA, _SHIFT)
        return
    pts = np.round(shape_points(shape, cx, cy, size) * _SCALE).astype(np.int32)
    cv2.fillPoly(img, [pts], rgb, cv2.LINE_AA, _SHIFT)


def draw_text(img: np.ndarray, text: str, height_frac: float) -> None:
    """Burn large subtitle text into the lower part of the frame, white with a black outline."""
    h, w = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 2)
    scale = min(0.92 * w / tw, height_frac * h / th)
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    org = ((w - tw) // 2, h - max(base, int(0.06 * h)))
    cv2.putText(img, text, org, font, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def degrade(img: np.ndarray, kind: str, strength: dict[str, float], seed: int) -> np.ndarray:
    """A degraded copy: Gaussian blur, additive Gaussian noise (seeded) or over-exposure."""
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), strength["blur_sigma"])
    if kind == "noise":
        noise = np.random.default_rng(seed).normal(0.0, strength["noise_std"], img.shape)
        return np.clip(img.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
    if kind == "overexposed":
        out = img.astype(np.float32) * strength["overexpose_gain"] + strength["overexpose_offset"]
        return np.clip(out, 0, 255).round().astype(np.uint8)
    raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATIONS)}")


def crop_resize(img: np.ndarray, frac: float) -> np.ndarray:
    """Cut `frac` of each side and scale back to the original size (a near-duplicate's crop)."""
    h, w = img.shape[:2]
    dy, dx = int(round(h * frac)), int(round(w * frac))
    return cv2.resize(img[dy:h - dy, dx:w - dx], (w, h), interpolation=cv2.INTER_AREA)


def shift(img: np.ndarray, frac: float) -> np.ndarray:
    """Translate right and down by `frac` of the size, edges replicated (a near-duplicate's shift)."""
    h, w = img.shape[:2]
    matrix = np.float32([[1, 0, round(w * frac)], [0, 1, round(h * frac)]])
    return cv2.warpAffine(img, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
