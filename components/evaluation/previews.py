"""Side-by-side previews of a clip and its reconstruction: a PNG contact sheet and an animated GIF."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def contact_sheet(real: torch.Tensor, recon: torch.Tensor, columns: int) -> np.ndarray:
    """Evenly spaced frames: the clip on the top row, its reconstruction below, (2H, columns*W, 3) uint8."""
    a, b = to_uint8(real), to_uint8(recon)
    idx = np.linspace(0, len(a) - 1, num=min(columns, len(a))).round().astype(int)
    return np.concatenate([np.concatenate(list(a[idx]), axis=1), np.concatenate(list(b[idx]), axis=1)], axis=0)


def write_preview(real: torch.Tensor, recon: torch.Tensor, folder: Path, name: str, columns: int = 4,
                  fps: float = 8.0) -> list[Path]:
    """<name>.png (contact sheet) and <name>.gif (clip | reconstruction, every frame) under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    png, gif = folder / f"{name}.png", folder / f"{name}.gif"
    Image.fromarray(contact_sheet(real, recon, columns)).save(png)
    pairs = np.concatenate([to_uint8(real), to_uint8(recon)], axis=2)  # (T, H, 2W, 3)
    frames = [Image.fromarray(f) for f in pairs]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return [png, gif]
