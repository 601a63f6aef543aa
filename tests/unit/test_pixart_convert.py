"""PixArt → STDiT conversion: a random diffusers PixArtTransformer2DModel and the converted STDiT agree to 1e-5."""
import math

import pytest
import torch
from diffusers import PixArtTransformer2DModel
from diffusers.models.embeddings import get_2d_sincos_pos_embed

from components.dit.convert import DIFFUSERS, PIXART, ConversionError, convert_pixart
from components.dit.load_pixart import load_pixart
from models.stdit import STDiT, STDiTConfig
from models.stdit.embed import opensora_pos_embed

HEADS, HEAD_DIM, DEPTH, TEXT_DIM, TOKENS = 2, 16, 2, 24, 6
SAMPLE_SIZE, INTERPOLATION_SCALE = 8, 2.0  # latent side PixArt was "trained" at, and its position-grid scale
# STDiT places tokens on the grid of an input_sq_size-pixel square; PixArt's grid (base size sample_size/patch,
# divided by interpolation_scale) is that grid when input_sq_size = 8 px/latent · sample_size / scale.
INPUT_SQ_SIZE = int(8 * SAMPLE_SIZE / INTERPOLATION_SCALE)


def pixart() -> PixArtTransformer2DModel:
    torch.manual_seed(0)
    return PixArtTransformer2DModel(
        num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=4, out_channels=8, num_layers=DEPTH,
        cross_attention_dim=HEADS * HEAD_DIM, sample_size=SAMPLE_SIZE, patch_size=2, caption_channels=TEXT_DIM,
        norm_type="ada_norm_single", use_additional_conditions=False, interpolation_scale=INTERPOLATION_SCALE,
        num_embeds_ada_norm=1000, norm_eps=1e-6, activation_fn="gelu-approximate", attention_bias=True,
    ).eval()


def stdit(**overrides) -> STDiT:
    torch.manual_seed(1)
    cfg = dict(hidden_size=HEADS * HEAD_DIM, depth=DEPTH, num_heads=HEADS, patch_size=(1, 2, 2), in_channels=4,
               caption_channels=TEXT_DIM, model_max_length=TOKENS, qk_norm=False, learn_sigma=True,
               temporal=True, fps_cond=True, input_sq_size=INPUT_SQ_SIZE, norm_eps=1e-6)
    return STDiT(STDiTConfig(**{**cfg, **overrides})).eval()


@pytest.fixture(scope="module")
def image_model() -> PixArtTransformer2DModel:
    return pixart()


@pytest.fixture(scope="module")
def null() -> torch.Tensor:
    return torch.randn(TOKENS, TEXT_DIM, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def video_model(image_model, null) -> STDiT:
    model = stdit()
    state, _ = convert_pixart(image_model.state_dict(), model.state_dict(), null_caption=null)
    model.load_state_dict(state, strict=True)
    return model


def conditions(b=2):
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(b, TOKENS, TEXT_DIM, generator=gen)
    mask = torch.ones(b, TOKENS, dtype=torch.bool)
    mask[0, 2:] = False  # padded caption: both models must ignore tokens 2..5 of sample 0
    return y, mask, torch.tensor([37.5, 999.0])[:b], torch.tensor([24.0, 8.0])[:b]


def pixart_out(model, x, y, mask, t):
    """diffusers: (B, C, H, W) latents, timesteps in [0, 1000], float mask 1 = keep; returns (B, 2C, H, W)."""
    with torch.no_grad():
        return model(x, encoder_hidden_states=y, timestep=t, encoder_attention_mask=mask.float()).sample


@pytest.mark.parametrize("size", [(8, 8), (4, 16)])  # the training grid, and a wide one (2x8 tokens)
def test_single_frame_output_equals_diffusers_pixart(image_model, video_model, size):
    y, mask, t, fps = conditions()
    x = torch.randn(2, 4, *size, generator=torch.Generator().manual_seed(3))
    expected = pixart_out(image_model, x, y, mask, t)
    with torch.no_grad():
        got = video_model(x[:, :, None], t, y, mask=mask, fps=fps)  # (B, 8, 1, H, W)
    assert got.shape == (2, 8, 1, *size)
    assert expected.abs().max() > 0.5  # random diffusers init: a non-trivial output to compare
    torch.testing.assert_close(got[:, :, 0], expected, atol=1e-5, rtol=0)


def test_multi_frame_with_zero_temporal_blocks_is_the_image_model_frame_by_frame(image_model, video_model):
    y, mask, t, fps = conditions()
    x = torch.randn(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = video_model(x, t, y, mask=mask, fps=fps)  # (B, 8, T, H, W)
    for frame in range(3):
        expected = pixart_out(image_model, x[:, :, frame], y, mask, t)
        torch.testing.assert_close(got[:, :, frame], expected, atol=1e-5, rtol=0)


def test_report_maps_every_pixart_key_and_keeps_only_new_modules_at_init(image_model, null):
    target = stdit().state_dict()
    _, report = convert_pixart(image_model.state_dict(), target, null_caption=null)
    assert report.source_format == DIFFUSERS
    assert report.mapped["spatial_blocks.1.attn.qkv.weight"] == [
        f"transformer_blocks.1.attn1.to_{p}.weight" for p in "qkv"]
    assert report.mapped["spatial_blocks.0.cross_attn.kv_linear.bias"] == [
        "transformer_blocks.0.attn2.to_k.bias", "transformer_blocks.0.attn2.to_v.bias"]
    new = {k for k in target if k.startswith(("temporal_blocks.", "fps_embedder."))}
    assert set(report.kept_init) == new
    sources = [s for srcs in report.mapped.values() for s in srcs]
    assert sorted(sources) == sorted(image_model.state_dict())  # every diffusers tensor used exactly once
    assert report.adapted == {"y_embedder.y_embedding": "set from the null_caption argument"}


def test_qk_norm_target_reports_the_norm_weights_as_new(image_model, null):
    target = stdit(qk_norm=True).state_dict()
    _, report = convert_pixart(image_model.state_dict(), target, null_caption=null)
    assert "spatial_blocks.0.attn.q_norm.weight" in report.kept_init
    assert "QK-norm" in report.kept_init["spatial_blocks.1.attn.k_norm.weight"]


def original_pixart_state(diffusers_state: dict, null: torch.Tensor) -> dict:
    """The PixArt .pth layout, following PixArt-Σ's tools/convert_pixart_to_diffusers.py in reverse."""
    d = diffusers_state
    out = {
        "x_embedder.proj.weight": d["pos_embed.proj.weight"], "x_embedder.proj.bias": d["pos_embed.proj.bias"],
        "final_layer.linear.weight": d["proj_out.weight"], "final_layer.linear.bias": d["proj_out.bias"],
        "final_layer.scale_shift_table": d["scale_shift_table"], "y_embedder.y_embedding": null,
        "pos_embed": torch.zeros(1, 16, HEADS * HEAD_DIM),  # PixArt saves its fixed table; it must be dropped
    }
    for w in ("weight", "bias"):
        out[f"t_embedder.mlp.0.{w}"] = d[f"adaln_single.emb.timestep_embedder.linear_1.{w}"]
        out[f"t_embedder.mlp.2.{w}"] = d[f"adaln_single.emb.timestep_embedder.linear_2.{w}"]
        out[f"t_block.1.{w}"] = d[f"adaln_single.linear.{w}"]
        out[f"y_embedder.y_proj.fc1.{w}"] = d[f"caption_projection.linear_1.{w}"]
        out[f"y_embedder.y_proj.fc2.{w}"] = d[f"caption_projection.linear_2.{w}"]
        for i in range(DEPTH):
            tb, b = f"transformer_blocks.{i}", f"blocks.{i}"
            out[f"{b}.attn.qkv.{w}"] = torch.cat([d[f"{tb}.attn1.to_{p}.{w}"] for p in "qkv"])
            out[f"{b}.attn.proj.{w}"] = d[f"{tb}.attn1.to_out.0.{w}"]
            out[f"{b}.cross_attn.q_linear.{w}"] = d[f"{tb}.attn2.to_q.{w}"]
            out[f"{b}.cross_attn.kv_linear.{w}"] = torch.cat([d[f"{tb}.attn2.to_{p}.{w}"] for p in "kv"])
            out[f"{b}.cross_attn.proj.{w}"] = d[f"{tb}.attn2.to_out.0.{w}"]
            out[f"{b}.mlp.fc1.{w}"] = d[f"{tb}.ff.net.0.proj.{w}"]
            out[f"{b}.mlp.fc2.{w}"] = d[f"{tb}.ff.net.2.{w}"]
    for i in range(DEPTH):
        out[f"blocks.{i}.scale_shift_table"] = d[f"transformer_blocks.{i}.scale_shift_table"]
    return out


def test_original_pth_checkpoint_loads_and_matches_diffusers(tmp_path, image_model, null):
    short_null = null[:4]  # PixArt-α keeps 120 null tokens, Σ 300: a shorter table is extended (Open-Sora)
    path = tmp_path / "PixArt-Sigma-test.pth"
    torch.save({"state_dict": original_pixart_state(image_model.state_dict(), short_null)}, path)
    model = stdit()
    report = load_pixart(model, str(path))
    assert report.source_format == PIXART
    assert list(report.dropped) == ["pos_embed"]
    table = model.y_embedder.y_embedding
    torch.testing.assert_close(table[:4], short_null)
    torch.testing.assert_close(table[4:], short_null[-1:].expand(2, -1))  # the last null token repeated
    y, mask, t, fps = conditions()
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        got = model(x[:, :, None], t, y, mask=mask, fps=fps)[:, :, 0]
    torch.testing.assert_close(got, pixart_out(image_model, x, y, mask, t), atol=1e-5, rtol=0)


def test_diffusers_folder_loads_through_the_weights_reader(tmp_path, image_model, video_model, null):
    image_model.save_pretrained(tmp_path / "pipeline" / "transformer")
    model = stdit()
    load_pixart(model, str(tmp_path / "pipeline"), null_caption=null)
    for key, value in video_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.update({"blocks_extra.weight": torch.zeros(1)}), "blocks_extra.weight: unknown key"),
    (lambda s: s.update({"adaln_single.emb.resolution_embedder.linear_1.weight": torch.zeros(1)}),
     "micro-conditions"),
    (lambda s: s.update({"transformer_blocks.0.attn1.norm_q.weight": torch.zeros(1)}), "QK-norm is a LayerNorm"),
    (lambda s: s.pop("transformer_blocks.1.ff.net.2.bias"), "spatial_blocks.1.mlp.fc2.bias: no key of the diffusers"),
    (lambda s: s.pop("transformer_blocks.0.attn1.to_v.weight"),
     "spatial_blocks.0.attn.qkv.weight: fused from 3 source tensors, only ['transformer_blocks.0.attn1.to_q.weight', "
     "'transformer_blocks.0.attn1.to_k.weight'] present"),
])
def test_strict_about_unexpected_and_missing_keys(image_model, null, edit, message):
    source = dict(image_model.state_dict())
    edit(source)
    with pytest.raises(ConversionError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        convert_pixart(source, stdit().state_dict(), null_caption=null)


def test_mismatched_targets_are_named(image_model, null):
    with pytest.raises(ConversionError, match=r"transformer_blocks\.1\.scale_shift_table → spatial_blocks\.1\."
                                              r"scale_shift_table: the target STDiT has no such parameter"):
        convert_pixart(image_model.state_dict(), stdit(depth=1).state_dict(), null_caption=null)
    with pytest.raises(ConversionError, match=r"y_embedder\.y_proj\.fc1\.weight .*shape \(32, 24\) does not match "
                                              r"the target's \(32, 16\)"):
        convert_pixart(image_model.state_dict(), stdit(caption_channels=16).state_dict(), null_caption=null[:, :16])
    with pytest.raises(ConversionError, match="has no null caption; pass null_caption"):
        convert_pixart(image_model.state_dict(), stdit().state_dict())
    with pytest.raises(ConversionError, match="already an STDiT state dict"):
        convert_pixart(stdit().state_dict(), stdit().state_dict())


def test_position_embedding_differs_from_pixart_only_by_open_soras_rounding():
    """Open-Sora rounds base_size = round(sqrt(h·w)) but not the scale: for 2x4 tokens (sqrt 8 ≈ 2.83 → 3)
    every position is PixArt's times 3/sqrt(8), i.e. PixArt with interpolation_scale · sqrt(8)/3."""
    dim, h, w = HEADS * HEAD_DIM, 2, 4
    ours = opensora_pos_embed(dim, h, w, pixel_height=8 * 2 * h, pixel_width=8 * 2 * w, input_sq_size=INPUT_SQ_SIZE)
    base = SAMPLE_SIZE // 2
    pixart_table = get_2d_sincos_pos_embed(dim, (h, w), base_size=base, interpolation_scale=INTERPOLATION_SCALE)
    assert (ours - pixart_table).abs().max() > 1e-2
    scale = INTERPOLATION_SCALE * math.sqrt(h * w) / round(math.sqrt(h * w))
    rounded = get_2d_sincos_pos_embed(dim, (h, w), base_size=base, interpolation_scale=scale)
    torch.testing.assert_close(ours, rounded.float(), atol=1e-6, rtol=0)


def test_null_caption_argument_replaces_the_checkpoints_table(image_model, null):
    source = original_pixart_state(image_model.state_dict(), null)
    state, report = convert_pixart(source, stdit().state_dict(), null_caption=2 * null)
    torch.testing.assert_close(state["y_embedder.y_embedding"], 2 * null)
    assert report.dropped == {"pos_embed": report.dropped["pos_embed"],
                              "y_embedder.y_embedding": "replaced by the null_caption argument"}
