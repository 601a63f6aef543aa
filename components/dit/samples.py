"""What a DiT stage shows in MLflow: a few sampled images or videos (fixed prompts and noise) and its loss curve."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from components import media
from components.data.video_decode import to_uint8
from components.dit.captions import CaptionEmbeddings
from components.dit.config import SampleConfig
from components.dit.latents import LatentCodec
from components.dit.objective import Objective


class SampleWriter:
    """Samples the same prompts from the same noise at every call, so samples of one stage compare step to step."""

    def __init__(self, cfg: SampleConfig, objective: Objective, codec: LatentCodec, captions: CaptionEmbeddings,
                 out_dir: Path, tracker: Any, image_fps: float):
        self.cfg, self.objective, self.codec, self.out_dir, self.tracker = cfg, objective, codec, Path(out_dir), tracker
        n = len(cfg.prompts)
        height, width = cfg.pixel_size()
        if height % codec.stride or width % codec.stride:
            raise ValueError(f"sample size {height}x{width} is not a multiple of the VAE stride {codec.stride}")
        y, mask = captions.get(cfg.prompts)
        fps = cfg.fps if cfg.num_frames > 1 else image_fps
        self.cond = {"y": y, "mask": mask, "fps": torch.full((n,), fps), "height": torch.full((n,), float(height)),
                     "width": torch.full((n,), float(width)), "num_frames": torch.full((n,), cfg.num_frames)}
        shape = (n, codec.channels, codec.latent_frames(cfg.num_frames), height // codec.stride, width // codec.stride)
        self.noise = objective.noise(shape, torch.Generator().manual_seed(cfg.seed))
        self.written: list[Path] = []

    @torch.no_grad()
    def write(self, module: torch.nn.Module, step: int, to_device: Callable, autocast: Callable) -> list[Path]:
        """Sample with the plain module (no collectives), decode, write and log; returns the written files."""
        was_training = module.training
        module.eval()
        try:
            cond, noise = to_device(self.cond), to_device(self.noise)
            with autocast():
                z = self.objective.sample(module, noise, cond, module.null_caption(len(noise)), self.cfg.steps,
                                          self.cfg.cfg_scale)
            video = self.codec.decode(z.float(), self.cfg.num_frames).float().clamp(-1, 1).cpu()  # (P, 3, T, H, W)
        finally:
            module.train(was_training)
        grid = media.upscale(media.side_by_side([to_uint8(v) for v in video]), self.cfg.upscale)
        name = f"step_{step:08d}"
        if self.cfg.num_frames == 1:
            paths = [self.out_dir / f"{name}.png"]
            self.out_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(grid[0]).save(paths[0])
        else:
            paths = [media.write_mp4(grid, self.out_dir / f"{name}.mp4", self.cfg.fps),
                     media.write_gif(grid, self.out_dir / f"{name}.gif", self.cfg.fps)]
        for path in paths:
            self.tracker.log_artifact(path, "samples")
        self.written += paths
        return paths


def write_loss_curve(curve: list[list[float]], val: list[list[float]], path: Path, title: str) -> Path:
    """train/loss at the logged steps and the fixed-batch validation loss, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if curve:
        steps, losses = np.array(curve, dtype=float).T
        ax.plot(steps, losses, label="train/loss", color="#3b6ea5")
    if val:
        steps, losses = np.array(val, dtype=float).T
        ax.plot(steps, losses, "o-", label="val/loss (fixed batch)", color="#c9594c")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
