"""Stage eval.vae: PSNR, SSIM, LPIPS and rFVD of a trained video VAE on held-out clips (EVAL.md, RECIPE §8).

PSNR and SSIM are always computed; LPIPS and rFVD only when their weight files are present, otherwise the score
is recorded as "not computed" with the missing file, never replaced by a stand-in. metrics.json carries every
setting next to each score (frames, resolution, resize method, N, weight files with sha256).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.config import StageConfig
from components.evaluation import clips as heldout
from components.evaluation import video_metrics as vm
from components.evaluation.frechet import frechet_distance_features
from components.evaluation.loaders import LPIPS_PIP, LPIPS_VERSION, load_i3d, load_lpips, lpips_heads_path
from components.evaluation.previews import write_preview
from components.evaluation.vae_source import VAESource, load_vae, reconstruct
from components.hashing import exists
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.weights import store_uri
from components.workspace import is_remote
from models import ssim
from models.i3d import preprocess as i3d_preprocess

OUTPUT = "eval/vae"
NOT_COMPUTED = "not computed"


class EvalWeights(BaseModel):
    """Feature networks, as paths in the weights store (or absolute paths / URIs)."""

    model_config = ConfigDict(extra="forbid")
    store: str | None = None  # default: REELFORGE_WEIGHTS, else <workspace>/weights
    i3d: str = "i3d/i3d_torchscript.pt"  # or i3d/i3d_pretrained_400.pt (VideoGPT/TATS)
    lpips_trunk: str = "lpips/alexnet-owt-7be5be79.pth"  # torchvision AlexNet; vgg16-397923af.pth for "vgg"
    lpips_net: Literal["alex", "vgg"] = "alex"

    def uri(self, name: str) -> str:
        if is_remote(name) or Path(name).is_absolute():
            return name
        return f"{(self.store or store_uri()).rstrip('/')}/{name}"


class FVDSettings(BaseModel):
    """I3D input: the first `frames` frames of each clip, resized to `resolution` (EVAL.md: 16 frames, 224)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    frames: int = Field(16, ge=10)  # I3D needs >= 10 frames; 16 is the convention
    resolution: int = 224
    batch_size: int = Field(4, ge=1)


class EvalVAEConfig(StageConfig):
    """eval.vae: which VAE, which clips, which metrics, where the weights are."""

    vae: VAESource = VAESource()
    clips: heldout.ClipSelection = heldout.ClipSelection()
    weights: EvalWeights = EvalWeights()
    fvd: FVDSettings = FVDSettings()
    lpips: bool = True
    batch_size: int = Field(2, ge=1)  # clips per VAE call
    lpips_batch_frames: int = Field(32, ge=1)
    previews: int = Field(3, ge=0)  # side-by-side reconstructions written and logged
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _frames(self) -> "EvalVAEConfig":
        if self.fvd.enabled and self.fvd.frames > self.clips.frames:
            raise ValueError(f"fvd.frames ({self.fvd.frames}) exceeds clips.frames ({self.clips.frames})")
        return self


def _uri(ws: Path, value: str) -> str:
    return value if is_remote(value) else str(ws / value)


def eval_inputs(cfg: EvalVAEConfig, ws: Path) -> dict[str, str]:
    return {"vae": _uri(ws, cfg.vae.dir), "clips": _uri(ws, cfg.clips.table)}


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("eval.vae: device=cuda but CUDA is not available")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _missing(uri: str, what: str, hint: str = "") -> dict[str, Any]:
    return {"value": None, "status": NOT_COMPUTED, "reason": f"missing {what}: {uri}{hint}"}


def _lpips_model(cfg: EvalVAEConfig) -> tuple[Any, dict[str, Any]]:
    """(model, settings) or (None, a not-computed record naming the missing file)."""
    trunk = cfg.weights.uri(cfg.weights.lpips_trunk)
    heads = lpips_heads_path(cfg.weights.lpips_net)
    if not exists(trunk):
        return None, _missing(trunk, f"LPIPS {cfg.weights.lpips_net} trunk weights")
    if heads is None:
        return None, _missing(f"lpips/weights/v{LPIPS_VERSION}/{cfg.weights.lpips_net}.pth",
                              "LPIPS linear heads (the lpips package)", f" ({LPIPS_PIP})")
    model, files = load_lpips(trunk, heads, cfg.weights.lpips_net)
    return model, {"net": cfg.weights.lpips_net, "version": LPIPS_VERSION, "weights": [f.as_dict() for f in files]}


def _i3d_model(cfg: EvalVAEConfig) -> tuple[Any, dict[str, Any]]:
    uri = cfg.weights.uri(cfg.weights.i3d)
    if not exists(uri):
        return None, _missing(uri, "I3D weights")
    model, record = load_i3d(uri)
    return model, {"weights": record.as_dict()}


def _features(model: torch.nn.Module, video: torch.Tensor, fvd: FVDSettings) -> np.ndarray:
    """I3D logits (B, 400) of the first fvd.frames frames, resized to fvd.resolution, in float64."""
    clip = i3d_preprocess(video[:, :, : fvd.frames], fvd.resolution)  # (B, 3, F, 224, 224)
    with torch.no_grad():
        out = [model(clip[i : i + fvd.batch_size]) for i in range(0, clip.shape[0], fvd.batch_size)]
    return torch.cat(out).double().cpu().numpy()


def _scores(cfg: EvalVAEConfig, n: int, per_frame: dict[str, list[torch.Tensor]], lp: dict, fvd: dict,
            feats: dict[str, list[np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Every score with the settings that produced it."""
    c = cfg.clips
    common = {"N": n, "frames": c.frames, "resolution": f"{c.resolution}x{c.resolution}", "resize": c.describe(),
              "aggregate": "per frame, mean over frames and videos"}
    scores: dict[str, dict[str, Any]] = {
        "psnr": {"value": vm.mean_score(per_frame["psnr"]), **common, "range": "[0, 1]", "cap_db": vm.PSNR_CAP},
        "ssim": {"value": vm.mean_score(per_frame["ssim"]), **common, "range": "[0, 1]",
                 "window": f"gaussian {ssim.SSIM_WINDOW}x{ssim.SSIM_WINDOW}, sigma {ssim.SSIM_SIGMA}",
                 "C1": ssim.SSIM_C1, "C2": ssim.SSIM_C2, "channels": "per RGB channel, then averaged"},
    }
    scores["lpips"] = ({"value": vm.mean_score(per_frame["lpips"]), **common, "range": "[-1, 1]", **lp}
                       if per_frame["lpips"] else lp)
    if fvd.get("status") == NOT_COMPUTED:
        scores["rfvd"] = fvd
    elif n < 2:
        scores["rfvd"] = {"value": None, "status": NOT_COMPUTED, "reason": f"needs >= 2 clips, got N={n}"}
    else:
        real, fake = np.concatenate(feats["real"]), np.concatenate(feats["fake"])
        scores["rfvd"] = {"value": frechet_distance_features(real, fake), "N": n, "frames": cfg.fvd.frames,
                          "resolution": f"{cfg.fvd.resolution}x{cfg.fvd.resolution}",
                          "resize": f"clips as for psnr ({c.describe()}), then bilinear to "
                                    f"{cfg.fvd.resolution} (short side) + centre crop",
                          "features": "I3D Kinetics-400, 400-d pre-softmax logits, [-1, 1] input",
                          "covariance": "unbiased (N-1), features pooled over all clips",
                          "reference": "FD(I3D(real clips), I3D(their reconstructions))",
                          "note": "biased upward at small N; reports use 2048 clips per side", **fvd}
    return scores


@stage("eval.vae", config=EvalVAEConfig, output=OUTPUT, inputs=eval_inputs)
def eval_vae(ctx: StageContext) -> dict[str, float]:
    """Reconstruct held-out clips with the trained VAE; PSNR, SSIM, LPIPS and rFVD with their settings."""
    cfg: EvalVAEConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    vae, vae_info = load_vae(ctx.inputs["vae"], cfg.vae)
    vae.to(device)
    chosen = heldout.select(pd.read_parquet(ctx.inputs["clips"]), cfg.clips, ctx.inputs["clips"])
    lp_model, lp_info = _lpips_model(cfg) if cfg.lpips else (None, _disabled("lpips"))
    i3d, fvd_info = _i3d_model(cfg) if cfg.fvd.enabled else (None, _disabled("fvd.enabled"))
    for model in (lp_model, i3d):
        if model is not None:
            model.to(device)

    per_frame: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "lpips": []}
    feats: dict[str, list[np.ndarray]] = {"real": [], "fake": []}
    previews: list[str] = []
    rows = chosen.to_dict("records")
    for start in range(0, len(rows), cfg.batch_size):
        batch = rows[start : start + cfg.batch_size]
        x = torch.stack([heldout.load_clip(r, cfg.clips) for r in batch]).to(device)  # (B, 3, T, R, R)
        rec = reconstruct(vae, x)
        real01, fake01 = (x + 1) / 2, (rec + 1) / 2
        per_frame["psnr"].append(vm.psnr(real01, fake01).cpu())
        per_frame["ssim"].append(vm.ssim(real01, fake01).cpu())
        if lp_model is not None:
            with torch.no_grad():
                per_frame["lpips"].append(vm.lpips(x, rec, lp_model, cfg.lpips_batch_frames).cpu())
        if i3d is not None:
            feats["real"].append(_features(i3d, x, cfg.fvd))
            feats["fake"].append(_features(i3d, rec, cfg.fvd))
        for row, real, fake in zip(batch, x, rec):
            if len(previews) < cfg.previews:
                write_preview(real, fake, out / "samples", row["clip_id"])
                previews.append(row["clip_id"])

    scores = _scores(cfg, len(rows), per_frame, lp_info, fvd_info, feats)
    report = {
        "stage": "eval.vae", "vae": vae_info, "device": str(device),
        "latents": "posterior mode (deterministic), reconstruction clamped to [-1, 1]",
        "clips": {"table": ctx.inputs["clips"], "fraction": cfg.clips.fraction, "salt": cfg.clips.salt,
                  "N": len(rows), "clip_ids": [r["clip_id"] for r in rows]},
        "scores": scores, "previews": previews,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    chosen.drop(columns=["heldout_score"]).to_parquet(out / "heldout_clips.parquet", index=False)

    metrics = {name: s["value"] for name, s in scores.items() if s.get("value") is not None}
    tracker.set_tags({f"reelforge.eval.{name}": s.get("reason", "computed") for name, s in scores.items()})
    tracker.log_artifact(out / "metrics.json", "eval")
    if previews:
        tracker.log_artifact(out / "samples", "eval/samples")
    return {**metrics, "clips": float(len(rows))}


def _disabled(field: str) -> dict[str, Any]:
    return {"value": None, "status": NOT_COMPUTED, "reason": f"disabled by config ({field}: false)"}
