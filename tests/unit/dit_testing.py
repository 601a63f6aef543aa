"""Shared helpers of the DiT tests: a micro captioned corpus, random-init VAE exports, micro stage overrides."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch
from PIL import Image

from components.data.video_decode import decode_frames, to_tensor
from components.training.vae_model import export_vae
from models.vae import VideoVAE, channel_stats
from tests.unit.vae_testing import grouped_tiny

CAPTIONS = ["a red square moving right", "a blue circle moving down", "a green bar standing still"]
# micro sizes: 32px images (4x4 latents, 2x2 tokens) and 9-frame videos; two samples per bucket micro-batch
MICRO = [
    "steps=24", "log_every=4", "checkpoint_every=12", "val_every=20", "progress=false", "eval_samples=4", "lr=2e-3",
    "data.buckets={32px: {1: [1.0, 2]}}", "sample.steps=2", "sample.resolution=32px", "text_cache.root=cache/text",
    "model.size=tiny",  # the tiny profile trains `mini`; micro tests keep the smallest STDiT
]
# adapt8 adds a 9-frame video bucket on top of the images (deep-merged into the recipe's buckets)
MICRO_VIDEO = ["data.buckets={32px: {1: [1.0, 2], 9: [1.0, 2]}}", "sample.num_frames=9"]


def write_video(path: Path, frames: int, seed: int, size: tuple[int, int] = (40, 48), fps: int = 8) -> None:
    """A coloured block moving right over a dark background, H.264."""
    h, w = size
    colour = np.random.default_rng(seed).integers(60, 230, 3)
    with av.open(str(path), "w") as box:
        stream = box.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.full((h, w, 3), 20, np.uint8)
            x = (2 * t + 5 * seed) % (w - 12)
            img[h // 4: h // 4 + 16, x: x + 12] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)


def write_corpus(ws: Path, videos: int = 2, frames: int = 12) -> Path:
    """workspace/data/ingest/metadata.parquet over `videos` small videos and one image, with captions."""
    folder = ws / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(videos):
        path = folder / f"v{i}.mp4"
        write_video(path, frames, i)
        rows.append({"id": f"{i:016x}", "path": str(path), "media": "video", "num_frames": frames, "fps": 8.0,
                     "text": CAPTIONS[i % len(CAPTIONS)], "height": 40, "width": 48})
    image = np.full((40, 40, 3), 30, np.uint8)
    image[10:30, 12:28] = (40, 200, 60)
    Image.fromarray(image).save(folder / "img.png")
    rows.append({"id": "f" * 16, "path": str(folder / "img.png"), "media": "image", "num_frames": 1, "fps": 120.0,
                 "text": CAPTIONS[2], "height": 40, "width": 40})
    out = ws / "data" / "ingest" / "metadata.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(out, index=False)
    return out


def corpus_pixels(ws: Path, frames: int = 9, size: int = 32) -> torch.Tensor:
    """The first `frames` frames of every corpus video at size x size: (N, 3, T, H, W) in [-1, 1]."""
    table = pd.read_parquet(ws / "data" / "ingest" / "metadata.parquet")
    paths = table.loc[table["media"] == "video", "path"]
    return torch.stack([to_tensor(decode_frames(p, list(range(frames)), (size, size)), frames) for p in paths])


def write_vae_exports(ws: Path, seed: int = 0) -> None:
    """vae/stage0 (the 2D VAE alone) and vae/stage3 (the video VAE), random init, both giving unit-scale latents.

    As the real stages do: the 2D VAE's scaling factor and the video VAE's per-channel shift/scale are set from
    the corpus' own latents, so the DiT sees latents of about unit variance (a random VAE's raw ones are tiny).
    """
    torch.manual_seed(seed)
    raw_vae = VideoVAE(grouped_tiny())  # the no-norm tiny layout's random latents leave a micro DiT little to learn
    pixels = corpus_pixels(ws)
    with torch.no_grad():
        std = float(raw_vae.encode_frames(pixels).std()) / raw_vae.cfg.spatial.scaling_factor
        spatial = replace(raw_vae.cfg.spatial, scaling_factor=1.0 / std)
        vae = VideoVAE(replace(raw_vae.cfg, spatial=spatial))
        vae.load_state_dict(raw_vae.state_dict())
        export_vae(vae, ws / "vae" / "stage0", {"model": "tiny", "stage": 0}, parts=["spatial"])
        shift, scale = channel_stats(vae.encode_temporal(vae.encode_frames(pixels)).mode())
        vae.set_latent_stats(shift, scale)
    export_vae(vae, ws / "vae" / "stage3", {"model": "tiny", "stage": 3})
