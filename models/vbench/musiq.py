"""MUSIQ (Ke et al., ICCV 2021) as pyiqa's archs/musiq_arch.py builds it (VBench imaging_quality, MUSIQ-SPAQ).

Every patch of the multi-scale input (musiq_patches.py) goes through a ResNet root (7x7/2 weight-standardised
conv, GroupNorm, ReLU, 3x3/2 max pool, one bottleneck), is flattened in TensorFlow's (y, x, channel) order and
projected to a token; hashed spatial and scale embeddings are added, a CLS token is prepended, and a pre-norm
transformer with masked attention encodes the sequence; the head reads the CLS token. Parameter names match the
pyiqa checkpoints (`conv_root.weight`, `block1.gn_proj.bias`, `transformer_encoder.transformer.encoderblock_0.
attention.query.weight`, `head.weight`, …): musiq_spaq_ckpt-358bb6af.pth loads with strict keys. Convolutions pad
TF-'SAME' (the odd pixel after) and masked attention scores are set to -1000, as pyiqa does.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vbench.layers import Mlp
from models.vbench.musiq_patches import multiscale_patches, pad_same

ROOT_WIDTH = 64  # pyiqa's resnet_token_dim: the root's channels; the bottleneck widens them 4x
ROOT_DOWNSAMPLE = 4  # the 7x7/2 conv and the 3x3/2 pool: a patch of side p becomes p/4 x p/4 features
GROUPS = 32  # GroupNorm groups everywhere in the root
STD_EPS = 1e-5  # weight standardisation: w / (std + eps)
MASKED_SCORE = -1e3  # pyiqa fills masked attention logits with -1000, not -inf


@dataclass(frozen=True)
class MusiqConfig:
    """Widths and input options of a MUSIQ; defaults are pyiqa's MUSIQ (the SPAQ / KonIQ checkpoints)."""

    patch_size: int = 32
    hidden: int = 384
    mlp_dim: int = 1152
    heads: int = 6
    layers: int = 14
    scales: int = 3  # scale embeddings: one per resized scale plus the original resolution
    grid: int = 10  # hashed spatial embedding grid G (G x G table)
    classes: int = 1  # 1: the head regresses the MOS; > 1: a softmax score distribution (AVA: 10)
    longer_sides: tuple[int, ...] = (224, 384)
    original_max_len: int | None = -1  # patches kept at the original resolution (-1: all; None: no original)
    norm_eps: float = 1e-6
    root_norm_eps: float = 1e-6  # gn_root
    block_norm_eps: float = 1e-4  # the bottleneck's GroupNorms


class StdConv(nn.Conv2d):
    """Weight-standardised conv (zero mean, unit unbiased std per output filter) with TF-'SAME' padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size[0], self.stride[0])
        w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        w = w / (w.std((1, 2, 3), keepdim=True) + STD_EPS)
        return F.conv2d(x, w, self.bias, self.stride)


class Bottleneck(nn.Module):
    """ResNet v2-style bottleneck of the root: 1x1, 3x3, 1x1 StdConvs with GroupNorm, projected shortcut."""

    def __init__(self, inplanes: int, outplanes: int, eps: float):
        super().__init__()
        self.conv1 = StdConv(inplanes, inplanes, 1, 1, bias=False)
        self.gn1 = nn.GroupNorm(GROUPS, inplanes, eps=eps)
        self.conv2 = StdConv(inplanes, inplanes, 3, 1, bias=False)
        self.gn2 = nn.GroupNorm(GROUPS, inplanes, eps=eps)
        self.conv3 = StdConv(inplanes, outplanes, 1, 1, bias=False)
        self.gn3 = nn.GroupNorm(GROUPS, outplanes, eps=eps)
        self.conv_proj = StdConv(inplanes, outplanes, 1, 1, bias=False)
        self.gn_proj = nn.GroupNorm(GROUPS, outplanes, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.gn_proj(self.conv_proj(x))
        x = F.relu(self.gn1(self.conv1(x)))
        x = F.relu(self.gn2(self.conv2(x)))
        return F.relu(self.gn3(self.conv3(x)) + identity)


class MultiHeadAttention(nn.Module):
    """Self-attention with separate query/key/value projections; masked pairs score -1000 before the softmax."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (p(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)  # (B, heads, N, c/heads)
                   for p in (self.query, self.key, self.value))
        scores = (q @ k.transpose(-2, -1)) * self.scale
        pair = mask[:, None, :, None] & mask[:, None, None, :]  # (B, 1, N, N): both tokens real
        attn = scores.masked_fill(~pair, MASKED_SCORE).softmax(dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, c))



class TransformerBlock(nn.Module):
    """Pre-norm block: masked attention, then the MLP, each with a residual."""

    def __init__(self, cfg: MusiqConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.attention = MultiHeadAttention(cfg.hidden, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.hidden, cfg.mlp_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class AddHashSpatialPositionEmbs(nn.Module):
    """A learnt G x G table indexed by each token's hashed grid position."""

    def __init__(self, grid: int, dim: int):
        super().__init__()
        self.position_emb = nn.Parameter(torch.empty(1, grid * grid, dim).normal_(std=0.02))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.position_emb[0][positions]


class AddScaleEmbs(nn.Module):
    """A learnt embedding per scale index."""

    def __init__(self, scales: int, dim: int):
        super().__init__()
        self.scale_emb = nn.Parameter(torch.empty(scales, dim).normal_(std=0.02))

    def forward(self, x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        return x + self.scale_emb[scales]


class TransformerEncoder(nn.Module):
    """Embeddings, CLS token (always unmasked), `layers` blocks, final LayerNorm."""

    def __init__(self, cfg: MusiqConfig):
        super().__init__()
        self.posembed_input = AddHashSpatialPositionEmbs(cfg.grid, cfg.hidden)
        self.scaleembed_input = AddScaleEmbs(cfg.scales, cfg.hidden)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.hidden))
        self.encoder_norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.transformer = nn.ModuleDict({f"encoderblock_{i}": TransformerBlock(cfg) for i in range(cfg.layers)})

    def forward(self, x: torch.Tensor, positions: torch.Tensor, scales: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        x = self.scaleembed_input(self.posembed_input(x, positions), scales)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        for block in self.transformer.values():
            x = block(x, mask)
        return self.encoder_norm(x)


class MUSIQ(nn.Module):
    """forward(images (B, 3, H, W) in [0, 1]) → (B,) mean opinion score (SPAQ: 0-100 scale)."""

    def __init__(self, cfg: MusiqConfig = MusiqConfig()):
        super().__init__()
        if cfg.patch_size % ROOT_DOWNSAMPLE:
            raise ValueError(f"MUSIQ patch_size must be a multiple of {ROOT_DOWNSAMPLE}, got {cfg.patch_size}")
        self.cfg = cfg
        self.conv_root = StdConv(3, ROOT_WIDTH, 7, 2, bias=False)
        self.gn_root = nn.GroupNorm(GROUPS, ROOT_WIDTH, eps=cfg.root_norm_eps)
        self.block1 = Bottleneck(ROOT_WIDTH, ROOT_WIDTH * 4, cfg.block_norm_eps)
        tokens = (cfg.patch_size // ROOT_DOWNSAMPLE) ** 2
        self.embedding = nn.Linear(ROOT_WIDTH * 4 * tokens, cfg.hidden)
        self.transformer_encoder = TransformerEncoder(cfg)
        linear = nn.Linear(cfg.hidden, cfg.classes)
        self.head = nn.Sequential(linear, nn.Softmax(dim=-1)) if cfg.classes > 1 else linear

    def embed_patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, N, 3 p p) patch pixels in [-1, 1] → (B, N, hidden) tokens."""
        b, n, _ = pixels.shape
        p = self.cfg.patch_size
        x = pixels.reshape(b * n, 3, p, p)  # unfold's channel-major layout
        x = F.relu(self.gn_root(self.conv_root(x)))
        x = F.max_pool2d(pad_same(x, 3, 2), 3, 2)
        x = self.block1(x)  # (B N, 256, p/4, p/4)
        x = x.permute(0, 2, 3, 1).reshape(b, n, -1)  # TensorFlow's (y, x, channel) flattening
        return self.embedding(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        tokens = multiscale_patches((images - 0.5) * 2, cfg.patch_size, cfg.grid, cfg.longer_sides,
                                    cfg.original_max_len)
        x = self.transformer_encoder(self.embed_patches(tokens.pixels), tokens.positions, tokens.scales,
                                     tokens.mask)
        q = self.head(x[:, 0])  # (B, classes)
        # pyiqa's dist_to_mos: the expected class index (1-based); with one class, the regressed score itself
        return (q * torch.arange(1, q.shape[-1] + 1, device=q.device, dtype=q.dtype)).sum(-1)


def MUSIQ_SPAQ(**overrides) -> MUSIQ:
    """pyiqa MUSIQ with the SPAQ checkpoint's shape (musiq_spaq_ckpt-358bb6af.pth): 27.1M parameters."""
    return MUSIQ(replace(MusiqConfig(), **overrides))


def MUSIQ_AVA(**overrides) -> MUSIQ:
    """pyiqa MUSIQ with the AVA checkpoint's 10-bin score distribution head."""
    return MUSIQ(replace(MusiqConfig(classes=10), **overrides))


MUSIQ_models = {"spaq": MUSIQ_SPAQ, "koniq": MUSIQ_SPAQ, "ava": MUSIQ_AVA}
