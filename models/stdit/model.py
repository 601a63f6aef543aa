"""STDiT3 (Open-Sora 1.2): a PixArt image DiT with interleaved zero-initialised temporal blocks.

Parameter names mirror PixArt-α/Σ and Open-Sora so checkpoints map by renaming only: x_embedder.proj,
t_embedder.mlp.{0,2}, fps_embedder.mlp.{0,2}, t_block.1, y_embedder.{y_proj.fc1,y_proj.fc2,y_embedding},
spatial_blocks.i (PixArt's blocks.i).{attn.qkv, attn.proj, attn.q_norm, attn.k_norm, cross_attn.q_linear,
cross_attn.kv_linear, cross_attn.proj, mlp.fc1, mlp.fc2, scale_shift_table}, temporal_blocks.i (same),
final_layer.{linear, scale_shift_table}. PixArt's Conv2d patch weight becomes the Conv3d one with a time axis of 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import nn

from models.stdit.blocks import STDiTBlock, T2IFinalLayer
from models.stdit.embed import CaptionEmbedder, PatchEmbed3D, SizeEmbedder, TimestepEmbedder, opensora_pos_embed


TEMPORAL_ATTENTION = ("factorized", "full")


@dataclass
class STDiTConfig:
    """Every hyperparameter and feature switch of STDiT; registry.py holds the named sizes."""

    hidden_size: int = 1152
    depth: int = 28  # depth spatial blocks and, when temporal, as many temporal blocks
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: tuple[int, int, int] = (1, 2, 2)
    in_channels: int = 4
    caption_channels: int = 4096  # T5-v1.1-XXL width
    model_max_length: int = 300  # text tokens; the null caption has this many
    class_dropout_prob: float = 0.1  # caption dropout for classifier-free guidance
    learn_null_caption: bool = False  # False: fixed null caption (PixArt, Open-Sora)
    qk_norm: bool = True
    qk_norm_eps: float = 1e-6
    norm_eps: float = 1e-6
    temporal: bool = True  # False: the image model (spatial blocks only)
    fps_cond: bool = True  # add fps_embedder(fps) to the timestep embedding
    learn_sigma: bool = True  # 2·in_channels outputs (eps + variance for DDPM); rectified flow reads the first half
    input_sq_size: int = 512  # pixel side whose token grid the position embedding is interpolated onto
    vae_spatial_stride: int = 8  # pixels per latent, to infer the pixel size when height/width are not given
    rope_theta: float = 10000.0
    frequency_embedding_size: int = 256
    init_std: float = 0.02  # normal init of the embedding MLPs (PixArt)
    grad_checkpointing: bool = False
    # "factorized": STDiT3's temporal blocks (each position across frames); "full": they attend over all T·S
    # tokens (RoPE by frame), so one hop relates any two positions of two frames. Same weights either way.
    temporal_attention: str = "factorized"

    def __post_init__(self) -> None:
        self.patch_size = tuple(self.patch_size)
        if self.temporal_attention not in TEMPORAL_ATTENTION:
            raise ValueError(f"STDiTConfig.temporal_attention must be one of {TEMPORAL_ATTENTION}, "
                             f"got {self.temporal_attention!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"STDiTConfig.hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.hidden_size % 4:
            raise ValueError(
                f"STDiTConfig.hidden_size {self.hidden_size} must be divisible by 4 (2D sin-cos embedding)"
            )
        if self.temporal and (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"STDiTConfig: head dim {self.hidden_size // self.num_heads} must be even for RoPE")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"STDiTConfig.patch_size must be three positive ints, got {self.patch_size}")
        if not 0.0 <= self.class_dropout_prob < 1.0:
            raise ValueError(f"STDiTConfig.class_dropout_prob must be in [0, 1), got {self.class_dropout_prob}")
        if self.depth < 1:
            raise ValueError(f"STDiTConfig.depth must be >= 1, got {self.depth}")

    @property
    def out_channels(self) -> int:
        """Channels the model predicts per latent pixel."""
        return self.in_channels * 2 if self.learn_sigma else self.in_channels


class STDiT(nn.Module):
    """Text-to-video diffusion transformer over latents (B, C, T, H, W), conditioned on timestep, text and fps."""

    def __init__(self, cfg: STDiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.x_embedder = PatchEmbed3D(cfg.patch_size, cfg.in_channels, d)
        self.t_embedder = TimestepEmbedder(d, cfg.frequency_embedding_size)
        self.fps_embedder = SizeEmbedder(d, cfg.frequency_embedding_size) if cfg.fps_cond else None
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.y_embedder = CaptionEmbedder(
            cfg.caption_channels, d, cfg.class_dropout_prob, cfg.model_max_length, cfg.learn_null_caption
        )

        def block(temporal: bool) -> STDiTBlock:
            return STDiTBlock(
                d, cfg.num_heads, cfg.mlp_ratio, cfg.qk_norm, cfg.qk_norm_eps, cfg.norm_eps, temporal, cfg.rope_theta,
                full_attention=cfg.temporal_attention == "full",
            )

        self.spatial_blocks = nn.ModuleList([block(False) for _ in range(cfg.depth)])
        self.temporal_blocks = nn.ModuleList([block(True) for _ in range(cfg.depth)]) if cfg.temporal else None
        patch_volume = cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2]
        self.final_layer = T2IFinalLayer(d, patch_volume, cfg.out_channels, cfg.norm_eps)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """PixArt's init; new modules (fps embedder, temporal blocks) start as exact no-ops (RECIPE §5)."""

        def basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic_init)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a Linear over the flattened patch
        std = self.cfg.init_std
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=std)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=std)
        nn.init.normal_(self.t_block[1].weight, std=std)
        nn.init.normal_(self.y_embedder.y_proj.fc1.weight, std=std)
        nn.init.normal_(self.y_embedder.y_proj.fc2.weight, std=std)
        for blk in self.spatial_blocks:
            nn.init.zeros_(blk.cross_attn.proj.weight)
            nn.init.zeros_(blk.cross_attn.proj.bias)
        # Zero residual branches make each temporal block the identity, so the video model == the image model.
        for blk in self.temporal_blocks or []:
            for linear in (blk.attn.proj, blk.cross_attn.proj, blk.mlp.fc2):
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)
        if self.fps_embedder is not None:
            nn.init.normal_(self.fps_embedder.mlp[0].weight, std=std)
            nn.init.zeros_(self.fps_embedder.mlp[2].weight)
            nn.init.zeros_(self.fps_embedder.mlp[2].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def null_caption(self, batch_size: int) -> torch.Tensor:
        """The null caption (B, L, C_text) to pair with real captions for classifier-free guidance."""
        y_null = self.y_embedder.y_embedding
        return y_null[None].expand(batch_size, *y_null.shape)

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None = None,
        x_mask: torch.Tensor | None = None,
        fps: torch.Tensor | None = None,
        height: float | torch.Tensor | None = None,
        width: float | torch.Tensor | None = None,
        force_drop_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict (B, out_channels, T, H, W) from latents x (B, C, T, H, W).

        timestep (B,) in model units [0, 1000]; y (B, L, C_text) text tokens with mask (B, L) bool (True = real
        token); x_mask (B, T) bool, True = noised frame, False = given frame (modulated with timestep 0);
        fps (B,) when fps_cond; height/width: pixel size for the position embedding, one per batch as a batch
        is one bucket (a (B,) tensor's first entry is used, as Open-Sora does; default latent size · stride).
        Caption dropout: force_drop_ids (B,) bool, else random at class_dropout_prob while training.
        """
        cfg = self.cfg
        b, _, tx, hx, wx = x.shape
        pt, ph, pw = cfg.patch_size
        t_tok, h_tok, w_tok = -(-tx // pt), -(-hx // ph), -(-wx // pw)  # token grid after end-padding

        t_emb = self.t_embedder(timestep)  # (B, D)
        t0_emb = self.t_embedder(torch.zeros_like(timestep)) if x_mask is not None else None
        if self.fps_embedder is not None:
            if fps is None:
                raise ValueError("STDiT.forward: fps is required when fps_cond=True")
            fps_emb = self.fps_embedder(fps.reshape(b).to(t_emb.dtype))  # (B, D)
            t_emb = t_emb + fps_emb
            t0_emb = None if t0_emb is None else t0_emb + fps_emb
        t_mod = self.t_block(t_emb)[:, None]  # (B, 1, 6D), shared by all frames
        t_final = t_emb[:, None]  # (B, 1, D)
        if x_mask is not None:
            if x_mask.shape != (b, t_tok):
                raise ValueError(f"STDiT.forward: x_mask must be (B, T) = {(b, t_tok)}, got {tuple(x_mask.shape)}")
            keep = x_mask.to(torch.bool)[:, :, None]  # (B, T, 1): True = noised frame
            t_mod = torch.where(keep, t_mod, self.t_block(t0_emb)[:, None])  # (B, T, 6D)
            t_final = torch.where(keep, t_final, t0_emb[:, None])  # (B, T, D)

        if mask is not None:
            mask = mask.to(torch.bool)
            empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
            if empty:
                raise ValueError(f"STDiT.forward: text mask has no real token for batch rows {empty}")
        drop_ids = force_drop_ids
        if drop_ids is None and self.training and cfg.class_dropout_prob > 0:
            drop_ids = torch.rand(b, device=y.device) < cfg.class_dropout_prob
        y = self.y_embedder(y, drop_ids)  # (B, L, D)

        height = hx * cfg.vae_spatial_stride if height is None else float(torch.as_tensor(height).flatten()[0])
        width = wx * cfg.vae_spatial_stride if width is None else float(torch.as_tensor(width).flatten()[0])
        pos = opensora_pos_embed(cfg.hidden_size, h_tok, w_tok, height, width, cfg.input_sq_size, device=x.device)
        h = self.x_embedder(x) + pos.to(x.dtype)  # (B, T, S, D); same table for every frame

        temporal = self.temporal_blocks if self.temporal_blocks is not None else [None] * len(self.spatial_blocks)
        for spatial_block, temporal_block in zip(self.spatial_blocks, temporal):
            h = self._run(spatial_block, h, y, t_mod, mask)
            if temporal_block is not None:
                h = self._run(temporal_block, h, y, t_mod, mask)

        h = self.final_layer(h, t_final)  # (B, T, S, pt·ph·pw·C_out)
        return self.unpatchify(h, (t_tok, h_tok, w_tok), (tx, hx, wx))

    def _run(self, block: nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
        """Call a block, through activation checkpointing when enabled and training."""
        if self.cfg.grad_checkpointing and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int], size: tuple[int, int, int]) -> torch.Tensor:
        """(B, T', S, pt·ph·pw·C) tokens → (B, C, T, H, W), cropping the patch padding."""
        pt, ph, pw = self.cfg.patch_size
        t_tok, h_tok, w_tok = grid
        c = self.cfg.out_channels
        b = x.shape[0]
        x = x.reshape(b, t_tok, h_tok, w_tok, pt, ph, pw, c)  # (B, T', H', W', pt, ph, pw, C)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, T', pt, H', ph, W', pw)
        x = x.reshape(b, c, t_tok * pt, h_tok * ph, w_tok * pw)  # (B, C, T'·pt, H'·ph, W'·pw)
        return x[:, :, : size[0], : size[1], : size[2]]
