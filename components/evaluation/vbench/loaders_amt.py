"""amt-s.pth → the AMT-S network motion_smoothness interpolates with, and the record of what was read.

The official checkpoint is {"state_dict": {...}} (VBench loads it with strict keys); widths are read off its
shapes so a smaller model of the same architecture loads the same way. The correlation pyramid's levels and
radius cannot be told apart from the shapes and stay AMT-S's (4, 3): a checkpoint built otherwise fails the
strict load with its file named.
"""
from __future__ import annotations

import torch

from components.evaluation.loaders import WeightFile, load_state_dict, read_bytes, sha256_bytes
from models.vbench.amt import AMT, AMTConfig

PYRAMID_LEVELS = 4


def amt_config(state: dict[str, torch.Tensor], source: str) -> AMTConfig:
    """The AMT a checkpoint holds, read off its parameter shapes."""
    try:
        channels = tuple(int(state[f"encoder.pyramid{i}.0.0.weight"].shape[0]) for i in range(1, PYRAMID_LEVELS + 1))
        return AMTConfig(
            channels=channels,  # type: ignore[arg-type]
            skip_channels=int(state["decoder4.convblock.1.conv2.0.weight"].shape[0]),
            feature_dim=int(state["feat_encoder.conv2.weight"].shape[0]),
            num_flows=int(state["comb_block.0.weight"].shape[1]) // 3,
            hidden_dim=int(state["update4.gru.0.weight"].shape[0]),
            flow_dim=int(state["update4.convf2.weight"].shape[0]),
            corr_dim=int(state["update4.convc1.weight"].shape[0]),
            fc_dim=int(state["update4.conv.weight"].shape[0]))
    except KeyError as err:
        raise ValueError(f"{source}: not an AMT checkpoint (no {err.args[0]})") from None


def load_amt(uri: str) -> tuple[torch.nn.Module, WeightFile]:
    """AMT (eval mode) from amt-s.pth, every key matched as VBench's strict load_state_dict does."""
    data = read_bytes(uri)
    state = load_state_dict(data, uri)  # unwraps {"state_dict": ...} and DataParallel's "module."
    cfg = amt_config(state, uri)
    model = AMT(cfg)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{uri}: not an AMT checkpoint of widths {cfg}: {err}") from None
    if missing or unexpected:
        raise ValueError(f"{uri}: not an AMT checkpoint: missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]} (of {len(missing)} / {len(unexpected)})")
    return model.eval(), WeightFile(uri, sha256_bytes(data))
