"""MetricLogger: rank 0's training metrics to the tracker every N steps, a log line, and a rich progress bar."""
from __future__ import annotations

import logging
import resource
import sys
from typing import Any

import torch

log = logging.getLogger(__name__)


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on `device`, or the process's peak resident memory on CPU (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class MetricLogger:
    """Collects per-step timings and logs window averages as train/* metrics on log steps (rank 0 only)."""

    def __init__(self, tracker: Any, every: int, total_steps: int, is_main: bool, progress: bool,
                 device: torch.device):
        self.tracker = tracker
        self.every = every
        self.total_steps = total_steps
        self.is_main = is_main
        self.device = device
        self._progress = None
        self._task = None
        self._window_time = 0.0
        self._window_samples = 0
        self._window_steps = 0
        self._show_progress = progress and is_main

    def should_log(self, step: int, first_step: int) -> bool:
        """Log steps are the same on every rank, so collectives placed on them stay matched."""
        return step % self.every == 0 or step == first_step or step == self.total_steps

    def start(self, step: int) -> None:
        """Open the progress bar at `step` (non-zero after a resume)."""
        if not self._show_progress:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # stderr keeps stdout clean for the CLI; without a TTY rich prints only the final bar
        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"), console=Console(stderr=True),
        )
        self._task = self._progress.add_task("train", total=self.total_steps, completed=step, loss="")
        self._progress.start()

    def step_done(self, samples: int, seconds: float) -> None:
        """Account one optimiser step's samples (global) and wall time."""
        self._window_time += seconds
        self._window_samples += samples
        self._window_steps += 1
        if self._progress is not None:
            self._progress.advance(self._task)

    def log(self, step: int, loss: float, lr: float, grad_norm: float) -> dict[str, float]:
        """Send the window's metrics to the tracker (rank 0) and reset the window; returns what was logged."""
        steps = max(self._window_steps, 1)
        metrics = {
            "train/loss": loss,
            "train/lr": lr,
            "train/grad_norm": grad_norm,
            "train/samples_per_s": self._window_samples / max(self._window_time, 1e-9),
            "train/step_time_s": self._window_time / steps,
            "train/peak_mem_mb": peak_memory_mb(self.device),
        }
        self._window_time, self._window_samples, self._window_steps = 0.0, 0, 0
        if self.is_main:
            self.tracker.log_metrics(metrics, step=step)
            log.info("step %d/%d loss %.6g lr %.3g grad_norm %.4g %.1f samples/s", step, self.total_steps,
                     loss, lr, grad_norm, metrics["train/samples_per_s"])
            if self._progress is not None:
                self._progress.update(self._task, loss=f"loss {loss:.4g}")
        return metrics

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
