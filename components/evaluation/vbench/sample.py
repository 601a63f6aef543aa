"""Sample a prompt suite into `{prompt}-{i}.mp4` files with any generator (a trained DiT in the stage).

The generator is a function (prompt, index) → ((T, H, W, 3) uint8 frames, fps); the stage builds it from
components.sampling with seed = config seed + index, so video i of every prompt shares its noise seed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from components import media
from components.evaluation.vbench.prompts import PromptEntry, video_name

Generator = Callable[[str, int], tuple[np.ndarray, float]]


def counts(entries: list[PromptEntry], videos_per_prompt: int, flicker_candidates: int | None) -> dict[str, int]:
    """Videos to sample per prompt: flickering prompts get the static filter's candidates when it runs."""
    out: dict[str, int] = {}
    for entry in entries:
        n = videos_per_prompt
        if flicker_candidates is not None and "temporal_flickering" in entry.dimensions:
            n = max(n, flicker_candidates)
        out[entry.prompt] = max(out.get(entry.prompt, 0), n)
    return out


def sample_suite(how_many: dict[str, int], folder: Path, generate: Generator,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write every `{prompt}-{i}.mp4` (files already there are kept: a retried stage resumes)."""
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(p, i) for p, n in how_many.items() for i in range(n)]
    paths = []
    for k, (prompt, i) in enumerate(todo):
        path = folder / video_name(prompt, i)
        if not path.is_file():
            frames, fps = generate(prompt, i)
            tmp = path.with_name(f".{path.stem}.partial.mp4")
            media.write_mp4(frames, tmp, fps)
            tmp.replace(path)  # a killed run leaves no half-written video behind under the final name
        paths.append(path)
        if progress:
            progress(k + 1, len(todo))
    return paths
