"""Stage cache.latents: encode each tier's clips once with the trained video VAE and the text encoder.

For every tier table and its bucket config, every (clip, bucket) sample training can request in any epoch
(latent_plan.py) is looked up in the previous cache (workspace/cache/latents): a hit is carried over by a hard
link, a miss is decoded, encoded (posterior mean) and written into a new shard. Entries of the previous cache
nobody asks for any more, those of an older VAE above all, are stale: counted and reported, and left out unless
keep_stale. Under torchrun each rank encodes its share of the misses; rank 0 writes the index.
DVC: the output folder must be `persist: true` in dvc.yaml, or `dvc repro` deletes it before the stage runs
and every run starts cold.
"""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import save_file

from components.config import StageConfig
from components.data.buckets import TINY_STAGES, BucketConfig
from components.data.video_decode import decode_frames, to_tensor
from components.dit.captions import LazyEncoder
from components.dit.latent_cache import (INDEX, INDEX_COLUMNS, LATENTS, META, TEXT, bucket_dir, frames_text,
                                         link_or_copy, null_caption_path, sample_key, vae_version, write_shards)
from components.dit.latent_plan import PlannedSample, merge_plans, plan_tier
from components.dit.latents import EXPORT_WEIGHTS, VideoCodec, load_video_codec
from components.dit.text_cache import TextEmbeddingCache
from components.dit.text_encoders import TextEncoderConfig
from components.hashing import file_sha256
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.training.engine import pick_device

OUTPUT = "cache/latents"
PARTS = "parts"


class TierSource(BaseModel):
    """One tier's table and the buckets its pretraining stage reads it with."""

    model_config = ConfigDict(extra="forbid")
    table: str  # workspace-relative or absolute
    buckets: BucketConfig
    images_from_videos: bool = False  # as the DiT data config of that stage
    video_frames_as_images: bool = False  # as the DiT data config of that stage


def _tiny_tiers() -> dict[str, TierSource]:
    return {f"tier{i}": TierSource(table=f"curate/tier/tier{i}.parquet", buckets=TINY_STAGES[f"stage{i}"])
            for i in (1, 2, 3)}


class LatentCacheConfig(StageConfig):
    """cache.latents. `seed` must be the pretraining stages' seed: it fixes the frames each clip gives a bucket."""

    vae: str = "vae/stage3"  # video VAE export folder (workspace-relative)
    tiers: dict[str, TierSource] = Field(default_factory=_tiny_tiers, min_length=1)
    text: TextEncoderConfig = TextEncoderConfig(kind="minilm", max_length=32)
    score_text: bool = True  # also cache every score-to-text variant of each caption
    # samples per VAE call (same bucket). 1 gives latents bitwise equal to on-the-fly encoding (one request at a
    # time); larger batches regroup the 2D VAE's frame micro-batches and differ by float32 rounding (~1e-6)
    batch_size: int = Field(1, ge=1)
    shard_size: int = Field(64, ge=1)  # latents per shard file
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # storage of latents and caption embeddings
    keep_stale: bool = False  # carry over entries nobody asks for (other VAE, dropped clips) instead of dropping


def _uri(ws: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else ws / path


def cache_inputs(cfg: LatentCacheConfig, ws: Path) -> dict[str, str]:
    inputs = {"vae": str(_uri(ws, cfg.vae) / EXPORT_WEIGHTS)}
    return inputs | {name: str(_uri(ws, tier.table)) for name, tier in cfg.tiers.items()}


def vae_identity(folder: Path, codec: VideoCodec) -> dict[str, Any]:
    """What names the VAE in the cache: its folder, weights sha256, latent statistics and their version hash."""
    sha = file_sha256(folder / EXPORT_WEIGHTS)
    shift = [float(v) for v in codec.vae.shift.flatten()]
    scale = [float(v) for v in codec.vae.scale.flatten()]
    return {"dir": str(folder), "sha256": sha, "shift": shift, "scale": scale,
            "version": vae_version(sha, shift, scale)}


def _previous(folder: Path) -> pd.DataFrame:
    """The index of the cache the last run left (empty when there is none)."""
    path = folder / INDEX
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=INDEX_COLUMNS)


def _row(key: str, version: str, sample: PlannedSample, shape: tuple[int, ...], shard: str) -> dict[str, Any]:
    r = sample.request
    return {"key": key, "vae_version": version, "clip_id": r.clip_id, "frames": frames_text(r.frames),
            "height": r.height, "width": r.width, "bucket": sample.bucket.name, "num_frames": sample.bucket.num_frames,
            "fps": sample.fps, "shape": ",".join(str(s) for s in shape), "shard": shard,
            "tiers": ",".join(sample.tiers)}


@torch.no_grad()
def encode_samples(codec: VideoCodec, samples: list[PlannedSample], batch_size: int,
                   failed: list[dict]) -> list[tuple[PlannedSample, torch.Tensor]]:
    """Latents (C, t, h, w) of samples of one bucket, batch_size at a time; undecodable clips go to `failed`."""
    out = []
    for start in range(0, len(samples), batch_size):
        videos, kept = [], []
        for sample in samples[start : start + batch_size]:
            r = sample.request
            try:
                frames = decode_frames(r.path, list(r.frames), (r.height, r.width))
            except Exception as err:  # noqa: BLE001 - one bad file is reported, the rest is still cached
                failed.append({"clip_id": r.clip_id, "path": r.path, "error": f"{type(err).__name__}: {err}"})
                continue
            videos.append(to_tensor(frames, len(frames)))  # (3, T, H, W)
            kept.append(sample)
        if videos:
            z = codec.encode(torch.stack(videos)).float().cpu()  # (B, C, t, h, w)
            out += list(zip(kept, z))
    return out


def encode_misses(codec: VideoCodec, version: str, misses: dict[str, PlannedSample], out: Path,
                  cfg: LatentCacheConfig) -> tuple[list[dict[str, Any]], list[dict]]:
    """Encode and shard the missing samples, bucket by bucket; returns their index rows and the failures."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for key in sorted(misses):
        by_bucket[misses[key].bucket.name].append(key)
    rows, failed = [], []
    for name, keys in sorted(by_bucket.items()):
        folder = f"{LATENTS}/{version}/{bucket_dir(name)}"
        for start in range(0, len(keys), cfg.shard_size):
            chunk = [misses[k] for k in keys[start : start + cfg.shard_size]]
            encoded = encode_samples(codec, chunk, cfg.batch_size, failed)
            items = [(sample_key(version, s.request), z) for s, z in encoded]
            shards = write_shards(items, out, folder, cfg.shard_size, cfg.dtype)
            rows += [_row(k, version, s, tuple(z.shape), shards[k]) for (k, z), (s, _) in zip(items, encoded)]
    return rows, failed


def fill_text(cfg: LatentCacheConfig, ctx: StageContext, previous: Path, captions: list[str]) -> dict[str, Any]:
    """Caption embeddings of every caption into out/text: carried over from the previous cache, else encoded."""
    encoder = LazyEncoder(cfg.text, ctx.profile)
    new = TextEmbeddingCache(ctx.out / TEXT, encoder, cfg.dtype)
    old = TextEmbeddingCache(previous / TEXT, encoder, cfg.dtype)
    carried = 0
    if ctx.is_main:
        for caption in captions:
            key = old.key(caption)
            if Path(old.path(key)).exists():
                link_or_copy(Path(old.path(key)), Path(new.path(key)))
                carried += 1
        write_null_caption(old, new, encoder)
    _barrier(ctx)
    encoded = new.fill(captions, ctx.rank, ctx.world_size)
    return {"name": encoder.name, "version": encoder.version, "max_length": encoder.max_length, "dim": encoder.dim,
            "dtype": cfg.dtype, "kind": cfg.text.kind, "carried": carried, "encoded_here": encoded}


def write_null_caption(old: TextEmbeddingCache, new: TextEmbeddingCache, encoder: LazyEncoder) -> None:
    """The null caption into the new cache: carried over from the previous one (same encoder), else encoded."""
    src, dst = null_caption_path(old), null_caption_path(new)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.exists():
        link_or_copy(src, dst)
    else:
        save_file({"null": encoder.null_embedding().float().contiguous()}, str(dst))


def _barrier(ctx: StageContext) -> None:
    if ctx.world_size > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _stale(previous: pd.DataFrame, wanted: set[str], version: str) -> dict[str, Any]:
    """Entries of the previous cache no sample asks for: how many, and how many belong to another VAE."""
    stale = previous[~previous["key"].isin(wanted)]
    other = stale[stale["vae_version"] != version]
    return {"entries": int(len(stale)), "other_vae": int(len(other)),
            "vae_versions": sorted(str(v) for v in other["vae_version"].unique())}


@stage("cache.latents", config=LatentCacheConfig, output=OUTPUT, inputs=cache_inputs)
def cache_latents(ctx: StageContext) -> dict[str, float]:
    """Encode every tier's clips once per bucket with the video VAE and the text encoder (hits carried over)."""
    cfg: LatentCacheConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    ws, out = Path(ctx.workspace), Path(ctx.out)
    vae_dir = _uri(ws, cfg.vae)
    codec = load_video_codec(vae_dir, pick_device(ctx.local_rank))
    vae = vae_identity(vae_dir, codec)
    version = vae["version"]
    plans = [plan_tier(str(_uri(ws, tier.table)), name, tier.buckets, tier.images_from_videos, cfg.seed,
                       cfg.score_text, tier.video_frames_as_images) for name, tier in sorted(cfg.tiers.items())]
    wanted = merge_plans(plans, lambda request: sample_key(version, request))
    prev_dir = ws / OUTPUT
    previous = _previous(prev_dir)
    present = previous[np.array([(prev_dir / s).exists() for s in previous["shard"]], dtype=bool)]
    carry = present[present["key"].isin(wanted.keys()).to_numpy(dtype=bool) | cfg.keep_stale]
    if ctx.is_main:
        for shard in sorted(set(carry["shard"])):
            link_or_copy(prev_dir / shard, out / shard)
    misses = {k: s for k, s in wanted.items() if k not in set(carry["key"])}
    mine = {k: misses[k] for k in sorted(misses)[ctx.rank :: ctx.world_size]}
    rows, failed = encode_misses(codec, version, mine, out, cfg)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_parquet(out / PARTS / f"rank-{ctx.rank:05d}.parquet", index=False)
    (out / PARTS / f"failed-{ctx.rank:05d}.json").write_text(json.dumps(failed))
    captions = sorted({c for s in wanted.values() for c in s.captions})
    text = fill_text(cfg, ctx, prev_dir, captions)
    _barrier(ctx)
    if not ctx.is_main:
        return {}
    return finish(ctx, tracker, vae, wanted, carry, previous, text)


def finish(ctx: StageContext, tracker: Any, vae: dict[str, Any], wanted: dict[str, PlannedSample],
           carry: pd.DataFrame, previous: pd.DataFrame, text: dict[str, Any]) -> dict[str, float]:
    """Rank 0: merge the ranks' index parts with the carried rows, write index.parquet and cache.json."""
    cfg: LatentCacheConfig = ctx.cfg
    out = Path(ctx.out)
    parts = [pd.read_parquet(p) for p in sorted((out / PARTS).glob("rank-*.parquet"))]
    failed = [f for p in sorted((out / PARTS).glob("failed-*.json")) for f in json.loads(p.read_text())]
    new = pd.concat([df for df in parts if len(df)] or [pd.DataFrame(columns=INDEX_COLUMNS)], ignore_index=True)
    carry = carry[INDEX_COLUMNS].copy()
    # a carried latent may now serve other tiers than when it was encoded
    carry["tiers"] = [",".join(wanted[k].tiers) if k in wanted else t for k, t in zip(carry["key"], carry["tiers"])]
    index = pd.concat([df for df in (carry, new) if len(df)] or [new], ignore_index=True)
    index = index.sort_values("key", kind="stable").reset_index(drop=True)
    index.to_parquet(out / INDEX, index=False)
    shutil.rmtree(out / PARTS)
    captions = len({c for s in wanted.values() for c in s.captions})
    counts = {"samples": len(wanted), "entries": len(index), "hits": int(carry["key"].isin(wanted.keys()).sum()),
              "misses": len(new), "failed": len(failed), "captions": captions, "text_carried": text["carried"],
              "text_encoded": captions - text["carried"],
              "bytes": sum(p.stat().st_size for p in (out / LATENTS).rglob("*.safetensors"))}
    stale = _stale(previous, set(wanted), vae["version"])
    tiers = {name: sum(name in s.tiers for s in wanted.values()) for name in sorted(cfg.tiers)}
    meta = {"vae": vae, "text": {k: v for k, v in text.items() if k not in ("carried", "encoded_here")},
            "counts": counts, "stale": stale, "tiers": tiers, "failed": failed, "seed": cfg.seed}
    (out / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    tracker.set_tags({"reelforge.cache.vae_version": vae["version"], "reelforge.cache.vae_sha256": vae["sha256"]})
    tracker.log_dict(meta, "latent_cache.json")
    # the runner logs these as cache/<name>
    metrics = {k: float(v) for k, v in counts.items()}
    metrics |= {"stale": float(stale["entries"]), "stale_other_vae": float(stale["other_vae"])}
    return metrics | {f"{name}_samples": float(n) for name, n in tiers.items()}
