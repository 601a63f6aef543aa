"""The training video dataset: SampleKey -> (3, T, H, W) clip in [-1, 1], and the stateful loader over it.

Open-Sora 1.2 mixes images into VAE stages 1-2 by cutting a whole batch to its first frame with p = 0.2
(scripts/train_vae.py, `mixed_video_image`) and trains stage 3 on a random length 1..T per batch
(`mixed_video_random`). Here the choice is made per sample and every sample has the same shape, so video,
image and short samples share a batch: a sample's frames come first and zeros pad it to T (RECIPE §2:
"images zero-padded to the clip length"). `num_frames` says how many frames are real; because the video VAE is
causal in time, the real frames of a padded sample encode and decode exactly as they would alone, and the
trainer takes its losses on them only. A clip that fails to decode is logged, replaced by another draw from
the same pool (seeded by the sample key) and counted, never fatal to the run.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from components.data.clip_cache import ClipCache, cache_key
from components.data.video_config import VideoDataConfig
from components.data.video_decode import decode_clip, decode_frames, to_tensor
from components.data.video_sampler import EpochPlan, RankBatchSampler, SampleKey

log = logging.getLogger(__name__)


def frame_indices(start: int, end: int, length: int, stride: int, rng: np.random.Generator) -> list[int]:
    """`length` source frames `stride` apart inside [start, end) at a random offset; fewer when the clip is short."""
    available = end - start
    span = (length - 1) * stride + 1
    if available >= span:
        offset = int(rng.integers(0, available - span + 1))
        return [start + offset + i * stride for i in range(length)]
    return list(range(start, end, stride))[:length]


def random_window(frames: np.ndarray, window: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The same random (h, w) window of every frame: (T, H, W, 3) -> (T, h, w, 3)."""
    height, width = frames.shape[1:3]
    top = int(rng.integers(0, height - window[0] + 1))
    left = int(rng.integers(0, width - window[1] + 1))
    return frames[:, top:top + window[0], left:left + window[1]]


class VideoClipDataset(Dataset):
    """Map-style dataset indexed by SampleKey (see video_sampler.py) over a normalised clip table."""

    def __init__(self, table: pd.DataFrame, cfg: VideoDataConfig, cache: ClipCache | None = None):
        self.table = table.reset_index(drop=True)
        self.cfg = cfg
        self.cache = cache or ClipCache("off")
        self.video_rows = np.flatnonzero((self.table["media"] == "video").to_numpy())
        self.image_rows = np.flatnonzero((self.table["media"] == "image").to_numpy())
        self._reported: set[str] = set()  # clips already warned about in this process (each failure still counts)

    def __len__(self) -> int:
        return len(self.table)

    def _frames(self, row: pd.Series, key: SampleKey, rng: np.random.Generator) -> np.ndarray:
        start, end = int(row["start_frame"]), int(row["end_frame"])
        if row["media"] == "image":
            indices = [start]
        elif key.image:  # a single frame of a video clip stands in for an image
            indices = [start + int(rng.integers(0, end - start))]
        else:
            indices = frame_indices(start, end, key.length, self.cfg.frame_stride, rng)
        size = tuple(self.cfg.size)
        if self.cache.mode == "off":
            return decode_frames(str(row["path"]), indices, size)
        whole = self.cache.get(cache_key(str(row["path"]), start, end, size),
                               lambda: decode_clip(str(row["path"]), start, end, size))
        if len(whole) != end - start:
            raise ValueError(f"{row['path']}: cached clip has {len(whole)} frames, the table says {end - start}")
        return whole[[i - start for i in indices]]

    def _replacement(self, key: SampleKey, rng: np.random.Generator) -> int:
        pool = self.image_rows if (key.image and len(self.image_rows)) else self.video_rows
        pool = pool if len(pool) else np.arange(len(self.table))
        return int(rng.choice(pool))

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        rng = np.random.default_rng(key.seed)
        failed: list[str] = []
        row_index = key.row
        for _ in range(self.cfg.max_retries + 1):
            row = self.table.iloc[row_index]
            try:
                frames = self._frames(row, key, rng)
            except Exception as err:  # noqa: BLE001 - any decode failure of one file must not stop training
                level = logging.DEBUG if row["clip_id"] in self._reported else logging.WARNING
                self._reported.add(row["clip_id"])
                log.log(level, "corrupt clip %s (%s, row %d): %s: %s; skipped", row["clip_id"], row["path"],
                        row_index, type(err).__name__, err)
                failed.append(str(row["clip_id"]))
                row_index = self._replacement(key, rng)
                continue
            n = min(len(frames), self.cfg.num_frames)
            if self.cfg.crop is not None:
                frames = random_window(frames, self.cfg.crop, rng)
            return {"video": to_tensor(frames[:n], self.cfg.num_frames), "num_frames": n,
                    "is_image": bool(key.image or row["media"] == "image"), "clip_id": str(row["clip_id"]),
                    "failed": failed}
        raise RuntimeError(f"{len(failed)} clips in a row failed to decode (max_retries={self.cfg.max_retries}): "
                           f"{', '.join(failed)}; see the warnings above for each error")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a micro-batch: video (B, 3, T, H, W), num_frames (B,), is_image (B,), ids and corrupt clips."""
    return {
        "video": torch.stack([s["video"] for s in samples]),
        "num_frames": torch.tensor([s["num_frames"] for s in samples], dtype=torch.long),
        "is_image": torch.tensor([s["is_image"] for s in samples], dtype=torch.bool),
        "clip_id": [s["clip_id"] for s in samples],
        "failed": [c for s in samples for c in s["failed"]],
    }


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # workers already run in parallel; OpenCV's own pool would oversubscribe the cores


class VideoBatches:
    """This rank's endless micro-batches through a DataLoader with workers; its position saves and restores.

    The state counts global samples consumed by the trainer (not prefetched by the workers), so a resume
    continues with the next batch the killed run had not trained on, on any number of ranks or workers.
    """

    def __init__(self, dataset: VideoClipDataset, plan: EpochPlan, batch_size: int, rank: int = 0,
                 world_size: int = 1):
        self.dataset, self.plan = dataset, plan
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.epoch, self.cursor = 0, 0
        self.corrupt: list[str] = []  # failed decodes on this rank not yet collected by take_corrupt()
        self._iter = None

    def _loader(self) -> DataLoader:
        cfg = self.dataset.cfg
        sampler = RankBatchSampler(self.plan, self.rank, self.world_size, self.batch_size, self.epoch, self.cursor)
        workers = cfg.num_workers
        # an own generator: the loader would otherwise draw its base seed from the global torch RNG, whose
        # state the checkpoint restores, so a resumed run would drift from an uninterrupted one
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                          prefetch_factor=cfg.prefetch_factor if workers else None, worker_init_fn=_worker_init,
                          persistent_workers=False, generator=torch.Generator().manual_seed(self.plan.seed))

    def __iter__(self) -> "VideoBatches":
        return self

    def __next__(self) -> dict[str, Any]:
        if self._iter is None:
            self._iter = iter(self._loader())
        batch = next(self._iter)
        self.epoch, self.cursor = self.plan.next_batch_start(self.epoch, self.cursor)
        self.cursor += self.plan.global_batch
        self.corrupt += batch["failed"]
        return batch

    def take_corrupt(self) -> list[str]:
        """Clip ids that failed on this rank since the last call (a clip failing twice is listed twice)."""
        out, self.corrupt = self.corrupt, []
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.plan.seed, "epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.plan.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this run uses seed {self.plan.seed}")
        self.close()
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])

    def close(self) -> None:
        """Stop the worker processes (a new iterator starts from the current position on the next batch)."""
        self._iter = None


def build_loader(table: pd.DataFrame, cfg: VideoDataConfig, seed: int, batch_size: int, rank: int,
                 world_size: int, workspace: Path) -> VideoBatches:
    """The dataset, its epoch plan and the rank's loader for one training table."""
    cache = ClipCache(cfg.cache, workspace / cfg.cache_dir if cfg.cache == "disk" else None)
    dataset = VideoClipDataset(table, cfg, cache)
    plan = EpochPlan(dataset.table, cfg, seed, batch_size * world_size)
    return VideoBatches(dataset, plan, batch_size, rank, world_size)
