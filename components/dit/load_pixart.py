"""Read a PixArt checkpoint from the weights store (.pth, .safetensors or a diffusers folder) into an STDiT."""
from __future__ import annotations

import json

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file
from torch import nn

from components.dit.convert import ConversionError, ConversionReport, convert_pixart, unwrap_checkpoint
from components.workspace import filesystem, is_remote

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def _read_safetensors(fs, path: str, remote: bool) -> dict[str, torch.Tensor]:
    if not remote:
        return load_file(path)  # memory-mapped: a 2.4 GB checkpoint is not read twice
    with fs.open(path, "rb") as handle:
        return load_safetensors_bytes(handle.read())


def _read_diffusers_folder(fs, path: str, uri: str) -> dict[str, torch.Tensor]:
    """A diffusers model folder, or a pipeline folder holding it under transformer/; sharded or not."""
    for folder in (path, f"{path}/transformer"):
        single = f"{folder}/{DIFFUSERS_WEIGHTS}"
        index = f"{single}.index.json"
        if fs.exists(single):
            return _read_safetensors(fs, single, is_remote(uri))
        if fs.exists(index):
            with fs.open(index, "r") as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_read_safetensors(fs, f"{folder}/{shard}", is_remote(uri)))
            return state
    raise FileNotFoundError(f"{uri}: no {DIFFUSERS_WEIGHTS} (or its .index.json) here or under transformer/")


def read_state_dict(uri: str) -> dict[str, torch.Tensor]:
    """The flat state dict of a PixArt checkpoint file or diffusers folder (local path or fsspec URI)."""
    fs, path = filesystem(uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"PixArt checkpoint not found: {uri} (see `reelforge weights check`)")
    if fs.isdir(path):
        return _read_diffusers_folder(fs, path, uri)
    if path.endswith(".safetensors"):
        return unwrap_checkpoint(_read_safetensors(fs, path, is_remote(uri)))
    if path.endswith(TORCH_SUFFIXES):
        with fs.open(path, "rb") as handle:
            try:
                obj = torch.load(handle, map_location="cpu", weights_only=True)
            except Exception as err:  # pickles with arbitrary objects are refused rather than executed
                raise ConversionError(f"{uri}: not loadable as plain tensors (weights_only=True): {err}") from err
        return unwrap_checkpoint(obj)
    raise ConversionError(f"{uri}: unknown checkpoint type; expected .safetensors, {', '.join(TORCH_SUFFIXES)} "
                          "or a diffusers folder")


def load_pixart(model: nn.Module, uri: str, null_caption: torch.Tensor | None = None) -> ConversionReport:
    """Convert the PixArt checkpoint at `uri` into `model` (an STDiT) in place; returns what was mapped."""
    state, report = convert_pixart(read_state_dict(uri), model.state_dict(), null_caption)
    model.load_state_dict(state, strict=True)
    return report
