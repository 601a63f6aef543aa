"""temporal: VidGen-1M temporal consistency, the similarity of a clip's first and last frame (a missed cut scores low).

method "clip" (VidGen): cosine of the CLIP image embeddings (CLIPVisionModelWithProjection from a local folder in
the weights store). method "features" (the offline stand-in, no weights): a hand-made image descriptor, cosine of
  colour       a joint RGB histogram (colour_bins per channel), square-rooted (Hellinger) so big flat regions
               do not drown the rest
  gradients    unsigned gradient-orientation histograms weighted by magnitude on a grid x grid layout (HOG-like)
averaged with colour_weight. Both parts are non-negative, so the score lies in [0, 1]; like CLIP's it barely moves
when the subject or the camera moves within a shot and drops when the scene changes.
method "auto": CLIP when its weights are in the store, else the features; provenance() names the one used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.curation.scorer import ClipFrames

class TemporalConfig(BaseModel):
    """Method, frame size, and the offline descriptor's bins and weights."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["auto", "clip", "features"] = "auto"
    short_side: int = Field(96, ge=16)  # frame size for the features method
    colour_bins: int = Field(8, ge=2)  # per channel: 8^3 joint bins
    orientation_bins: int = Field(9, ge=2)  # unsigned, over 0-180 degrees
    grid: int = Field(2, ge=1)  # gradient histograms per grid x grid cells
    colour_weight: float = Field(0.5, ge=0, le=1)
    clip_weights: str = "clip-vit-b-32-hf"  # name in the weights list of weights_profile: a transformers folder
    clip_path: str | None = None  # an explicit transformers CLIP folder (skips the weights list)
    weights_profile: str = "full"
    device: str = "cpu"


def colour_histogram(frame: np.ndarray, bins: int) -> np.ndarray:
    """Square root of the normalised joint RGB histogram of an (H, W, 3) uint8 frame."""
    hist = cv2.calcHist([frame], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
    return np.sqrt(hist / max(hist.sum(), 1.0))


def gradient_histogram(frame: np.ndarray, bins: int, grid: int) -> np.ndarray:
    """Magnitude-weighted gradient-orientation histograms of grid x grid cells, concatenated, L1-normalised."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude, angle = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    which = (np.mod(angle, 180.0) / 180.0 * bins).astype(int) % bins
    h, w = grey.shape
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)[:, None]
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)[None, :]
    cell = (rows * grid + cols) * bins + which  # histogram slot of every pixel
    hist = np.bincount(cell.ravel(), weights=magnitude.ravel(), minlength=grid * grid * bins)
    return hist / max(hist.sum(), 1e-12)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:  # both featureless (flat frames): equal only if both are empty
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norm)


def feature_similarity(first: np.ndarray, last: np.ndarray, cfg: TemporalConfig) -> float:
    """The offline descriptor's similarity of two (H, W, 3) uint8 frames, in [0, 1]."""
    colour = _cosine(colour_histogram(first, cfg.colour_bins), colour_histogram(last, cfg.colour_bins))
    grads = _cosine(gradient_histogram(first, cfg.orientation_bins, cfg.grid),
                    gradient_histogram(last, cfg.orientation_bins, cfg.grid))
    return cfg.colour_weight * colour + (1 - cfg.colour_weight) * grads


class ClipEmbedder:
    """L2-normalised CLIP image embeddings from a transformers folder (config.json + weights).

    Preprocessing is transformers' own CLIP image processor (PIL backend: torchvision is not a dependency),
    from the folder's preprocessor_config.json when it has one, else CLIP's defaults at the model's input size.
    """

    def __init__(self, folder: str, device: str = "cpu"):
        import torch
        from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

        self.torch = torch
        self.model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.size = int(self.model.config.image_size)
        if Path(folder, "preprocessor_config.json").is_file():
            self.processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
        else:
            self.processor = CLIPImageProcessorPil(size={"shortest_edge": self.size},
                                                   crop_size={"height": self.size, "width": self.size})
        self.device = device

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        """N (H, W, 3) uint8 RGB frames of any sizes → (N, D) unit vectors."""
        pixels = self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(self.device)
        with self.torch.no_grad():
            emb = self.model(pixel_values=pixels).image_embeds
        return self.torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()


def find_clip_folder(cfg: TemporalConfig, required: bool) -> str | None:
    """The CLIP folder the config points at (clip_path, else clip_weights in the weights list), or None."""
    if cfg.clip_path:
        if Path(cfg.clip_path, "config.json").is_file():
            return cfg.clip_path
        if required:
            raise FileNotFoundError(f"{cfg.clip_path}: no transformers CLIP folder there (config.json missing)")
        return None
    from components.weights import require

    try:
        return require(cfg.weights_profile, [cfg.clip_weights])[cfg.clip_weights]
    except FileNotFoundError:
        if required:
            raise
        return None


class TemporalScorer:
    """temporal = similarity of the first and last frame of a clip (1 = same content)."""

    name = "temporal"
    columns = ("temporal",)
    num_frames = 2  # sample_indices gives the first and the last frame

    def __init__(self, cfg: TemporalConfig | None = None):
        self.cfg = cfg or TemporalConfig()
        self.short_side = self.cfg.short_side
        self.clip, self.weights_id = None, "none"
        if self.cfg.method != "features":
            folder = find_clip_folder(self.cfg, required=self.cfg.method == "clip")
            if folder is not None:
                from components.hashing import content_hash

                self.clip = ClipEmbedder(folder, self.cfg.device)
                self.weights_id = f"{Path(folder).name}@{content_hash(folder)}"
                self.short_side = self.clip.size  # CLIP resizes to its input size itself; decode no smaller

    def provenance(self) -> dict[str, str]:
        if self.clip is not None:
            return {"scorer": self.name, "method": "CLIP image embedding cosine (first, last frame)",
                    "weights": self.weights_id, "version": "1"}
        c = self.cfg
        return {"scorer": self.name, "weights": "none", "version": "1",
                "method": f"features (offline stand-in for CLIP): RGB {c.colour_bins}^3 histogram + "
                          f"{c.grid}x{c.grid}x{c.orientation_bins} gradient orientations, colour weight {c.colour_weight}"}

    def score(self, batch: list[ClipFrames]) -> list[dict[str, float | str]]:
        ends = [(clip.frames[0], clip.frames[-1]) for clip in batch]
        if self.clip is None:
            return [{"temporal": feature_similarity(a, b, self.cfg)} for a, b in ends]
        emb = self.clip.embed([frame for pair in ends for frame in pair])  # first0, last0, first1, ...
        return [{"temporal": float(np.dot(emb[2 * k], emb[2 * k + 1]))} for k in range(len(batch))]
