"""Weight files → the networks VBench scores with, each returned with the record of what was read (path, sha256).

  DINO ViT-B/16     dino_vitbase16_pretrain.pth, a plain state dict with DINO's own names (strict keys)
  CLIP (B/32, L/14) a transformers folder (CLIPModel + its tokenizer): openai/clip-vit-base-patch32, -large-patch14
  LAION head        sa_0_4_vit_l_14_linear.pth (linear, VBench's) or the improved MLP predictor
  RAFT              raft-things.pth through the curation scorer's loader
  UMT ViT-L/16      l16_ptk710_ftk710_ftk400_f16_res224.pth + kinetics_400_categories.txt (human_action)
  ViCLIP ViT-L/14   ViClip-InternVid-10M-FLT.pth ({"model": state dict}, strict keys)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.evaluation.loaders import WeightFile, load_state_dict, read_bytes, sha256_bytes
from components.hashing import content_hash
from components.workspace import is_remote
from models.vbench.aesthetic import head_for
from models.vbench.dino import DINO_HEAD_DIM, DinoConfig, DinoViT
from models.vbench.umt import UMTClassifier, UMTConfig
from models.vbench.viclip import ViCLIP, ViCLIPConfig


def _strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, what: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{source}: not a {what} checkpoint: missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]} (of {len(missing)} / {len(unexpected)})")


def dino_config(state: dict[str, torch.Tensor], source: str) -> DinoConfig:
    """The DINO ViT a checkpoint holds, read off its shapes (DINO's heads are 64 wide at every size)."""
    try:
        dim = int(state["cls_token"].shape[-1])
        patch = int(state["patch_embed.proj.weight"].shape[-1])
        grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    except KeyError as err:
        raise ValueError(f"{source}: not a DINO ViT checkpoint (no {err.args[0]})") from None
    return DinoConfig(image_size=grid * patch, patch_size=patch, dim=dim, depth=depth,
                      heads=max(1, dim // DINO_HEAD_DIM), mlp_ratio=hidden / dim)


def load_dino(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """DINO ViT (eval mode) from an official checkpoint (dino_vitbase16_pretrain.pth is ViT-B/16)."""
    data = read_bytes(uri)
    state = load_state_dict(data, uri)
    if "teacher" in state and isinstance(state["teacher"], dict):  # a full DINO training checkpoint
        state = {k.removeprefix("backbone."): v for k, v in state["teacher"].items() if k.startswith("backbone.")}
    cfg = dino_config(state, uri)
    model = DinoViT(cfg)
    _strict(model, state, uri, f"DINO ViT (dim {cfg.dim}, depth {cfg.depth}, patch {cfg.patch_size})")
    return model.eval(), WeightFile(uri, sha256_bytes(data))


@dataclass
class ClipBundle:
    """A transformers CLIPModel, its tokenizer, and where it came from."""

    model: Any
    tokenizer: Any
    record: WeightFile


def load_clip(folder: str) -> ClipBundle:
    """CLIPModel + tokenizer from a local transformers folder (config.json, weights, tokenizer files)."""
    if is_remote(folder) or not Path(folder, "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a local transformers CLIP folder (config.json missing); copy "
                                "openai/clip-vit-base-patch32 or clip-vit-large-patch14 there")
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return ClipBundle(model, tokenizer, WeightFile(folder, content_hash(folder)))


def load_aesthetic_head(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """The LAION aesthetic head whose parameter names the checkpoint carries."""
    data = read_bytes(uri)
    state = load_state_dict(data, uri)
    try:
        head = head_for(state)
    except KeyError as err:
        raise ValueError(f"{uri}: {err.args[0]}") from None
    _strict(head, state, uri, "LAION aesthetic head")
    return head.eval(), WeightFile(uri, sha256_bytes(data))


def load_raft_model(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """RAFT (things) in eval mode, reusing the curation scorer's checkpoint loader."""
    from components.curation.scorers.raft_flow import load_raft

    model, variant = load_raft(uri)
    if variant != "things":
        raise ValueError(f"{uri}: VBench uses raft-things.pth; this checkpoint is RAFT-{variant}")
    return model, WeightFile(uri, content_hash(uri))


UMT_HEAD_DIM = 64  # UMT's ViT-B and ViT-L both use 64-wide heads
CLIP_HEAD_DIM = 64  # CLIP / ViCLIP towers: 64-wide heads at every size


def _unwrap(state: dict, keys: tuple[str, ...] = ("model", "module")) -> dict:
    for key in keys:
        if key in state and isinstance(state[key], dict):
            return state[key]
    return state


def load_umt(uri: str, frames: int = 16) -> tuple[torch.nn.Module, WeightFile]:
    """UMT classifier (eval mode) from l16_ptk710_ftk710_ftk400_f16_res224.pth; widths read off the checkpoint.

    VBench loads it with strict=False; here every parameter but the (sinusoid-initialised) position table must be
    in the file, so a wrong or wrapped checkpoint is an error instead of a randomly initialised classifier.
    """
    data = read_bytes(uri)
    state = _unwrap(load_state_dict(data, uri))
    try:
        proj = state["patch_embed.proj.weight"]  # (D, 3, tubelet, p, p)
        dim, tubelet, patch = int(proj.shape[0]), int(proj.shape[2]), int(proj.shape[-1])
        classes, hidden = int(state["head.weight"].shape[0]), int(state["blocks.0.mlp.fc1.weight"].shape[0])
    except KeyError as err:
        raise ValueError(f"{uri}: not a UMT classifier checkpoint (no {err.args[0]})") from None
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    grid = 224 // patch
    if "pos_embed" in state:
        grid = math.isqrt(int(state["pos_embed"].shape[1]) // (frames // tubelet))
    cfg = UMTConfig(image_size=grid * patch, patch_size=patch, frames=frames, tubelet=tubelet, dim=dim, depth=depth,
                    heads=max(1, dim // UMT_HEAD_DIM), mlp_ratio=hidden / dim, classes=classes)
    model = UMTClassifier(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "pos_embed"]
    if missing or unexpected:
        raise ValueError(f"{uri}: not a UMT classifier checkpoint: missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]} (of {len(missing)} / {len(unexpected)})")
    return model.eval(), WeightFile(uri, sha256_bytes(data))


def load_labels(uri: str) -> tuple[dict[int, str], WeightFile]:
    """Kinetics-400 class names from VBench's kinetics_400_categories.txt."""
    from components.evaluation.vbench.dimensions_action import parse_labels

    data = read_bytes(uri)
    return parse_labels(data.decode("utf-8"), uri), WeightFile(uri, sha256_bytes(data))


def _layers(state: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def viclip_config(state: dict[str, torch.Tensor], source: str) -> ViCLIPConfig:
    """The ViCLIP a checkpoint holds, read off its shapes (CLIP's heads are 64 wide)."""
    v, t = "vision_encoder.", "text_encoder."
    try:
        conv, pos = state[v + "conv1.weight"], state[v + "positional_embedding"]
        width, patch = int(conv.shape[0]), int(conv.shape[-1])
        tokens = state[t + "token_embedding.weight"]
        return ViCLIPConfig(
            image_size=math.isqrt(int(pos.shape[0]) - 1) * patch, patch_size=patch,
            frames=int(state[v + "temporal_positional_embedding"].shape[1]), width=width,
            layers=_layers(state, v + "transformer.resblocks."), heads=max(1, width // CLIP_HEAD_DIM),
            embed_dim=int(state[v + "proj"].shape[1]), text_width=int(tokens.shape[1]),
            text_layers=_layers(state, t + "transformer.resblocks."),
            text_heads=max(1, int(tokens.shape[1]) // CLIP_HEAD_DIM),
            context=int(state[t + "positional_embedding"].shape[0]), vocab=int(tokens.shape[0]))
    except KeyError as err:
        raise ValueError(f"{source}: not a ViCLIP checkpoint (no {err.args[0]})") from None


def load_viclip(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """ViCLIP (eval mode) from ViClip-InternVid-10M-FLT.pth, strict keys as VBench loads it."""
    data = read_bytes(uri)
    state = _unwrap(load_state_dict(data, uri), ("model",))
    model = ViCLIP(viclip_config(state, uri))
    _strict(model, state, uri, "ViCLIP")
    return model.eval(), WeightFile(uri, sha256_bytes(data))
