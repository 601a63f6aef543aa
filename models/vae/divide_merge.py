"""Divide-and-merge (xGen-VideoSyn-1) for long videos: encode/decode in overlapping segments, keep each
segment's own part, so peak memory depends on the segment length and not on the video length.

Segments are cut where the one-shot latent grid has a boundary: at chunk boundaries (multiples of 17 frames,
5 latents) when the VAE works in chunks, at latent boundaries (every 4 padded frames, every latent) when the
temporal VAE sees the whole clip. Each segment is run together with `overlap` frames (latents) of context in
front, then that context's output is trimmed. Everything here is causal, so output k only depends on inputs
before it: once the overlap covers that reach (`min_overlap_frames`, `min_overlap_latents`) the merged result is
the one-shot result up to float rounding. With 17-frame chunks the chunks are already independent and the
minimum overlap is 0. A smaller overlap than the minimum is accepted and gives an approximation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from models.vae.gaussian import DiagonalGaussian

if TYPE_CHECKING:  # VideoVAE imports this module
    from models.vae.video_vae import VideoVAE


@dataclass(frozen=True)
class Segment:
    """Run inputs [context_start, end), keep the outputs of [start, end)."""

    context_start: int
    start: int
    end: int


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def plan_segments(length: int, segment: int, overlap: int, unit: int, offset: int = 0) -> list[Segment]:
    """Cut [0, length) at k * segment - offset (k >= 1); `segment` and `overlap` must be multiples of `unit`."""
    if segment < unit or segment % unit:
        raise ValueError(f"divide-and-merge: segment length {segment} must be a positive multiple of {unit}")
    if overlap < 0 or overlap % unit:
        raise ValueError(f"divide-and-merge: overlap {overlap} must be a non-negative multiple of {unit}")
    cuts = [0] + list(range(segment - offset, length, segment)) + [length]
    return [Segment(max(0, a - overlap), a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def frame_unit(vae: VideoVAE) -> int:
    """Frames between two admissible cuts: a whole chunk, or one latent's 4 frames."""
    return vae.cfg.chunk_frames or vae.time_factor


def latent_unit(vae: VideoVAE) -> int:
    """Latents between two admissible cuts: a whole chunk's latents (5), or 1."""
    chunk = vae.cfg.chunk_frames
    return vae.temporal.latent_frames(chunk) if chunk else 1


def front_padding(vae: VideoVAE, num_frames: int) -> int:
    """Zero frames the one-shot encoding puts in front of the whole clip (0 with chunks, each pads its own)."""
    return 0 if vae.cfg.chunk_frames else vae.temporal.front_padding(num_frames)


def min_overlap_frames(vae: VideoVAE) -> int:
    """Smallest frame overlap for an exact encode: 0 with chunks, else the temporal encoder's causal reach."""
    if vae.cfg.chunk_frames:
        return 0
    return _round_up(vae.temporal.encoder_context_frames(), vae.time_factor)


def min_overlap_latents(vae: VideoVAE) -> int:
    """Smallest latent overlap for an exact decode: 0 with chunks, else the temporal decoder's causal reach."""
    return 0 if vae.cfg.chunk_frames else vae.temporal.decoder_context_latents()


def latents_before(vae: VideoVAE, frame: int, num_frames: int) -> int:
    """Latent frames produced by frames [0, frame) when `frame` is a cut or the end of the clip."""
    if vae.cfg.chunk_frames:
        return vae.latent_frames(frame) if frame else 0
    return (frame + front_padding(vae, num_frames)) // vae.time_factor


def frames_before(vae: VideoVAE, latent: int, num_latents: int, num_frames: int) -> int:
    """Frames decoded from latents [0, latent) when `latent` is a cut or the end of the latents."""
    if latent == num_latents:
        return num_frames
    chunk = vae.cfg.chunk_frames
    if chunk:
        return latent // latent_unit(vae) * chunk
    return max(0, latent * vae.time_factor - front_padding(vae, num_frames))


def encode_long(
    vae: VideoVAE,
    x: torch.Tensor,
    segment_frames: int,
    overlap_frames: int | None = None,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Video (B, 3, T, H, W) -> normalised latents, equal to `vae.encode(x)` when overlap >= min_overlap_frames."""
    num_frames = x.shape[2]
    overlap = min_overlap_frames(vae) if overlap_frames is None else overlap_frames
    plan = plan_segments(num_frames, segment_frames, overlap, frame_unit(vae), front_padding(vae, num_frames))
    b, _, _, h, w = x.shape
    t, h, w = vae.latent_shape(num_frames, h, w)
    c = vae.cfg.temporal.latent_channels
    # moments are merged before sampling, so sample=True with a seeded generator draws what one-shot draws
    mean = x.new_empty(b, c, t, h, w)  # (B, C, t, h, w)
    logvar = x.new_empty(b, c, t, h, w)
    for seg in plan:
        post = vae.encode_temporal(vae.encode_frames(x[:, :, seg.context_start : seg.end], sample, generator))
        j0, j1 = latents_before(vae, seg.start, num_frames), latents_before(vae, seg.end, num_frames)
        mean[:, :, j0:j1] = post.mean[:, :, post.mean.shape[2] - (j1 - j0) :]
        logvar[:, :, j0:j1] = post.logvar[:, :, post.logvar.shape[2] - (j1 - j0) :]
    post = DiagonalGaussian(mean, logvar)
    return vae.normalize(post.sample(generator) if sample else post.mode())


def decode_long(
    vae: VideoVAE, z: torch.Tensor, num_frames: int, segment_latents: int, overlap_latents: int | None = None
) -> torch.Tensor:
    """Normalised latents (B, 4, t, h, w) -> video (B, 3, num_frames, H, W), equal to `vae.decode` when
    overlap >= min_overlap_latents."""
    num_latents = z.shape[2]
    if vae.latent_frames(num_frames) != num_latents:
        raise ValueError(
            f"decode_long: num_frames={num_frames} maps to {vae.latent_frames(num_frames)} latent frames, "
            f"but z has {num_latents}"
        )
    overlap = min_overlap_latents(vae) if overlap_latents is None else overlap_latents
    plan = plan_segments(num_latents, segment_latents, overlap, latent_unit(vae))
    b, _, _, h, w = z.shape
    f = vae.space_factor
    out = z.new_empty(b, 3, num_frames, h * f, w * f)  # (B, 3, T, H, W)
    for seg in plan:
        cuts = (seg.context_start, seg.start, seg.end)
        f_ctx, f0, f1 = (frames_before(vae, j, num_latents, num_frames) for j in cuts)
        piece = vae.decode(z[:, :, seg.context_start : seg.end], f1 - f_ctx)  # (B, 3, f1 - f_ctx, H, W)
        out[:, :, f0:f1] = piece[:, :, f0 - f_ctx :]
    return out
