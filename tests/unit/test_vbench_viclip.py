"""temporal_style / overall_consistency: ViCLIP (real architecture, checkpoint names) and its tokens, end to end."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from components.evaluation.vbench.dimensions_viclip import video_text_similarity, viclip_tokens
from components.evaluation.vbench.frames import clip_tensor, middle_indices
from components.evaluation.vbench.loaders import load_clip, load_viclip
from components.evaluation.vbench.prompts import VideoItem
from models.vbench.viclip import ViCLIP, ViCLIP_L14, ViCLIPConfig
from vbench_testing import moving_square, write_lossless, write_tiny_clip

VOCAB = 2 * 40 + 2  # write_tiny_clip's character vocabulary
TINY = ViCLIPConfig(patch_size=32, width=64, layers=1, heads=1, embed_dim=16, text_width=64, text_layers=1,
                    text_heads=1, vocab=VOCAB)


@pytest.mark.slow  # the first normal_ on the meta device takes seconds here
def test_viclip_l14_has_the_checkpoint_names_and_size():
    with torch.device("meta"):
        model = ViCLIP_L14()
    params = dict(model.named_parameters())
    # vision 303,974,400 + text 123,615,744 + temp 1 (counted by hand from the widths in the docstring)
    assert sum(p.numel() for p in params.values()) == 427_590_145
    assert params["vision_encoder.temporal_positional_embedding"].shape == (1, 8, 1024)
    assert params["text_encoder.positional_embedding"].shape == (32, 768)
    assert {"vision_encoder.transformer.resblocks.23.attn.in_proj_weight", "vision_encoder.conv1.weight",
            "text_encoder.transformer.resblocks.11.mlp.c_proj.bias", "text_encoder.text_projection",
            "temp"} <= set(params)
    assert "vision_encoder.conv1.bias" not in params


def test_temporal_embedding_is_added_per_frame():
    torch.manual_seed(0)
    model = ViCLIP(TINY).eval()
    video = torch.randn(1, 8, 3, 224, 224)
    reverse = video.flip(1)
    with torch.no_grad():
        model.vision_encoder.temporal_positional_embedding.zero_()  # no time signal: frame order cannot matter
        assert torch.allclose(model.encode_vision(video), model.encode_vision(reverse), atol=1e-5)
        model.vision_encoder.temporal_positional_embedding.normal_()
        out = model.encode_vision(video)
        assert out.shape == (1, 16) and not torch.allclose(out, model.encode_vision(reverse), atol=1e-3)


def test_loader_reads_the_model_dict_with_strict_names(tmp_path):
    torch.manual_seed(1)
    model = ViCLIP(TINY).eval()
    torch.save({"model": model.state_dict()}, tmp_path / "viclip.pth")
    loaded, record = load_viclip(str(tmp_path / "viclip.pth"))
    tokens = torch.zeros(1, 32, dtype=torch.long)
    tokens[0, :3] = torch.tensor([VOCAB - 2, 5, VOCAB - 1])
    with torch.no_grad():
        assert loaded.cfg == TINY and torch.equal(loaded.encode_text(tokens), model.encode_text(tokens))
    state = model.state_dict()
    del state["temp"]
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad.pth: not a ViCLIP checkpoint: missing \['temp'\]"):
        load_viclip(str(tmp_path / "bad.pth"))


@pytest.mark.slow  # the CLIP tokenizer comes from transformers (several seconds to import)
def test_video_text_similarity_end_to_end(tmp_path):
    clip = load_clip(str(write_tiny_clip(tmp_path / "clip")))
    tokens = viclip_tokens(clip.tokenizer, "a red star", 32)
    # characters a-z are ids 0-25, a word's last character is "<c></w>" = 40 + id; start 80, end 81
    assert tokens[0, :10].tolist() == [80, 40, 17, 4, 40 + 3, 18, 19, 0, 40 + 17, 81]
    assert tokens[0, 10:].eq(0).all() and tokens.shape == (1, 32)
    long = viclip_tokens(clip.tokenizer, "x" * 100, 32)
    assert long.shape == (1, 32) and long[0, -1] == VOCAB - 1 and long[0, 0] == VOCAB - 2

    torch.manual_seed(0)
    viclip = ViCLIP(TINY).eval()
    frames = moving_square(12, 40, step=3)
    path = write_lossless(frames, tmp_path / "a red square-0.mp4")
    result = video_text_similarity("overall_consistency", viclip, clip.tokenizer,
                                   [VideoItem(str(path), "a red square")])
    with torch.no_grad():
        pixels = clip_tensor(frames[middle_indices(8, 12)], uint8=True)[None]
        video = F.normalize(viclip.encode_vision(pixels), dim=-1)
        text = F.normalize(viclip.encode_text(viclip_tokens(clip.tokenizer, "a red square", 32)), dim=-1)
    assert result.value == pytest.approx(float(video @ text.T), abs=1e-5) and -1 <= result.value <= 1
    assert result.per_video[0]["prompt"] == "a red square"
