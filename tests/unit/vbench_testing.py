"""Helpers of the VBench tests: lossless videos (exact pixels survive the file) and small random-init networks."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_lossless(frames: np.ndarray, path: Path, fps: float = 8.0) -> Path:
    """(T, H, W, 3) uint8 as lossless RGB H.264 (libx264rgb, qp 0) in an mp4: decoding gives the same pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264rgb", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def flat_video(values: list[int], height: int = 8, width: int = 12) -> np.ndarray:
    """Frames that are each one grey level: (len(values), H, W, 3) uint8."""
    return np.stack([np.full((height, width, 3), v, np.uint8) for v in values])


def moving_square(frames: int = 16, size: int = 64, step: int = 3, seed: int = 0) -> np.ndarray:
    """A bright square crossing a smooth random texture: (T, size, size, 3) uint8 with real motion."""
    rng = np.random.default_rng(seed)
    background = (rng.random((size, size, 3)) * 60 + 40).astype(np.uint8)
    out = []
    for t in range(frames):
        frame = background.copy()
        x = (4 + t * step) % (size - 16)
        frame[20:36, x : x + 16] = (230, 60, 40)
        out.append(frame)
    return np.stack(out)


def write_tiny_clip(folder: Path, projection_dim: int = 16, seed: int = 0) -> Path:
    """A random-init transformers CLIPModel (ViT image tower, patch 32, 224 input) with a small CLIP BPE tokenizer."""
    import json
    import string

    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + ",.-'")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({f"{c}</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: every character is a token
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=eos - 1, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=224, patch_size=32),
        projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
