"""STDiT registry: Open-Sora's parameter count for XL/2 (built on the meta device), PixArt-style names."""
import pytest
import torch

from models.stdit import STDIT_SIZES, STDiT_models, stdit_config

OPEN_SORA_STDIT3_XL2_PARAMS = 1_207_643_936  # STDiT3-XL/2, T5 4096-dim captions, 8 output channels


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_xl2_parameter_count_matches_open_sora():
    with torch.device("meta"):
        model = STDiT_models["XL/2"](caption_channels=4096, model_max_length=300)
    n = count(model)
    assert n == OPEN_SORA_STDIT3_XL2_PARAMS
    assert 1.1e9 <= n <= 1.21e9
    # The fixed null caption (300 x 4096) is a buffer, not a parameter.
    assert model.y_embedder.y_embedding.shape == (300, 4096)


def test_sizes_and_block_counts():
    assert set(STDiT_models) == {"tiny", "mini", "S/2", "B/2", "XL/2", "3B/2"}
    assert STDIT_SIZES["XL/2"] == (1152, 28, 16)
    assert STDIT_SIZES["mini"] == (128, 4, 4)  # the tiny profile's DiT
    mini = STDiT_models["mini"](caption_channels=384, model_max_length=32, qk_norm=True, fps_cond=True)
    assert (mini.cfg.hidden_size, len(mini.spatial_blocks), len(mini.temporal_blocks)) == (128, 4, 4)
    assert count(mini) == 2_387_360
    with torch.device("meta"):
        image = STDiT_models["B/2"](temporal=False)
        video = STDiT_models["B/2"]()
    assert len(video.spatial_blocks) == len(video.temporal_blocks) == 12
    assert image.temporal_blocks is None
    # A temporal block is a spatial block's twin: 16·D² weights + 13·D biases + 6·D table + 2 QK-norm weights.
    d, hd = 768, 64
    per_block = 16 * d * d + 13 * d + 6 * d + 2 * hd
    assert count(video) - count(image) == 12 * per_block


def test_parameter_names_mirror_pixart_and_open_sora():
    names = set(STDiT_models["tiny"](caption_channels=8, model_max_length=4).state_dict())
    for name in [
        "x_embedder.proj.weight", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.weight", "t_block.1.weight",
        "fps_embedder.mlp.0.weight", "y_embedder.y_proj.fc1.weight", "y_embedder.y_proj.fc2.weight",
        "y_embedder.y_embedding", "spatial_blocks.0.attn.qkv.weight", "spatial_blocks.0.attn.proj.weight",
        "spatial_blocks.0.attn.q_norm.weight", "spatial_blocks.0.cross_attn.q_linear.weight",
        "spatial_blocks.0.cross_attn.kv_linear.weight", "spatial_blocks.0.cross_attn.proj.weight",
        "spatial_blocks.0.mlp.fc1.weight", "spatial_blocks.0.mlp.fc2.weight", "spatial_blocks.0.scale_shift_table",
        "temporal_blocks.1.attn.k_norm.weight", "final_layer.linear.weight", "final_layer.scale_shift_table",
    ]:
        assert name in names, name


def test_unknown_size_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown STDiT size 'XXL/2'"):
        stdit_config("XXL/2")
    assert stdit_config("tiny", qk_norm=False).qk_norm is False
