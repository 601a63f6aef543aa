"""The synthetic raw corpus with ground truth: moving-shape videos and images, planted defects, holdout combos.

Layout written by `synthesize(out_dir, cfg)`:
  videos/*.mp4 (H.264 yuv420p) and images/*.png|*.jpg, each with a caption sidecar `<file>.txt`;
  planted bad files (plain names) listed under "bad_files"; ground_truth.json describing everything.
Writing over an earlier corpus removes the files it listed that this one does not write (a changed config must
not leave old clips for ingest to pick up); files no ground truth lists are never touched.
Ground truth frames: shot [start, end) in decoded frame indices; a fade at boundary `frame` blends `length`
frames starting at frame - length // 2. Camera pan_left means the camera turns left (content drifts right).
"""
from __future__ import annotations

import json
from pathlib import Path

from components.data.synth_config import DERIVED_KINDS, SHOT_KINDS, SynthConfig
from components.data.synth_media import encode_video, plant_bad_files, write_image
from components.data.synth_plan import (ImagePlan, VideoPlan, article, plan_corpus, shot_record, video_caption,
                                        vocabulary)
from components.data.synth_render import image_pixels, video_frames
from components.data.synth_shapes import BACKGROUNDS

__all__ = ["SynthConfig", "synthesize", "corpus_files", "unlisted_files", "SHOT_KINDS", "DERIVED_KINDS"]
GROUND_TRUTH = "ground_truth.json"


def _video_record(video: VideoPlan) -> dict:
    return {
        "path": video.path, "fps": video.fps, "num_frames": video.num_frames,
        "width": video.width, "height": video.height, "caption": video_caption(video),
        "shots": [shot_record(shot) for shot in video.shots],
        "transitions": [{"frame": t.frame, "kind": t.kind, "length": t.length, "style": t.style}
                        for t in video.transitions],
    }


def _image_record(image: ImagePlan) -> dict:
    s = image.scene
    return {
        "path": image.path, "width": image.width, "height": image.height,
        "caption": f"{article(s.colour)} {s.colour} {s.shape} on {BACKGROUNDS[s.background][1]}",
        "colour": s.colour, "shape": s.shape, "background": s.background,
    }


def synthesize(out_dir: Path, cfg: SynthConfig) -> dict:
    """Write the corpus into out_dir and return its ground truth (also out_dir/ground_truth.json)."""
    out_dir = Path(out_dir)
    previous = _previous_files(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    videos, images = plan_corpus(cfg)
    gt = {
        "seed": cfg.seed, "config": cfg.model_dump(mode="json"), "vocabulary": vocabulary(),
        "holdout": [list(c) for c in cfg.holdout], "videos": [], "images": [], "bad_files": [],
    }
    for video in videos:
        record = _video_record(video)
        written = encode_video(out_dir / video.path, video_frames(video, cfg), video.fps, video.width,
                               video.height, cfg)
        if written != video.num_frames:  # the renderer and the plan disagree: a bug, not bad input
            raise RuntimeError(f"{video.path}: wrote {written} frames, planned {video.num_frames}")
        (out_dir / f"{video.path}.txt").write_text(record["caption"] + "\n")
        gt["videos"].append(record)
    for image in images:
        record = _image_record(image)
        write_image(out_dir / image.path, image_pixels(image, cfg), cfg)
        (out_dir / f"{image.path}.txt").write_text(record["caption"] + "\n")
        gt["images"].append(record)
    if cfg.plant_bad:
        gt["bad_files"] = plant_bad_files(out_dir, cfg)
    (out_dir / GROUND_TRUTH).write_text(json.dumps(gt, indent=2) + "\n")
    for stale in sorted(previous - corpus_files(gt)):
        (out_dir / stale).unlink(missing_ok=True)
    return gt


def corpus_files(gt: dict) -> set[str]:
    """Every file a corpus wrote, relative to its folder: media, caption sidecars, planted bad files, ground truth."""
    media = [record["path"] for record in gt.get("videos", []) + gt.get("images", [])]
    return {*media, *(f"{path}.txt" for path in media), *(bad["path"] for bad in gt.get("bad_files", [])),
            GROUND_TRUTH}


def unlisted_files(out_dir: Path, gt: dict) -> list[str]:
    """Files under out_dir's videos/ and images/ that the corpus's ground truth does not list: ingest reads them too."""
    listed = corpus_files(gt)
    found = (p.relative_to(out_dir).as_posix() for folder in ("videos", "images") for p in (out_dir / folder).rglob("*")
             if p.is_file())
    return sorted(path for path in found if path not in listed)


def _previous_files(out_dir: Path) -> set[str]:
    """The files an earlier corpus in out_dir listed: none without a ground truth, an error for an unreadable one."""
    truth = out_dir / GROUND_TRUTH
    if not truth.exists():
        return set()
    try:
        listed = corpus_files(json.loads(truth.read_text()))
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as err:
        raise ValueError(f"{truth}: not a synthetic corpus's ground truth ({err}); "
                         "remove it or write elsewhere") from None
    root = out_dir.resolve()
    return {path for path in listed if root in (out_dir / path).resolve().parents}  # never outside out_dir
