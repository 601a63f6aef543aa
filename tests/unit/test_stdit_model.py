"""STDiT forward: shapes, zero-init temporal blocks == image model, x_mask timestep-0 frames, caption dropout."""
import pytest
import torch

from models.stdit import STDiT, STDiTConfig, stdit_config

TEXT_DIM, TOKENS = 16, 6


def tiny(**overrides) -> STDiT:
    torch.manual_seed(0)
    return STDiT(stdit_config("tiny", caption_channels=TEXT_DIM, model_max_length=TOKENS, **overrides)).eval()


def perturb_non_temporal(model: STDiT, std: float = 0.05) -> None:
    """PixArt init zeroes the final layer and cross-attention; give them values so outputs are non-trivial."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("temporal_blocks"):
                p.add_(torch.randn(p.shape, generator=gen) * std)


def inputs(b=2, t=3, h=6, w=4):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(b, 4, t, h, w, generator=gen)
    y = torch.randn(b, TOKENS, TEXT_DIM, generator=gen)
    text_mask = torch.ones(b, TOKENS, dtype=torch.bool)
    text_mask[0, 3:] = False
    return x, y, text_mask, torch.tensor([300.0, 700.0])[:b], torch.tensor([24.0, 12.0])[:b]


@pytest.mark.parametrize("learn_sigma,out_c", [(True, 8), (False, 4)])
@pytest.mark.parametrize("size", [(3, 6, 4), (2, 5, 7), (1, 4, 4)])
def test_output_shape(learn_sigma, out_c, size):
    model = tiny(learn_sigma=learn_sigma)
    x, y, text_mask, ts, fps = inputs(t=size[0], h=size[1], w=size[2])
    out = model(x, ts, y, mask=text_mask, fps=fps)
    assert out.shape == (2, out_c, *size)  # odd H/W are padded for the 2x2 patches and cropped back
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("attention", ["factorized", "full"])
def test_zero_init_temporal_blocks_make_video_model_equal_frame_by_frame_image_model(attention):
    video = tiny(temporal=True, temporal_attention=attention)
    perturb_non_temporal(video)
    image = tiny(temporal=False)
    image.load_state_dict({k: v for k, v in video.state_dict().items() if not k.startswith("temporal_blocks")})
    x, y, text_mask, ts, fps = inputs(t=4)
    b, c, t, h, w = x.shape
    out_video = video(x, ts, y, mask=text_mask, fps=fps)
    # Each frame alone as a one-frame clip: batch (B·T, C, 1, H, W), conditions repeated per frame.
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, 1, h, w)
    out_frames = image(
        frames, ts.repeat_interleave(t), y.repeat_interleave(t, 0), mask=text_mask.repeat_interleave(t, 0),
        fps=fps.repeat_interleave(t),
    )
    out_frames = out_frames.reshape(b, t, -1, h, w).permute(0, 2, 1, 3, 4)  # (B, C_out, T, H, W)
    assert out_video.abs().max() > 0.1  # not the trivial all-zero output of an untouched PixArt init
    torch.testing.assert_close(out_video, out_frames, atol=1e-5, rtol=0)


def test_temporal_blocks_mix_frames_once_trained():
    video = tiny()
    perturb_non_temporal(video)
    with torch.no_grad():
        for p in video.temporal_blocks.parameters():
            p.add_(0.1)
    x, y, text_mask, ts, fps = inputs()
    base = video(x, ts, y, mask=text_mask, fps=fps)
    x2 = x.clone()
    x2[:, :, 2] += 1.0  # change only the last frame
    moved = video(x2, ts, y, mask=text_mask, fps=fps)
    assert (moved[:, :, 0] - base[:, :, 0]).abs().max() > 1e-4  # frame 0 now sees frame 2


@pytest.mark.parametrize("full", [False, True])
def test_full_attention_relates_other_positions_of_other_frames_in_one_block(full):
    from models.stdit.blocks import STDiTBlock

    torch.manual_seed(0)
    block = STDiTBlock(16, 2, 4.0, True, 1e-6, 1e-6, temporal=True, rope_theta=10000.0, full_attention=full).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    x = torch.randn(2, 3, 4, 16)  # (B, T, S, D)
    y, t_mod = torch.randn(2, 5, 16), torch.randn(2, 1, 6 * 16)
    base = block(x, y, t_mod, None)
    x2 = x.clone()
    x2[:, 2, 0] += torch.randn(16)  # the last frame's first position only (not a constant: LayerNorm removes it)
    moved = (block(x2, y, t_mod, None) - base).abs().amax(dim=(0, 3))  # (T, S)
    assert moved[0, 0] > 1e-3  # both kinds: the same position in frame 0
    if full:
        assert moved[0, 3] > 1e-3 and moved[2, 1] > 1e-3  # other positions, this and other frames
    else:
        assert moved[0, 3] == 0 and moved[2, 1] == 0  # factorized: its own position only


def test_full_attention_is_rope_by_frame_and_spatial_blocks_stay_spatial():
    model = tiny(temporal_attention="full")
    assert all(b.full_attention for b in model.temporal_blocks)
    assert not any(b.full_attention for b in model.spatial_blocks)
    assert all(b.attn.rope_theta is None for b in model.spatial_blocks)


def test_x_mask_frames_use_timestep_zero_modulation():
    model = tiny(temporal=False)
    perturb_non_temporal(model)
    x, y, text_mask, ts, fps = inputs()
    x_mask = torch.tensor([[True, False, True], [False, False, False]])
    out = model(x, ts, y, mask=text_mask, x_mask=x_mask, fps=fps)
    at_ts = model(x, ts, y, mask=text_mask, fps=fps)
    at_zero = model(x, torch.zeros(2), y, mask=text_mask, fps=fps)
    # Without temporal mixing each frame depends on its own timestep only: noised frames → ts, given → 0.
    expected = torch.where(x_mask[:, None, :, None, None], at_ts, at_zero)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert (at_ts - at_zero).abs().max() > 1e-3


def test_forced_caption_dropout_equals_null_caption():
    model = tiny()
    perturb_non_temporal(model)
    x, y, text_mask, ts, fps = inputs()
    dropped = model(x, ts, y, mask=text_mask, fps=fps, force_drop_ids=torch.tensor([True, False]))
    null_y = torch.cat([model.null_caption(1), y[1:]])
    assert model.y_embedder.y_embedding.shape == (TOKENS, TEXT_DIM)
    torch.testing.assert_close(dropped, model(x, ts, null_y, mask=text_mask, fps=fps), atol=1e-6, rtol=0)
    assert "y_embedder.y_embedding" in model.state_dict()  # fixed buffer, saved like PixArt's
    assert "y_embedder.y_embedding" not in dict(model.named_parameters())
    assert "y_embedder.y_embedding" in dict(tiny(learn_null_caption=True).named_parameters())


def test_padded_text_tokens_are_ignored():
    model = tiny()
    perturb_non_temporal(model)
    x, y, text_mask, ts, fps = inputs()
    y2 = y.clone()
    y2[0, 3:] = 100.0  # sample 0 masks tokens 3.. out
    torch.testing.assert_close(
        model(x, ts, y, mask=text_mask, fps=fps), model(x, ts, y2, mask=text_mask, fps=fps), atol=1e-5, rtol=0
    )


def test_fps_embedder_starts_as_no_op_and_is_required():
    model = tiny()
    perturb_non_temporal(model, std=0.0)
    x, y, text_mask, ts, _ = inputs()
    nofps = tiny(fps_cond=False)
    nofps.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fps_embedder")})
    torch.testing.assert_close(
        model(x, ts, y, fps=torch.tensor([24.0, 60.0])), nofps(x, ts, y), atol=1e-6, rtol=0
    )
    with pytest.raises(ValueError, match="fps is required"):
        model(x, ts, y)


def test_clear_errors():
    model = tiny()
    x, y, text_mask, ts, fps = inputs()
    with pytest.raises(ValueError, match=r"text mask has no real token for batch rows \[1\]"):
        model(x, ts, y, mask=torch.tensor([[True] * TOKENS, [False] * TOKENS]), fps=fps)
    with pytest.raises(ValueError, match=r"x_mask must be \(B, T\) = \(2, 3\)"):
        model(x, ts, y, x_mask=torch.ones(2, 4, dtype=torch.bool), fps=fps)
    with pytest.raises(ValueError, match="num_heads"):
        STDiTConfig(hidden_size=100, num_heads=3)
    with pytest.raises(ValueError, match=r"temporal_attention must be one of \('factorized', 'full'\), got 'joint'"):
        STDiTConfig(temporal_attention="joint")


def test_gradient_checkpointing_gives_same_gradients():
    grads = []
    for ckpt in (False, True):
        model = tiny(grad_checkpointing=ckpt, class_dropout_prob=0.0).train()
        perturb_non_temporal(model)
        x, y, text_mask, ts, fps = inputs()
        model(x, ts, y, mask=text_mask, fps=fps).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_rectified_flow_step_and_guided_sampling_with_stdit():
    from models.diffusion import EulerSamplerConfig, RectifiedFlow, euler_sample, guided_denoiser, shift_ratio

    model = tiny(class_dropout_prob=0.0).train()
    x, y, text_mask, _, fps = inputs()
    x_mask = torch.tensor([[False, True, True], [True, True, True]])
    ratio = shift_ratio(48, 32, 51)  # pixel size of the 6x4 latents, 51 frames
    out = RectifiedFlow().training_losses(
        model, x, model_kwargs={"y": y, "mask": text_mask, "fps": fps}, x_mask=x_mask, ratio=ratio,
        generator=torch.Generator().manual_seed(0),
    )
    out["loss"].mean().backward()
    assert out["loss"].shape == (2,) and model.final_layer.linear.weight.grad.abs().sum() > 0

    model.eval()
    perturb_non_temporal(model)
    fn = guided_denoiser(model, y, model.null_caption(2), cfg_scale=7.0, text_mask=text_mask, fps=fps)
    sample = euler_sample(fn, torch.randn_like(x), EulerSamplerConfig(num_steps=3), ratio=ratio, x_given=x,
                          x_mask=x_mask)
    assert sample.shape == x.shape
    torch.testing.assert_close(sample[0, :, 0], x[0, :, 0])  # the given first frame is kept
