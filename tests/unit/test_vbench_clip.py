"""background_consistency, appearance_style and aesthetic_quality on random-init CLIP (transformers) end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.evaluation.vbench.dimensions_clip import aesthetic_quality, appearance_style, text_embedding
from components.evaluation.vbench.dimensions_consistency import background_consistency, clip_image_embeds
from components.evaluation.vbench.frames import clip_pil, clip_tensor
from components.evaluation.vbench.loaders import load_aesthetic_head, load_clip
from components.evaluation.vbench.prompts import VideoItem
from models.vbench.aesthetic import LinearHead, MLPHead
from vbench_testing import moving_square, write_lossless, write_tiny_clip

SLOW = pytest.mark.slow  # importing transformers alone takes several seconds


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return load_clip(str(write_tiny_clip(tmp_path_factory.mktemp("clip") / "clip-vit-b-32-hf")))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    still = write_lossless(np.repeat(moving_square(1, 40), 2, axis=0), folder / "a still square-0.mp4")
    moving = write_lossless(moving_square(3, 40, step=9), folder / "a moving square-0.mp4")
    return [VideoItem(str(still), "a still square", {"appearance_style": "in a checkered style"}),
            VideoItem(str(moving), "a moving square", {"appearance_style": "in a striped style"})]


@SLOW
def test_loader_records_the_folder_hash_and_refuses_other_folders(clip, tmp_path):
    assert clip.record.path.endswith("clip-vit-b-32-hf") and len(clip.record.sha256) == 64
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: not a local transformers CLIP folder"):
        load_clip(str(tmp_path))


@SLOW
def test_background_consistency_end_to_end(clip, videos):
    result = background_consistency(clip.model, videos)
    still, moving = (r["score"] for r in result.per_video)
    assert still == pytest.approx(1.0, abs=1e-5) and 0.0 <= moving <= 1.0
    assert result.value == pytest.approx((1 * still + 2 * moving) / 3, abs=1e-6)  # 1 + 2 frame pairs


@SLOW
def test_appearance_style_is_the_frame_text_cosine(clip, videos):
    with torch.no_grad():
        clip.model.logit_scale.fill_(math.log(100.0))  # OpenAI's scale: the score is then the cosine itself
    result = appearance_style(clip.model, clip.tokenizer, videos)
    frames = np.stack([moving_square(3, 40, step=9)[t] for t in range(3)])
    with torch.no_grad():
        image = F.normalize(clip_image_embeds(clip.model, clip_pil(frames)), dim=-1)
    text = text_embedding(clip.model, clip.tokenizer, "in a striped style")
    assert result.per_video[1]["frame_scores"] == pytest.approx((image @ text.T).reshape(-1).tolist(), abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for r in result.per_video for s in r["frame_scores"])
    all_frames = [s for r in result.per_video for s in r["frame_scores"]]
    assert len(all_frames) == 5 and result.value == pytest.approx(sum(all_frames) / 5)  # frame-weighted


@SLOW
def test_appearance_style_without_style_text_names_the_video(clip, videos):
    with pytest.raises(ValueError, match="a still square-0.mp4: prompt 'a still square' has no auxiliary_info"):
        appearance_style(clip.model, clip.tokenizer, [VideoItem(videos[0].path, videos[0].prompt)])


@SLOW
def test_aesthetic_quality_end_to_end(clip, videos, tmp_path):
    torch.manual_seed(0)
    head = LinearHead(16)
    torch.save(head.state_dict(), tmp_path / "head.pth")
    loaded, record = load_aesthetic_head(str(tmp_path / "head.pth"))
    result = aesthetic_quality(clip.model, loaded, videos)
    frames = moving_square(3, 40, step=9)
    with torch.no_grad():
        emb = F.normalize(clip_image_embeds(clip.model, clip_tensor(frames)), dim=-1)
        want = float((head(emb) / 10).mean())
    assert result.per_video[1]["score"] == pytest.approx(want, abs=1e-6)
    assert result.value == pytest.approx(np.mean([r["score"] for r in result.per_video]))
    with torch.no_grad():  # a head that always says 5 gives 0.5
        loaded.weight.zero_()
        loaded.bias.fill_(5.0)
    assert aesthetic_quality(clip.model, loaded, videos).value == pytest.approx(0.5)
    assert len(record.sha256) == 64


def test_both_laion_heads_load_by_their_parameter_names(tmp_path):
    torch.save(MLPHead().state_dict(), tmp_path / "mlp.pth")
    head, _ = load_aesthetic_head(str(tmp_path / "mlp.pth"))
    assert isinstance(head, MLPHead) and head(torch.randn(2, 768)).shape == (2, 1)
    torch.save({"w": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth: not a LAION aesthetic head"):
        load_aesthetic_head(str(tmp_path / "other.pth"))
