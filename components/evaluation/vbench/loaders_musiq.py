"""MUSIQ weight file → the network VBench's imaging_quality scores with, with the record of what was read.

  MUSIQ-SPAQ  musiq_spaq_ckpt-358bb6af.pth: a plain state dict with pyiqa's names (VBench loads it through
              pyiqa's load_pretrained_network, strict=True); widths are read off the checkpoint's shapes.
"""
from __future__ import annotations

import math

import torch

from components.evaluation.loaders import WeightFile, load_state_dict, read_bytes, sha256_bytes
from models.vbench.musiq import MUSIQ, ROOT_DOWNSAMPLE, ROOT_WIDTH, MusiqConfig

MUSIQ_HEAD_DIM = 64  # pyiqa's MUSIQ: 384 wide, 6 heads


def _unwrap(state: dict) -> dict:
    """pyiqa strips a DataParallel "module." prefix; training checkpoints nest the weights under "params"."""
    if "params" in state and isinstance(state["params"], dict):
        state = state["params"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def musiq_config(state: dict[str, torch.Tensor], source: str) -> MusiqConfig:
    """The MUSIQ a checkpoint holds, read off its shapes (patch size from the embedding's input width)."""
    enc = "transformer_encoder."
    try:
        hidden, flat = (int(n) for n in state["embedding.weight"].shape)
        head = state["head.weight"] if "head.weight" in state else state["head.0.weight"]
        grid = math.isqrt(int(state[enc + "posembed_input.position_emb"].shape[1]))
        scales = int(state[enc + "scaleembed_input.scale_emb"].shape[0])
        mlp_dim = int(state[enc + "transformer.encoderblock_0.mlp.fc1.weight"].shape[0])
    except KeyError as err:
        raise ValueError(f"{source}: not a MUSIQ checkpoint (no {err.args[0]})") from None
    side = math.isqrt(flat // (ROOT_WIDTH * 4))
    layers = len({k.split(".")[2] for k in state if k.startswith(enc + "transformer.")})
    return MusiqConfig(patch_size=side * ROOT_DOWNSAMPLE, hidden=hidden, mlp_dim=mlp_dim,
                       heads=max(1, hidden // MUSIQ_HEAD_DIM), layers=layers, scales=scales, grid=grid,
                       classes=int(head.shape[0]))


def load_musiq(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """MUSIQ (eval mode) from a pyiqa checkpoint such as musiq_spaq_ckpt-358bb6af.pth, strict keys."""
    data = read_bytes(uri)
    state = _unwrap(load_state_dict(data, uri))
    cfg = musiq_config(state, uri)
    model = MUSIQ(cfg)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that disagree with the widths read off the checkpoint
        raise ValueError(f"{uri}: not a MUSIQ checkpoint ({str(err).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise ValueError(f"{uri}: not a MUSIQ checkpoint: missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]} (of {len(missing)} / {len(unexpected)})")
    return model.eval(), WeightFile(uri, sha256_bytes(data))
