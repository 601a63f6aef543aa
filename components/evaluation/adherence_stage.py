"""Stage eval.adherence: does a trained DiT draw the colour and the motion direction a held-out prompt asks for?

Samples held-out prompts of the synthetic world (adherence_prompts.py), judges each video with the analytic
checker (adherence.py, validated on the corpus ground truth) and reports colour and direction accuracy beside
their chance levels (1 / #colours, 1 / #directions), overall and per prompt kind, to adherence.json and MLflow,
with a grid GIF of the samples. `accuracy` is the share of samples with both right (chance 1 / (#colours ·
#directions)). adherence.json keeps its numbers under `scores` (components/evaluation/results.py reads them as
eval.adherence/<name> for the report and the registry gate).

Image-to-video (`i2v_samples`): corpus images as given first frames, each asked to move every way in turn. It
reports the PSNR of each sample's first frame against the given one (issue #6 asks >= 25 dB) and the direction
accuracy when the object's start is fixed, under scores.i2v.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from components import media
from components.config import StageConfig
from components.data.aspect_ratios import closest_ratio
from components.data.synth_shapes import COLOURS, DIRECTIONS
from components.evaluation.adherence import CheckerConfig, check_video
from components.evaluation.adherence_prompts import AdherencePrompt, draw_prompts, i2v_prompts
from components.evaluation.video_metrics import psnr
from components.model_source import RUN_ID, DiTBundle, load_dit, resolve_model
from components.sampling import SampleRequest, generate, read_image
from components.stage import StageContext, stage
from components.tracking import NoopTracker
from components.workspace import project_root

OUTPUT = "eval/adherence"
REPORT = "adherence.json"
GRID = "samples_grid.gif"


class AdherenceConfig(StageConfig):
    """eval.adherence: the model, the corpus ground truth its prompts come from, the sampler and the judge."""

    model: str = "dit/adapt8"  # stage output folder, MLflow run id or registered model (components/model_source.py)
    vae: str | None = None  # None: the VAE recorded in the model's dit.json
    weights: Literal["model", "ema"] = "model"
    ground_truth: str = "data/ground_truth.json"  # relative to the project root (the DVC-tracked corpus)
    samples: int = Field(48, ge=1)
    steps: int = Field(30, ge=1)
    cfg_scale: float = Field(7.0, ge=0)
    resolution: str = "64px"
    aspect_ratio: str = "1.00"
    num_frames: int = Field(17, ge=2)  # pixel frames: motion needs more than one
    fps: float = Field(8.0, gt=0)
    checker: CheckerConfig = CheckerConfig()
    i2v_samples: int = Field(16, ge=0)  # image-to-video samples from the corpus' images (0: none)
    i2v_speed: Literal["slow", "fast"] = "fast"  # a fast object leaves the longest track in the clip
    grid_columns: int = Field(8, ge=1)
    upscale: int = Field(2, ge=1)  # nearest-neighbour enlargement of the grid GIF


def _ground_truth(cfg: AdherenceConfig) -> Path:
    path = Path(cfg.ground_truth)
    return path if path.is_absolute() else project_root() / path


def is_reference(model: str) -> bool:
    """An MLflow run or registered-model reference (resolved when the stage runs), rather than a folder."""
    return (model.startswith(("runs:/", "models:/")) or "@" in model or bool(RUN_ID.match(model))
            or bool(re.fullmatch(r"[^/]+/\d+", model)))


def adherence_inputs(cfg: AdherenceConfig, ws: Path) -> dict[str, str]:
    """The ground truth and, for a folder, the model weights: both checked before any sampling."""
    inputs = {"ground_truth": str(_ground_truth(cfg))}
    if not is_reference(cfg.model):
        folder = Path(cfg.model) if Path(cfg.model).is_absolute() else ws / cfg.model
        inputs["model"] = str(folder / ("model.safetensors" if cfg.weights == "model" else "ema.safetensors"))
    return inputs


def accuracy(records: list[dict[str, Any]]) -> dict[str, float]:
    """Colour, direction and both-right (`accuracy`) shares of judged samples."""
    n = len(records)
    colour = sum(r["predicted_colour"] == r["colour"] for r in records)
    direction = sum(r["predicted_direction"] == r["direction"] for r in records)
    both = sum(r["predicted_colour"] == r["colour"] and r["predicted_direction"] == r["direction"] for r in records)
    share = (lambda k: k / n if n else 0.0)  # noqa: E731
    return {"samples": n, "accuracy": share(both), "colour_accuracy": share(colour),
            "direction_accuracy": share(direction)}


def chance_levels() -> dict[str, float]:
    """What guessing scores: one of the vocabulary's colours, one of its directions, both."""
    return {"colour": 1.0 / len(COLOURS), "direction": 1.0 / len(DIRECTIONS),
            "both": 1.0 / (len(COLOURS) * len(DIRECTIONS))}


def write_grid(videos: list[np.ndarray], path: Path, columns: int, upscale: int, fps: float) -> Path:
    """Samples (T, H, W, 3) in rows of `columns` (the last row padded with black clips) as one GIF."""
    blank = np.zeros_like(videos[0])
    padded = videos + [blank] * (-len(videos) % columns)
    rows = [media.side_by_side(padded[i : i + columns]) for i in range(0, len(padded), columns)]
    return media.write_gif(media.upscale(media.stack_rows(rows), upscale), path, fps)


def judge(prompt: AdherencePrompt, frames: np.ndarray, seed: int, cfg: CheckerConfig) -> dict[str, Any]:
    verdict = check_video(frames, cfg)
    return {**prompt.as_dict(), "seed": seed, "predicted_colour": verdict.colour,
            "predicted_direction": verdict.direction, "evidence": verdict.as_dict()}


def _one_frame_video(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, 1, H, W) in [0, 1], the layout video_metrics scores."""
    return torch.from_numpy(frame).permute(2, 0, 1)[None, :, None] / 255.0


def first_frame_psnr(given: np.ndarray, frame: np.ndarray) -> float:
    """PSNR (dB, capped as eval.vae caps it) of a generated first frame against the given one, both (H, W, 3) uint8."""
    return float(psnr(_one_frame_video(given), _one_frame_video(frame)))


def image_to_video(cfg: AdherenceConfig, bundle: DiTBundle, gt: dict,
                   prompts: list[AdherencePrompt]) -> list[dict[str, Any]]:
    """Judge i2v samples from the corpus' images: direction and colour, and the first frame's PSNR."""
    images = {im["path"]: im for im in gt["images"]}
    folder = _ground_truth(cfg).parent  # image paths are relative to the ground truth's folder
    records = []
    for i, prompt in enumerate(prompts):
        image = images[prompt.image]
        path = str(folder / prompt.image)
        request = SampleRequest(prompt=prompt.caption, mode="i2v", image=path, resolution=cfg.resolution,
                                aspect_ratio=closest_ratio(image["height"], image["width"]), num_frames=cfg.num_frames,
                                fps=cfg.fps, steps=cfg.steps, cfg_scale=cfg.cfg_scale, seed=cfg.seed + i)
        sample = generate(bundle, request)
        given = read_image(path, request.size())[0]  # (H, W, 3): resized to cover and centre-cropped as sampled
        records.append(judge(prompt, sample.frames, request.seed, cfg.checker)
                       | {"first_frame_psnr": first_frame_psnr(given, sample.frames[0])})
    return records


def i2v_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracies of the i2v samples and their first frames' PSNR: mean, minimum, share >= 25 dB."""
    psnrs = [r["first_frame_psnr"] for r in records]
    return accuracy(records) | {"first_frame_psnr": float(np.mean(psnrs)), "first_frame_psnr_min": min(psnrs),
                                "first_frame_psnr_ge_25db": sum(p >= 25 for p in psnrs) / len(psnrs)}


@stage("eval.adherence", config=AdherenceConfig, output=OUTPUT, inputs=adherence_inputs)
def eval_adherence(ctx: StageContext) -> dict[str, float]:
    """Sample held-out prompts with a trained DiT; colour and direction accuracy against chance."""
    cfg: AdherenceConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    out = Path(ctx.out)
    gt = json.loads(_ground_truth(cfg).read_text())
    prompts = draw_prompts(gt, cfg.samples, cfg.seed)
    i2v_asked = i2v_prompts(gt, cfg.i2v_samples, cfg.i2v_speed)  # a corpus without images fails here, not later
    folder = resolve_model(cfg.model, ctx.workspace)
    bundle = load_dit(folder, ctx.workspace, cfg.vae, cfg.weights)
    records, videos = [], []
    for i, prompt in enumerate(prompts):
        request = SampleRequest(prompt=prompt.caption, resolution=cfg.resolution, aspect_ratio=cfg.aspect_ratio,
                                num_frames=cfg.num_frames, fps=cfg.fps, steps=cfg.steps, cfg_scale=cfg.cfg_scale,
                                seed=cfg.seed + i)
        sample = generate(bundle, request)
        records.append(judge(prompt, sample.frames, request.seed, cfg.checker))
        videos.append(sample.frames)
    overall = accuracy(records)
    by_kind = {kind: accuracy([r for r in records if r["kind"] == kind])
               for kind in sorted({r["kind"] for r in records})}
    i2v_records = image_to_video(cfg, bundle, gt, i2v_asked)
    i2v = {"i2v": i2v_scores(i2v_records)} if i2v_records else {}
    report = {"scores": {**overall, "chance": chance_levels(), "by_kind": by_kind, **i2v}, "model": str(folder),
              "model_ref": cfg.model, "vae": str(bundle.vae_dir), "ground_truth": str(_ground_truth(cfg)),
              "settings": {k: getattr(cfg, k) for k in ("steps", "cfg_scale", "resolution", "aspect_ratio",
                                                         "num_frames", "fps", "seed", "weights", "i2v_samples",
                                                         "i2v_speed")},
              "checker": cfg.checker.model_dump(), "records": records, "i2v_records": i2v_records}
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    grid = write_grid(videos, out / GRID, cfg.grid_columns, cfg.upscale, cfg.fps)
    tracker.log_dict(report, REPORT)
    tracker.log_artifact(grid, "samples")
    metrics = {k: float(v) for k, v in overall.items()}
    metrics |= {f"{k}_chance": v for k, v in chance_levels().items()}
    metrics |= {f"i2v_{k}": float(v) for k, v in i2v.get("i2v", {}).items()}
    return metrics | {f"{kind}_{k}": float(v) for kind, acc in by_kind.items() for k, v in acc.items()
                      if k != "samples"}
