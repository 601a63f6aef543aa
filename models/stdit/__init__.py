"""STDiT3, the spatial-temporal diffusion transformer of Open-Sora 1.2, as pure PyTorch."""
from models.stdit.model import STDiT, STDiTConfig
from models.stdit.registry import STDIT_SIZES, STDiT_models, stdit_config

__all__ = ["STDiT", "STDiTConfig", "STDIT_SIZES", "STDiT_models", "stdit_config"]
