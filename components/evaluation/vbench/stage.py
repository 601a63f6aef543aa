"""Stage eval.vbench: VBench's 16 dimensions and Quality / Semantic / Total of a trained DiT or of any videos.

standard  the suite's prompts (the 946-prompt VBench_full_info.json, or the tiny suite), `videos_per_prompt`
          videos each named `{prompt}-{i}.mp4`: sampled with the DiT `model` (into the checkpoint folder, so a
          retry resumes) unless `videos` already holds them; temporal_flickering prompts get
          static_filter.candidates videos, of which RAFT keeps <= 5 static ones per prompt
custom    every video of the `videos` folder with its prompt; the 10 dimensions that need no auxiliary info
Outputs: vbench.json (scores with settings, read by the registry gate as eval.vbench/total), dimensions/*.json
(per-video scores), vbench_chart.png (radar + bars), videos/ (standard mode), logged to MLflow.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from components.evaluation.vbench import report
from components.evaluation.vbench.catalog import CUSTOM_DIMENSIONS, IMPLEMENTED, STATIC_FILTER_WEIGHTS, spec
from components.evaluation.vbench.compute import compute, unavailable
from components.evaluation.vbench.config import EvalVBenchConfig
from components.evaluation.vbench.dimensions_motion import static_filter
from components.evaluation.vbench.hub import ModelHub
from components.evaluation.vbench.prompts import (PromptEntry, VideoItem, custom_videos, load_suite, select,
                                                  suite_videos)
from components.evaluation.vbench.sample import Generator, counts, sample_suite
from components.evaluation.vbench.weights import locate
from components.stage import StageContext, stage
from components.tracking import NoopTracker

OUTPUT = "eval/vbench"
FLICKER = "temporal_flickering"
STATIC_OFF = "off: every video scored (VBench's protocol scores <= 5 RAFT-static videos per prompt)"


def vbench_inputs(cfg: EvalVBenchConfig, ws: Path) -> dict[str, str]:
    """What must exist before launch: the videos folder or the model's weights, and the suite."""
    if cfg.mode == "custom":
        return {"videos": cfg.videos}
    inputs = {"suite": str(cfg.suite_path())}
    if cfg.videos:
        inputs["videos"] = cfg.videos
    else:
        from components.evaluation.adherence_stage import is_reference

        if not is_reference(cfg.model):
            folder = Path(cfg.model) if Path(cfg.model).is_absolute() else ws / cfg.model
            inputs["model"] = str(folder / ("model.safetensors" if cfg.sampling.weights == "model"
                                            else "ema.safetensors"))
    return inputs


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("eval.vbench: device=cuda but CUDA is not available")
    return "cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu"


def dit_generator(cfg: EvalVBenchConfig, ws: Path, device: str) -> Generator:
    """(prompt, i) → frames, fps from the trained DiT, seed = cfg.seed + i."""
    from components.model_source import load_dit, resolve_model
    from components.sampling import SampleRequest, generate

    s = cfg.sampling
    bundle = load_dit(resolve_model(cfg.model, ws), ws, s.vae, s.weights, device)

    def run(prompt: str, index: int):
        request = SampleRequest(prompt=prompt, resolution=s.resolution, aspect_ratio=s.aspect_ratio,
                                num_frames=s.num_frames, fps=s.fps, steps=s.steps, cfg_scale=s.cfg_scale,
                                seed=cfg.seed + index)
        return generate(bundle, request).frames, s.fps

    return run


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (copy across filesystems) every file of src into dst."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and not path.name.startswith("."):
            try:
                os.link(path, dst / path.name)
            except OSError:
                shutil.copy2(path, dst / path.name)


def suite_folder(ctx: StageContext, how_many: dict[str, int], make: Callable[[], Generator]) -> Path:
    """The videos of the suite: `videos` when given, else sampled into the checkpoint folder and linked to out."""
    cfg: EvalVBenchConfig = ctx.cfg
    if cfg.videos:
        return Path(cfg.videos)
    key = hashlib.sha256(json.dumps({"model": cfg.model, "seed": cfg.seed, "sampling": cfg.sampling.model_dump()},
                                    sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(ctx.checkpoint_dir) / "samples" / key  # survives a failed run: a retry samples only what is left
    if how_many:
        sample_suite(how_many, cache, make())
    else:
        cache.mkdir(parents=True, exist_ok=True)
    _link_tree(cache, Path(ctx.out) / "videos")
    return Path(ctx.out) / "videos"


def standard_videos(ctx: StageContext, dims: list[str], hub: ModelHub, make: Callable[[], Generator]
                    ) -> tuple[Callable[[str], list[VideoItem]], dict[str, str], dict[str, Any]]:
    """videos_for(dimension), reasons decided here, and the record of the suite and static filter."""
    cfg: EvalVBenchConfig = ctx.cfg
    flt = cfg.static_filter
    skip: dict[str, str] = {}
    missing = hub.missing((STATIC_FILTER_WEIGHTS,))
    if FLICKER in dims and flt.enabled and missing:
        skip[FLICKER] = f"the standard protocol's static filter needs RAFT: {missing[0]} (or set " \
                        "static_filter.enabled=false to score unfiltered videos)"
    # only prompts of dimensions that can be scored here are sampled: no videos for a missing network
    runnable = [d for d in dims if d not in skip and unavailable(d, hub) is None]
    entries: list[PromptEntry] = select(load_suite(cfg.suite_path()), runnable, cfg.prompts_per_dimension)
    filtering = FLICKER in runnable and flt.enabled
    how_many = counts(entries, cfg.videos_per_prompt, flt.candidates if filtering else None)
    folder = suite_folder(ctx, how_many, make)
    info: dict[str, Any] = {"suite": str(cfg.suite_path()), "prompts": len(entries), "videos_folder": str(folder),
                            "videos_per_prompt": cfg.videos_per_prompt,
                            "prompts_per_dimension": cfg.prompts_per_dimension,
                            "static_filter": STATIC_OFF if not flt.enabled else "not run",
                            "sampling": None if cfg.videos else {**cfg.sampling.model_dump(), "model": cfg.model,
                                                                 "seeds": f"{cfg.seed} + video index"}}
    flicker: list[VideoItem] | None = None
    if filtering:
        candidates = suite_videos(entries, folder, FLICKER, how_many)
        flicker, verdicts = static_filter(hub.get(STATIC_FILTER_WEIGHTS), candidates, flt)
        info["static_filter"] = {**flt.model_dump(), "kept": len(flicker), "tested": len(verdicts),
                                 "verdicts": verdicts, "weights": hub.records((STATIC_FILTER_WEIGHTS,))}
        if not flicker:
            skip[FLICKER] = f"the static filter kept no video: none of the {len(verdicts)} tested is static"

    def videos_for(dim: str) -> list[VideoItem]:
        if dim == FLICKER and flicker is not None:
            return flicker
        return suite_videos(entries, folder, dim, cfg.videos_per_prompt)

    return videos_for, skip, info


@stage("eval.vbench", config=EvalVBenchConfig, output=OUTPUT, inputs=vbench_inputs)
def eval_vbench(ctx: StageContext, generator: Callable[[], Generator] | None = None) -> dict[str, float]:
    """Score VBench dimensions (those implemented and with weights present); Quality/Semantic/Total if complete."""
    cfg: EvalVBenchConfig = ctx.cfg
    tracker = ctx.tracker or NoopTracker()
    out = Path(ctx.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(cfg.device)
    dims = list(cfg.dimensions)
    names = sorted({n for d in dims for n in spec(d).weights} | {STATIC_FILTER_WEIGHTS})
    hub = ModelHub(locate(names, cfg.weights.profile, cfg.weights.store, cfg.weights.paths), device)
    skip: dict[str, str] = {}
    if cfg.mode == "custom":
        items = custom_videos(cfg.videos, cfg.prompt_file)
        skip = {d: f"custom mode supports only {', '.join(CUSTOM_DIMENSIONS)} (this one needs auxiliary info "
                   "from the standard suite)" for d in dims if d not in CUSTOM_DIMENSIONS}
        info: dict[str, Any] = {"videos_folder": cfg.videos, "videos": len(items), "prompt_file": cfg.prompt_file,
                                "static_filter": "not applied (custom mode scores the videos as given)"}
        videos_for: Callable[[str], list[VideoItem]] = lambda dim: items
    else:
        make = generator or (lambda: dit_generator(cfg, ctx.workspace, device))
        videos_for, skip, info = standard_videos(ctx, dims, hub, make)

    outcome = compute(dims, videos_for, hub, cfg.compute, skip)
    if FLICKER in outcome.results:  # the protocol step that chose the videos belongs next to the score
        static = info.get("static_filter")
        outcome.results[FLICKER].settings["static_filter"] = (
            {k: static[k] for k in ("kept", "tested", "keep", "candidates")} if isinstance(static, dict) else static)
    block, agg = report.scores(outcome)
    doc = {"stage": "eval.vbench", "mode": cfg.mode, "device": device, "model": None if cfg.videos else cfg.model,
           "implemented": list(IMPLEMENTED), "computed": list(outcome.results),
           "not_computed": outcome.not_computed, "complete": agg.complete, "inputs": info, "scores": block}
    (out / report.MAIN).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    report.write_dimension_files(outcome, out / "dimensions")
    chart = report.write_chart(block, out / report.CHART)

    tracker.log_artifact(out / report.MAIN, "eval")
    tracker.log_artifact(chart, "eval")
    if outcome.results:
        tracker.log_artifact(out / "dimensions", "eval/dimensions")
    tracker.set_tags({f"reelforge.eval.vbench.{d}": outcome.not_computed.get(d, "computed")[:5000] for d in dims})
    tracker.set_tags({"reelforge.eval.vbench.complete": agg.complete})
    return report.metrics(block)
