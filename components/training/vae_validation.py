"""The fixed validation batch of a VAE stage: reconstructed, scored (PSNR, L1) and logged as side-by-side media."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from components import media
from components.data.video_config import VideoDataConfig
from components.data.video_dataset import VideoClipDataset, collate
from components.data.video_decode import to_uint8
from components.data.video_sampler import SampleKey
from components.training.vae_loss import length_groups
from models.vae import VideoVAE

log = logging.getLogger(__name__)


def validation_batch(val: pd.DataFrame, train: pd.DataFrame, cfg: VideoDataConfig, clips: int,
                     seed: int) -> dict[str, Any]:
    """`clips` held-out video clips, whole frames at full length, fixed starts; training clips if none are held out."""
    table = val if len(val) else train
    if not len(val):
        log.warning("no held-out clips (data.heldout_fraction=%g): the validation batch comes from training clips",
                    cfg.heldout_fraction)
    videos = np.flatnonzero((table["media"] == "video").to_numpy())
    rows = videos if len(videos) else np.arange(len(table))
    dataset = VideoClipDataset(table, cfg.model_copy(update={"random_length": False, "crop": None}))
    keys = [SampleKey(int(rows[i % len(rows)]), False, cfg.num_frames, seed + i) for i in range(clips)]
    return collate([dataset[k] for k in keys])


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR per frame of clips in [-1, 1] measured on [0, 1] (EVAL.md), capped at 100 dB: (B, 3, T, H, W) -> (B, T)."""
    mse = ((x.float() - y.float()) / 2).pow(2).mean(dim=(1, 3, 4))  # (B, T)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp(max=100.0)


@torch.no_grad()
def reconstruct(vae: VideoVAE, x: torch.Tensor, spatial_only: bool) -> torch.Tensor:
    """Posterior-mean reconstruction of (B, 3, T, H, W): the 2D VAE per frame, or the whole video VAE."""
    if spatial_only:
        return vae.decode_frames(vae.encode_frames(x))
    return vae.decode(vae.encode(x), x.shape[2])


class Validator:
    """Scores the fixed batch and writes samples/step_NNNNNNNN.{mp4,gif} (original left, reconstruction right)."""

    def __init__(self, batch: dict[str, Any], spatial_only: bool, out_dir: Path, tracker: Any, upscale: int,
                 fps: float):
        self.batch, self.spatial_only, self.out_dir, self.tracker = batch, spatial_only, Path(out_dir), tracker
        self.upscale, self.fps = upscale, fps

    def run(self, vae: VideoVAE, step: int, to_device, autocast) -> dict[str, float]:
        """Reconstruct each clip at its real length; returns val/psnr and val/l1 over the real frames."""
        batch = to_device(self.batch)
        video, lengths = batch["video"], batch["num_frames"]
        rec = torch.zeros_like(video)
        with autocast():
            for index, length in length_groups(lengths.cpu()):
                index = index.to(video.device)
                rec[index, :, :length] = reconstruct(vae, video[index, :, :length], self.spatial_only).to(rec.dtype)
        frame_psnr = [psnr(video[i:i + 1, :, :n], rec[i:i + 1, :, :n]).mean() for i, n in enumerate(lengths.tolist())]
        l1 = [(video[i, :, :n].float() - rec[i, :, :n].float()).abs().mean() for i, n in enumerate(lengths.tolist())]
        metrics = {"val/psnr": float(torch.stack(frame_psnr).mean()), "val/l1": float(torch.stack(l1).mean())}
        self._write(video.cpu(), rec.cpu(), step)
        return metrics

    def _write(self, video: torch.Tensor, rec: torch.Tensor, step: int) -> None:
        rows = [media.side_by_side([to_uint8(video[i]), to_uint8(rec[i])]) for i in range(len(video))]
        frames = media.upscale(media.stack_rows(rows), self.upscale)
        name = f"step_{step:08d}"
        paths = [media.write_mp4(frames, self.out_dir / f"{name}.mp4", self.fps),
                 media.write_gif(frames, self.out_dir / f"{name}.gif", self.fps)]
        for path in paths:
            self.tracker.log_artifact(path, "samples")
