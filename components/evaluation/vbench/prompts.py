"""Prompt suites and the videos that answer them.

A suite is VBench's full-info JSON (VBench_full_info.json: a list of {"prompt_en", "dimension": [...],
"auxiliary_info": {dimension: {...}}}) or a plain prompt list (.txt, one per line, e.g. all_dimension.txt: each
prompt then counts for the dimensions that need no auxiliary info). Standard mode names videos
`{prompt}-{i}.mp4`, i = 0..4. Custom mode takes any folder of videos; a video's prompt comes from a prompt file
({file name: prompt}) or its name (VBench get_prompt_from_filename: `prompt-3.mp4` and `prompt.mp4` → prompt).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.evaluation.vbench.aggregate import DIMENSIONS
from components.evaluation.vbench.catalog import CUSTOM_DIMENSIONS, spec

VIDEO_SUFFIXES = (".mp4", ".gif", ".avi", ".mov", ".mkv", ".webm")
MAX_NAME_BYTES = 255  # a file name longer than this cannot be written on common filesystems


@dataclass(frozen=True)
class PromptEntry:
    """One suite prompt, the dimensions it serves, and their auxiliary info (style text, colour, object …)."""

    prompt: str
    dimensions: tuple[str, ...]
    aux: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt_en": self.prompt, "dimension": list(self.dimensions)}
        if self.aux:
            out["auxiliary_info"] = self.aux
        return out


@dataclass(frozen=True)
class VideoItem:
    """A video to score, its prompt, and the auxiliary info of the dimension being scored."""

    path: str
    prompt: str
    aux: Any = None


def load_suite(path: str | Path) -> list[PromptEntry]:
    """Entries of a full-info JSON or a .txt prompt list; errors name the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt suite {path} not found (the standard suite is VBench_full_info.json)")
    if path.suffix == ".txt":
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [PromptEntry(p, CUSTOM_DIMENSIONS) for p in prompts]
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, list):
        raise ValueError(f"{path}: expected a list of prompt entries (VBench full-info format)")
    entries = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict) or "prompt_en" not in item or "dimension" not in item:
            raise ValueError(f"{path}: entry {i} needs 'prompt_en' and 'dimension', got {item!r:.120}")
        dims = tuple(item["dimension"])
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"{path}: entry {i} ({item['prompt_en']!r}): unknown dimension(s) {unknown}")
        entries.append(PromptEntry(item["prompt_en"], dims, dict(item.get("auxiliary_info") or {})))
    return entries


def write_suite(entries: list[PromptEntry], path: str | Path) -> Path:
    """Entries as full-info JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([e.as_dict() for e in entries], indent=2) + "\n", encoding="utf-8")
    return path


def select(entries: list[PromptEntry], dimensions: list[str], per_dimension: int | None) -> list[PromptEntry]:
    """Entries serving any of `dimensions`; with per_dimension, only the first that many per dimension."""
    keep: set[int] = set()
    for dim in dimensions:
        serving = [i for i, e in enumerate(entries) if dim in e.dimensions]
        keep.update(serving if per_dimension is None else serving[:per_dimension])
    return [e for i, e in enumerate(entries) if i in keep]


def video_name(prompt: str, index: int, suffix: str = ".mp4") -> str:
    """`{prompt}-{index}.mp4`, the standard suite's file name; refuses names no filesystem can hold."""
    name = f"{prompt}-{index}{suffix}"
    if "/" in prompt or "\0" in prompt:
        raise ValueError(f"prompt {prompt!r} contains '/' or NUL: it cannot name a video file")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"prompt {prompt[:60]!r}…: file name of {len(name.encode())} bytes exceeds {MAX_NAME_BYTES}")
    return name


def prompt_from_filename(path: str | Path) -> str:
    """VBench's rule: the file stem without a trailing -<number>."""
    return re.sub(r"-\d+$", "", Path(path).stem)


def suite_videos(entries: list[PromptEntry], folder: str | Path, dimension: str, count: int | dict[str, int]
                 ) -> list[VideoItem]:
    """The videos of `dimension` in a suite folder: `{prompt}-{i}.mp4`, i < count (or count[prompt])."""
    folder = Path(folder)
    aux_key = spec(dimension).aux
    items, missing = [], []
    for entry in entries:
        if dimension not in entry.dimensions:
            continue
        n = count.get(entry.prompt, 0) if isinstance(count, dict) else count
        aux = entry.aux.get(aux_key) if aux_key else None
        for i in range(n):
            path = folder / video_name(entry.prompt, i)
            if path.is_file():
                items.append(VideoItem(str(path), entry.prompt, aux))
            else:
                missing.append(path)
    if missing:
        raise FileNotFoundError(f"{dimension}: {len(missing)} suite video(s) missing in {folder}, e.g. "
                                f"{', '.join(p.name for p in missing[:3])}")
    return items


def custom_videos(folder: str | Path, prompt_file: str | Path | None = None) -> list[VideoItem]:
    """Every video in a folder (sorted by name) with its prompt from `prompt_file` or its file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"custom videos folder {folder} not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not paths:
        raise ValueError(f"{folder}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    prompts: dict[str, str] = {}
    if prompt_file is not None:
        prompts = json.loads(Path(prompt_file).read_text(encoding="utf-8"))
        if not isinstance(prompts, dict):
            raise ValueError(f"{prompt_file}: expected {{video file name: prompt}}")
        unknown = sorted(set(prompts) - {p.name for p in paths})
        if unknown:
            raise ValueError(f"{prompt_file}: names videos not in {folder}: {unknown[:3]}")
    return [VideoItem(str(p), prompts.get(p.name, prompt_from_filename(p))) for p in paths]


def tiny_suite() -> list[PromptEntry]:
    """The tiny profile's suite: captions of the synthetic world (synth_plan.caption), tagged like VBench's.

    No humans in that world, so no human_action prompt: that dimension is reported as having no prompt.
    """
    from components.data.synth_plan import Scene, caption

    def cap(colour: str, shape: str, direction: str | None, background: str, camera: str | None = None) -> str:
        return caption(Scene(colour, shape, direction, "slow" if direction else None, background, camera))

    moving = [cap("red", "circle", "left", "gray"), cap("blue", "square", "up", "navy")]
    quality = ("subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree",
               "aesthetic_quality", "imaging_quality", "overall_consistency")
    return [
        *[PromptEntry(p, quality) for p in moving],
        PromptEntry(cap("yellow", "star", None, "black"), ("temporal_flickering",)),
        PromptEntry(cap("white", "hexagon", None, "brown"), ("temporal_flickering",)),
        PromptEntry(cap("green", "triangle", None, "gray"), ("object_class", "color"),
                    {"object_class": {"object": "triangle"}, "color": {"color": "green"}}),
        PromptEntry("a red circle and a blue square on a gray background", ("multiple_objects",),
                    {"multiple_objects": {"object": "circle and square"}}),
        PromptEntry("a red circle on the left of a blue square on a gray background", ("spatial_relationship",),
                    {"spatial_relationship": {"spatial_relationship": {
                        "object_a": "circle", "object_b": "square", "relationship": "on the left of"}}}),
        PromptEntry("a checkered background", ("scene",), {"scene": {"scene": {"scene": "checkered background"}}}),
        PromptEntry(cap("cyan", "circle", None, "checker"), ("appearance_style",),
                    {"appearance_style": {"appearance_style": "a checkered background"}}),
        PromptEntry(cap("orange", "square", None, "noise", "pan_left"), ("temporal_style", "overall_consistency")),
    ]
