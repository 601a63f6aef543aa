"""Sampling from a random-init tiny STDiT + tiny video VAE: sizes, lengths, media, seeds, and the given frames of
i2v, continuation and interpolation held through the x_mask mechanism."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from components.data.video_decode import to_tensor, to_uint8
from components.model_source import load_dit, resolve_model
from components.sampling import SampleRequest, generate, prefix_ok, read_image, write_outputs
from tests.unit.dit_testing import write_video
from tests.unit.sampling_testing import write_dit_export

MICRO = {"resolution": "32px", "num_frames": 9, "steps": 3, "fps": 8.0}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sampling")
    write_dit_export(root)
    image = np.full((40, 40, 3), 110, np.uint8)
    image[8:24, 10:26] = (220, 30, 30)
    Image.fromarray(image).save(root / "first.png")
    Image.fromarray(np.ascontiguousarray(image[::-1])).save(root / "last.png")
    write_video(root / "clip.mp4", frames=12, seed=1, size=(32, 32))
    return root


@pytest.fixture(scope="module")
def bundle(ws):
    return load_dit(resolve_model("dit/adapt8", ws), ws)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_t2v_size_length_fps_and_decodable_media(ws, bundle, tmp_path):
    request = SampleRequest(prompt="a red circle moving left", aspect_ratio="0.75", **MICRO)
    sample = generate(bundle, request)
    assert request.size() == (24, 32)  # the 32px budget at h/w 0.75, in multiples of 8
    assert sample.frames.shape == (9, 24, 32, 3) and sample.frames.dtype == np.uint8
    assert tuple(sample.latents.shape) == (4, 3, 3, 4)  # 9 frames -> 1 + 2 latent frames, 8x smaller
    paths = write_outputs(sample, tmp_path, "t2v")
    with av.open(str(paths["mp4"])) as box:
        stream = box.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in box.decode(stream)]
        assert (len(decoded), stream.average_rate, decoded[0].shape) == (9, 8, (24, 32, 3))
    with Image.open(paths["gif"]) as gif:
        assert (gif.n_frames, gif.size, gif.info["duration"]) == (9, (32, 24), 120)  # GIF delays are centiseconds
    # a random model's pixels are noise, which yuv420 chroma subsampling blurs: compare frame colours
    means = np.stack(decoded).astype(float).mean(axis=(1, 2)), sample.frames.astype(float).mean(axis=(1, 2))
    assert np.abs(means[0] - means[1]).max() < 4


def test_same_seed_same_bytes_other_seed_other_video(bundle, tmp_path):
    request = SampleRequest(prompt="a blue square moving up", seed=7, **MICRO)
    a, b = generate(bundle, request), generate(bundle, request)
    assert a.latents.numpy().tobytes() == b.latents.numpy().tobytes()
    assert np.array_equal(a.frames, b.frames)
    first = write_outputs(a, tmp_path / "a")["latents"].read_bytes()
    assert first == write_outputs(b, tmp_path / "b")["latents"].read_bytes()
    other = generate(bundle, request.model_copy(update={"seed": 8}))
    assert not torch.equal(a.latents, other.latents)


def test_i2v_keeps_the_given_first_frame(ws, bundle):
    request = SampleRequest(prompt="a red square moving right", mode="i2v", image=str(ws / "first.png"), **MICRO)
    sample = generate(bundle, request)
    given = read_image(str(ws / "first.png"), (32, 32))  # (1, 32, 32, 3): resized to cover, centre-cropped
    codec = bundle.codec
    recon = to_uint8(codec.decode(codec.encode(to_tensor(given, 1)[None]), 1)[0].clamp(-1, 1))
    assert psnr(sample.frames[0], recon[0]) >= 25
    assert torch.equal(sample.latents[:, :1], codec.encode(to_tensor(given, 1)[None])[0, :, :1])
    t2v = generate(bundle, request.model_copy(update={"mode": "t2v", "image": None}))
    assert psnr(t2v.frames[0], recon[0]) < psnr(sample.frames[0], recon[0])


def test_continuation_leads_with_the_aligned_last_frames(ws, bundle):
    request = SampleRequest(prompt="a coloured block moving right", mode="continue", video=str(ws / "clip.mp4"),
                            **MICRO)
    sample = generate(bundle, request)
    # at most 8 of the 12 frames fit a 9-frame clip; 5 = 1 + 4 is the largest count whose latents line up
    assert (sample.settings["given_frames"], sample.settings["given_latents"]) == (5, 2)


def test_interpolation_holds_both_ends(ws, bundle):
    request = SampleRequest(prompt="a red square", mode="interpolate", image=str(ws / "first.png"),
                            last_image=str(ws / "last.png"), **MICRO)
    sample = generate(bundle, request)
    codec = bundle.codec
    first, last = (read_image(str(ws / name), (32, 32)) for name in ("first.png", "last.png"))
    assert torch.equal(sample.latents[:, 0], codec.encode(to_tensor(first, 1)[None])[0, :, 0])
    assert torch.equal(sample.latents[:, -1], codec.encode(to_tensor(last, 1)[None])[0, :, 0])


def test_prefix_alignment_matches_the_causal_vae(bundle):
    codec = bundle.codec
    video = torch.rand(1, 3, 26, 16, 16) * 2 - 1
    full = codec.encode(video)
    for frames in (1, 4, 5, 8, 9, 17, 18, 22):
        prefix = codec.encode(video[:, :, :frames])
        lined_up = torch.allclose(prefix, full[:, :, : prefix.shape[2]], atol=1e-5)
        assert lined_up == prefix_ok(codec, frames), frames


def test_score_controls_are_appended_in_open_sora_format():
    request = SampleRequest(prompt="a red circle moving left", aesthetic=6.5, motion=10, camera="pan_left")
    assert request.full_prompt() == ("a red circle moving left. aesthetic score: 6.5, motion score: 10, "
                                     "camera motion: pan left.")
    assert SampleRequest(prompt="a cat.", motion=4.04).full_prompt() == "a cat. motion score: 4."


def test_bad_requests_and_references_are_named(ws, bundle):
    with pytest.raises(ValueError, match="mode i2v needs image"):
        SampleRequest(prompt="x", mode="i2v")
    with pytest.raises(ValueError, match="not a multiple of the VAE stride 8"):
        generate(bundle, SampleRequest(prompt="x", height=36, width=32, num_frames=1, steps=1))
    with pytest.raises(FileNotFoundError, match="not a folder .* a run id .* or a registered model"):
        resolve_model("no/such/folder/here", ws)
    with pytest.raises(FileNotFoundError, match="dit.json is missing"):
        load_dit(ws / "vae/stage3", ws)


def test_ddpm_models_sample_with_ddim(ws):
    write_dit_export(ws, "dit/ddpm", kind="ddpm")
    bundle = load_dit(ws / "dit/ddpm", ws)
    request = SampleRequest(prompt="a red square moving right", mode="i2v", image=str(ws / "first.png"), **MICRO)
    sample = generate(bundle, request)
    assert sample.settings["diffusion"] == "ddpm" and sample.frames.shape == (9, 32, 32, 3)
    given = read_image(str(ws / "first.png"), (32, 32))
    assert torch.equal(sample.latents[:, :1], bundle.codec.encode(to_tensor(given, 1)[None])[0, :, :1])
