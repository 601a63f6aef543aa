"""Temporal consistency: the offline descriptor's closed forms and ordering, and the CLIP path on a tiny random CLIP."""
from __future__ import annotations

import numpy as np
import pytest

from components.curation.scorer import ClipFrames
from components.curation.scorers import build
from components.curation.scorers.temporal import (TemporalConfig, TemporalScorer, colour_histogram,
                                                  gradient_histogram)


def blobs(seed: int, height: int = 64, width: int = 96, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A smooth random texture (H, W, 3) uint8, tinted per channel."""
    import cv2

    coarse = np.random.default_rng(seed).random((height // 8 + 2, width // 8 + 2)).astype(np.float32)
    grey = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 220 + 20
    return np.stack([grey * t for t in tint], axis=2).clip(0, 255).astype(np.uint8)


def temporal(first: np.ndarray, last: np.ndarray, scorer: TemporalScorer | None = None) -> float:
    scorer = scorer or TemporalScorer(TemporalConfig(method="features"))
    return scorer.score([ClipFrames("c", np.stack([first, last]), [0, 47], 24.0)])[0]["temporal"]


def test_colour_histogram_of_a_flat_frame_is_one_bin():
    frame = np.full((8, 8, 3), (200, 10, 100), np.uint8)
    hist = colour_histogram(frame, 8)
    assert hist.shape == (512,) and hist[6 * 64 + 0 * 8 + 3] == 1.0 and hist.sum() == 1.0


def test_gradient_histogram_of_a_vertical_edge_is_horizontal_gradient():
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[:, 8:] = 255
    hist = gradient_histogram(frame, bins=9, grid=2)
    assert hist.shape == (36,) and hist.sum() == pytest.approx(1.0)
    assert hist.reshape(4, 9)[:, 0].sum() == pytest.approx(1.0)  # every bit of magnitude in the 0-degree bin
    assert hist.reshape(4, 9)[:, 0] == pytest.approx([0.25] * 4)  # the edge crosses all four cells equally


def test_identical_frames_score_one():
    frame = blobs(0)
    assert temporal(frame, frame) == pytest.approx(1.0)


def test_same_scene_shifted_scores_above_a_different_scene():
    canvas = blobs(0, 64, 120)
    first, shifted = canvas[:, :96], canvas[:, 24:]  # a pan by a quarter of the frame
    other = blobs(5, tint=(1.0, 0.5, 0.2))  # another texture, another colour
    same, cut = temporal(first, shifted), temporal(first, other)
    assert 0.8 < same < 1.0 and cut < 0.6 and same - cut > 0.3, (same, cut)


def test_features_provenance_and_registry():
    scorer = build("temporal", {"method": "features"})
    assert (scorer.name, scorer.columns, scorer.num_frames, scorer.short_side) == ("temporal", ("temporal",), 2, 96)
    assert scorer.provenance()["weights"] == "none"
    assert scorer.provenance()["method"].startswith("features (offline stand-in for CLIP)")


def test_required_clip_without_weights_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no transformers CLIP folder"):
        TemporalScorer(TemporalConfig(method="clip", clip_path=str(tmp_path)))
    assert TemporalScorer(TemporalConfig(clip_path=str(tmp_path))).clip is None  # auto: the offline descriptor


@pytest.mark.slow  # importing transformers alone takes ~3 s
def test_clip_path_with_a_tiny_random_clip(tmp_path):
    import torch
    from PIL import Image
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=16)
    model = CLIPVisionModelWithProjection(config).eval()
    model.save_pretrained(tmp_path / "clip")
    scorer = TemporalScorer(TemporalConfig(method="clip", clip_path=str(tmp_path / "clip")))
    assert scorer.short_side == 32
    prov = scorer.provenance()
    assert prov["method"] == "CLIP image embedding cosine (first, last frame)" and prov["weights"].startswith("clip@")
    first, last = blobs(0), blobs(3, tint=(1.0, 0.3, 0.3))
    assert temporal(first, first, scorer) == pytest.approx(1.0, abs=1e-5)
    # the cosine of the two projected embeddings, preprocessed by hand: 64x96 -> 32x48 -> centre crop 32x32
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    crops = [np.asarray(Image.fromarray(f).resize((48, 32), Image.Resampling.BICUBIC))[:, 8:40] for f in (first, last)]
    pixels = torch.tensor(np.stack([(c / 255.0 - mean) / std for c in crops]), dtype=torch.float32).permute(0, 3, 1, 2)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(model(pixel_values=pixels).image_embeds, dim=-1)
    assert temporal(first, last, scorer) == pytest.approx(float(emb[0] @ emb[1]), abs=2e-3)
