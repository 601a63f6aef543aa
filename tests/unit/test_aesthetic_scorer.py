"""LAION aesthetic scorer wiring: a tiny random CLIP folder and a random MLP head in the released layout.

Random weights give no meaningful scores (nor the 0-10 range), so these tests check the pipeline: the head's
state-dict layout, CLIP embeddings -> head -> per-clip mean, weights resolved from the store or named when missing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from components.curation.score_config import ScorerSpec, build_scorer
from components.curation.scorer import ClipFrames
from components.curation.scorers.aesthetic import AestheticConfig, AestheticScorer
from models.vbench.aesthetic import LinearHead, MLPHead

SLOW = pytest.mark.slow  # importing transformers alone takes several seconds
RELEASED_KEYS = {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}


def save_tiny_clip(folder: Path, projection_dim: int = 768) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=projection_dim)
    CLIPVisionModelWithProjection(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def head_file(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    head = tmp_path_factory.mktemp("aes_head") / "head.pth"
    torch.save(MLPHead().state_dict(), head)
    return head


@pytest.fixture(scope="module")
def weights(tmp_path_factory, head_file) -> tuple[Path, Path]:
    return save_tiny_clip(tmp_path_factory.mktemp("aes_clip") / "clip"), head_file


@pytest.fixture(scope="module")
def scorer(weights) -> AestheticScorer:
    clip, head = weights
    return AestheticScorer(AestheticConfig(clip_path=str(clip), head_path=str(head)))


def frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_head_has_the_released_layout(head_file):
    state = torch.load(head_file, weights_only=True)
    assert set(state) == RELEASED_KEYS
    assert [tuple(state[f"layers.{i}.weight"].shape) for i in (0, 2, 4, 6, 7)] == \
        [(1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16)]


@SLOW
def test_scores_are_the_head_on_normalised_embeddings_averaged_per_clip(scorer):
    a, b = frames(3, 72, 128, 0), frames(3, 96, 96, 1)  # clips of different sizes share one batch
    rows = scorer.score([ClipFrames("a-000000-000003", a, [0, 1, 2], 24.0),
                         ClipFrames("b-000000-000003", b, [0, 1, 2], 24.0)])
    assert [list(r) for r in rows] == [["aes"], ["aes"]]
    with torch.no_grad():
        for row, clip in zip(rows, (a, b)):
            emb = scorer.clip.model(pixel_values=scorer.clip.processor(images=list(clip), return_tensors="pt")
                                    ["pixel_values"]).image_embeds  # (3, 768)
            assert emb.shape == (3, 768)
            expected = scorer.head(F.normalize(emb, dim=-1)).mean().item()
            assert row["aes"] == pytest.approx(expected, rel=1e-5)
    assert rows[0]["aes"] != rows[1]["aes"]
    assert scorer.score([]) == []


@SLOW
def test_registry_name_builds_this_scorer(weights):
    clip, head = weights
    built = build_scorer(ScorerSpec(name="aes", options={"clip_path": str(clip), "head_path": str(head)}))
    assert isinstance(built, AestheticScorer) and built.columns == ("aes",)
    assert (built.num_frames, built.short_side) == (3, 224)


@SLOW
def test_weights_come_from_the_store_and_provenance_pins_them(weights, workspace, monkeypatch, tmp_path):
    clip, head = weights
    store = tmp_path / "store"
    (store / "aesthetic").mkdir(parents=True)
    (store / "aesthetic" / "head.pth").write_bytes(head.read_bytes())
    save_tiny_clip(store / "clip")
    listing = {"weights": [{"name": "clip-vit-l-14-hf", "file": "clip", "used_by": ["test"]},
                           {"name": "laion-aesthetic", "file": "aesthetic/head.pth", "used_by": ["test"]}]}
    profile = Path(workspace).parent / "project" / "configs" / "aestest"
    profile.mkdir(parents=True)
    (profile / "weights.yaml").write_text(yaml.safe_dump(listing))
    monkeypatch.setenv("REELFORGE_WEIGHTS", str(store))
    prov = AestheticScorer(AestheticConfig(weights_profile="aestest")).provenance()["weights"]
    clip_id, head_id = prov.split(",")
    assert clip_id.startswith("clip@") and head_id.startswith("head.pth@") and len(head_id) == len("head.pth@") + 64


def test_missing_weights_are_named_before_any_loading(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("REELFORGE_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as err:
        AestheticScorer(AestheticConfig())
    assert "clip-vit-l-14-hf" in str(err.value) and "laion-aesthetic" in str(err.value)


@SLOW
def test_head_for_another_clip_width_is_refused(weights, tmp_path):
    clip, _ = weights
    torch.save(LinearHead(512).state_dict(), tmp_path / "linear512.pth")
    with pytest.raises(ValueError, match="512-d embeddings"):
        AestheticScorer(AestheticConfig(clip_path=str(clip), head_path=str(tmp_path / "linear512.pth")))
