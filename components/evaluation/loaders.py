"""Weight files → evaluation networks: I3D (state dict or StyleGAN-V TorchScript) and LPIPS (trunk + heads).

Files come from the weights store (a folder or s3:// prefix) and are read through fsspec; the LPIPS linear
heads ship inside the `lpips` wheel and are read by path only (importing lpips would pull in torchvision).
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from components.workspace import filesystem
from models.i3d import InceptionI3d, TorchScriptI3D
from models.lpips import LPIPS

LPIPS_VERSION = "0.1"
LPIPS_PIP = "pip install --no-deps lpips==0.1.4"


@dataclass(frozen=True)
class WeightFile:
    """A weight file as recorded next to a score: where it was read and its sha256."""

    path: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.path, "sha256": self.sha256}


def read_bytes(uri: str) -> bytes:
    """The whole file at a local path or fsspec URI."""
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as handle:
        return handle.read()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_torchscript(data: bytes) -> bool:
    """TorchScript archives hold compiled code (code/…, constants.pkl); torch.save archives hold only data."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return False
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def load_state_dict(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """A plain state dict from torch.save bytes (weights_only: no code runs); names the file on failure."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises many kinds; the file name is what the user needs
        raise ValueError(f"{source}: not a readable torch state dict ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict, found {type(state).__name__}")
    # checkpoints saved from DataParallel prefix every key with "module."
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_i3d(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """I3D in eval mode from `i3d_torchscript.pt` (StyleGAN-V) or `i3d_pretrained_400.pt` (VideoGPT/TATS)."""
    data = read_bytes(uri)
    record = WeightFile(uri, sha256_bytes(data))
    if is_torchscript(data):
        model: torch.nn.Module = TorchScriptI3D(torch.jit.load(io.BytesIO(data), map_location="cpu"))
    else:
        model = InceptionI3d()
        try:
            model.load_pretrained(load_state_dict(data, uri))
        except RuntimeError as err:
            raise ValueError(f"{uri}: not a pytorch-i3d Kinetics-400 state dict: {err}") from None
    return model.eval().requires_grad_(False), record


def lpips_heads_path(net: str = "alex") -> Path | None:
    """lpips/weights/v0.1/<net>.pth inside the installed lpips wheel (found without importing lpips), or None."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
    return path if path.is_file() else None


def load_lpips(trunk_uri: str, heads: str | Path, net: str = "alex") -> tuple[LPIPS, list[WeightFile]]:
    """LPIPS v0.1 with the torchvision trunk file from the store and the lpips package's linear heads."""
    model = LPIPS(net)
    trunk_bytes, heads_bytes = read_bytes(trunk_uri), read_bytes(str(heads))
    model.load_trunk(load_state_dict(trunk_bytes, trunk_uri), trunk_uri)
    model.load_heads(load_state_dict(heads_bytes, str(heads)), str(heads))
    records = [WeightFile(trunk_uri, sha256_bytes(trunk_bytes)), WeightFile(str(heads), sha256_bytes(heads_bytes))]
    return model.eval(), records
