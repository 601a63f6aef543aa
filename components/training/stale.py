"""Keep a training stage from resuming checkpoints made from other inputs or another recipe.

A retry resumes from the last checkpoint (DESIGN). But when an upstream stage is re-run (a new predecessor export,
a new VAE, a re-curated clip table) and DVC re-runs this one, the checkpoints of the old run are still there and
would be resumed as if nothing changed. The digests of the stage's inputs (and of its recipe, when given) are kept
beside the checkpoints; when they differ, the old checkpoints are moved aside (one `<stage>.stale` folder is kept) and
the run starts from its init.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch.distributed as dist
from pydantic import BaseModel

from components.config import params_hash
from components.hashing import content_hash

log = logging.getLogger(__name__)
INPUTS_FILE = "inputs.json"
# config fields a resumed run may change: where it stops, how it logs, how many processes run it
RESUME_NEUTRAL = {"stop_after", "progress", "log_every", "keep_checkpoints", "launch"}


def recipe_digest(cfg: BaseModel) -> str:
    """sha256 of the config less the fields a resume may change (RESUME_NEUTRAL)."""
    return params_hash(cfg, RESUME_NEUTRAL)


def input_digests(inputs: dict[str, str]) -> dict[str, str]:
    """Content hash of every input (files and folders; remote objects by their listing)."""
    return {name: content_hash(uri) for name, uri in sorted(inputs.items())}


def guard_checkpoints(folder: Path, inputs: dict[str, str], rank: int = 0, recipe: str | None = None) -> bool:
    """Move checkpoints written from other inputs (or another `recipe` digest) aside (rank 0; every rank waits);
    True when it did."""
    folder = Path(folder)
    moved = False
    if rank == 0:
        digests = input_digests(inputs) | ({"recipe": recipe} if recipe else {})
        record = folder / INPUTS_FILE
        saved = json.loads(record.read_text()) if record.exists() else None
        if saved is not None and saved != digests and any(folder.glob("step_*")):
            changed = sorted(k for k in set(saved) | set(digests) if saved.get(k) != digests.get(k))
            stale = folder.with_name(folder.name + ".stale")
            shutil.rmtree(stale, ignore_errors=True)
            os.replace(folder, stale)
            log.warning("inputs %s changed since the checkpoints in %s were written: moved them to %s, starting "
                        "from the init weights", changed, folder, stale)
            moved = True
        folder.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(digests, indent=2) + "\n")
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
    return moved
