"""RAFT from the weights store: find the checkpoint, load it into models.raft, and run it on frame pairs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from components.hashing import content_hash
from components.workspace import filesystem
from models.raft import RAFT_models, pad_to_multiple, unpad


def raft_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors of an official RAFT checkpoint, without the nn.DataParallel "module." prefix it was saved with."""
    fs, inner = filesystem(path)
    with fs.open(inner, "rb") as handle:
        state = torch.load(handle, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_raft(path: str, device: str = "cpu") -> tuple[torch.nn.Module, str]:
    """(model in eval mode, "things" | "small"); the variant is read off the checkpoint (only large has a mask)."""
    state = raft_state_dict(path)
    variant = "things" if "update_block.mask.0.weight" in state else "small"
    model = RAFT_models[variant]()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not a RAFT {variant} checkpoint: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]} (of {len(missing)} / {len(unexpected)})")
    return model.to(device).eval(), variant


class RaftFlow:
    """Dense flow between frame pairs of a clip with a RAFT checkpoint."""

    def __init__(self, path: str, iters: int, device: str = "cpu"):
        self.model, self.variant = load_raft(path, device)
        self.iters, self.device = iters, device
        self.weights_id = f"{Path(path).name}@{content_hash(path)}"

    @torch.no_grad()
    def flows(self, frames: np.ndarray, pairs: list[tuple[int, int]]) -> list[np.ndarray]:
        """(T, H, W, 3) uint8 RGB frames → one (H, W, 2) float32 flow per pair (i, j), from frame i to frame j."""
        if not pairs:
            return []
        def batch(positions: list[int]) -> torch.Tensor:
            return torch.from_numpy(frames[positions]).to(self.device).permute(0, 3, 1, 2).float()  # (P, 3, H, W)

        first, second = batch([i for i, _ in pairs]), batch([j for _, j in pairs])
        first, pad = pad_to_multiple(first, minimum=self.model.min_size)
        second, _ = pad_to_multiple(second, minimum=self.model.min_size)
        flow = unpad(self.model(first, second, iters=self.iters)[-1], pad)  # (P, 2, H, W)
        return list(flow.permute(0, 2, 3, 1).cpu().numpy())
