"""UL2-style frame masks for conditioning (RECIPE §6) and the frame-masked mean of the losses.

x_mask (B, T_latent) bool: True = noised frame the model must generate, False = given frame (kept clean,
modulated with timestep 0). Mask kinds follow Open-Sora 1.2's MaskGenerator, with "quarter" sizes drawn from
1 … max(1, T // 4):
  none               all frames noised
  random             each frame given with probability p ~ U(0.1, 0.9)
  interpolate        every other frame given, starting at frame 0 or 1
  quarter_random     a run of k frames given at a random position
  quarter_head/tail  the first / last k frames given;  quarter_head_tail  both
  image_random       one random frame given
  image_head/tail    the first / last frame given;     image_head_tail    both
A mask that would give every frame keeps its last frame noised; single-frame inputs are never masked.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

MASK_KINDS: tuple[str, ...] = (
    "none",
    "random",
    "interpolate",
    "quarter_random",
    "quarter_head",
    "quarter_tail",
    "quarter_head_tail",
    "image_random",
    "image_head",
    "image_tail",
    "image_head_tail",
)


@dataclass(frozen=True)
class MaskRatios:
    """Probability of each mask kind; "none" takes what is left so the ratios sum to 1."""

    random: float = 0.0
    interpolate: float = 0.0
    quarter_random: float = 0.0
    quarter_head: float = 0.0
    quarter_tail: float = 0.0
    quarter_head_tail: float = 0.0
    image_random: float = 0.0
    image_head: float = 0.0
    image_tail: float = 0.0
    image_head_tail: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MaskRatios.{name} must be in [0, 1], got {value}")
        total = sum(asdict(self).values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"MaskRatios sum to {total:.6f} > 1; nothing is left for 'none'")

    @property
    def none(self) -> float:
        """Probability of leaving every frame noised."""
        return max(0.0, 1.0 - sum(asdict(self).values()))

    def probs(self) -> torch.Tensor:
        """Probabilities in MASK_KINDS order, float64 (11,)."""
        values = asdict(self)
        return torch.tensor([self.none] + [values[k] for k in MASK_KINDS[1:]], dtype=torch.float64)


# Open-Sora 1.2 / RECIPE §6. Stage 1–2: 20% of samples masked; stage 3: 25%, mostly image-to-video.
MASK_PRESETS: dict[str, MaskRatios] = {
    "none": MaskRatios(),
    "stage1_2": MaskRatios(
        random=0.05, interpolate=0.005, quarter_random=0.005, quarter_head=0.005, quarter_tail=0.005,
        quarter_head_tail=0.005, image_random=0.025, image_head=0.05, image_tail=0.025, image_head_tail=0.025,
    ),
    "stage3": MaskRatios(
        random=0.01, interpolate=0.002, quarter_random=0.002, quarter_head=0.002, quarter_tail=0.002,
        quarter_head_tail=0.002, image_random=0.0, image_head=0.22, image_tail=0.005, image_head_tail=0.005,
    ),
}


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high] inclusive."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def sample_mask_kinds(batch_size: int, ratios: MaskRatios, generator: torch.Generator) -> torch.Tensor:
    """Index into MASK_KINDS (B,) of each sample's mask kind."""
    return torch.multinomial(ratios.probs(), batch_size, replacement=True, generator=generator)


def build_mask(kind: str, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """One (T,) bool mask of the given kind."""
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; known: {MASK_KINDS}")
    mask = torch.ones(num_frames, dtype=torch.bool)
    if num_frames <= 1 or kind == "none":
        return mask
    quarter = max(1, num_frames // 4)
    if kind == "random":
        p = 0.1 + 0.8 * float(torch.rand((), generator=generator))
        mask = torch.rand(num_frames, generator=generator) > p
    elif kind == "interpolate":
        mask[_randint(0, 1, generator) :: 2] = False
    elif kind in ("quarter_random", "image_random"):
        size = 1 if kind == "image_random" else _randint(1, quarter, generator)
        start = _randint(0, num_frames - size, generator)
        mask[start : start + size] = False
    else:  # head / tail / head_tail
        size = 1 if kind.startswith("image") else _randint(1, quarter, generator)
        if kind.endswith("head") or kind.endswith("head_tail"):
            mask[:size] = False
        if kind.endswith("tail"):
            mask[-size:] = False
    if not mask.any():
        mask[-1] = True
    return mask


def masks_from_kinds(kinds: torch.Tensor, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """x_mask (B, T) bool for per-sample kind indices (B,)."""
    return torch.stack([build_mask(MASK_KINDS[int(k)], num_frames, generator) for k in kinds.tolist()])


def generate_masks(
    batch_size: int, num_frames: int, ratios: MaskRatios, generator: torch.Generator
) -> torch.Tensor:
    """x_mask (B, T_latent) bool on the CPU: draw each sample's kind by `ratios`, then its frames."""
    return masks_from_kinds(sample_mask_kinds(batch_size, ratios, generator), num_frames, generator)


def masked_mean_flat(x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean (B,) of x over all non-batch axes, or over the noised frames of (B, C, T, H, W) x.

    A sample without noised frames contributes 0 rather than 0/0 (such masks are never generated).
    """
    if x_mask is None:
        return x.mean(dim=tuple(range(1, x.dim())))
    if x.dim() != 5 or x_mask.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"x_mask {tuple(x_mask.shape)} does not match the (B, T) of x {tuple(x.shape)}")
    weights = x_mask.to(x.dtype)[:, None, :, None, None]  # (B, 1, T, 1, 1)
    per_frame = x.shape[1] * x.shape[3] * x.shape[4]
    denom = (x_mask.sum(dim=1).to(x.dtype) * per_frame).clamp(min=1.0)
    return (x * weights).sum(dim=(1, 2, 3, 4)) / denom

