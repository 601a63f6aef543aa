"""Load each VBench network once, on first use, from the located weights; remember what was read.

Weight names map to loaders; two dimensions sharing a network (background_consistency and appearance_style on
CLIP ViT-B/32) share one load. `records` gives the files and sha256 to store next to each score.
"""
from __future__ import annotations

from typing import Any, Callable

from components.evaluation.loaders import WeightFile
from components.evaluation.vbench import loaders
from components.evaluation.vbench.loaders_amt import load_amt
from components.evaluation.vbench.loaders_grit import load_grit
from components.evaluation.vbench.loaders_musiq import load_musiq
from components.evaluation.vbench.loaders_tag2text import load_bert_vocab, load_tag2text, load_tag_list
from components.evaluation.vbench.weights import Located


def _clip(path: str) -> tuple[Any, WeightFile]:
    bundle = loaders.load_clip(path)
    return bundle, bundle.record


LOADERS: dict[str, Callable[[str], tuple[Any, WeightFile]]] = {
    "dino-vitb16": loaders.load_dino,
    "clip-vit-b-32-hf": _clip,
    "clip-vit-l-14-hf": _clip,
    "laion-aesthetic-linear": loaders.load_aesthetic_head,
    "raft-things": loaders.load_raft_model,
    "amt-s": load_amt,
    "umt-l16": loaders.load_umt,
    "k400-labels": loaders.load_labels,
    "viclip": loaders.load_viclip,
    "grit-b": load_grit,
    "musiq-spaq": load_musiq,
    "tag2text": load_tag2text,
    "bert-base-uncased-vocab": load_bert_vocab,
    "tag2text-tag-list": load_tag_list,
}


class ModelHub:
    """Networks by weight name, loaded lazily from `located` and moved to `device`."""

    def __init__(self, located: dict[str, Located], device: str = "cpu",
                 loaders_by_name: dict[str, Callable[[str], tuple[Any, WeightFile]]] | None = None):
        self.located, self.device = located, device
        self.loaders = loaders_by_name or LOADERS
        self._models: dict[str, Any] = {}
        self._records: dict[str, WeightFile] = {}

    def missing(self, names: tuple[str, ...]) -> list[str]:
        """Reasons, one per named weight that is not in the store."""
        return [self.located[n].reason if n in self.located else f"{n}: not located" for n in names
                if n not in self.located or not self.located[n].present]

    def get(self, name: str) -> Any:
        """The network of a weight name (loaded on first call)."""
        if name not in self._models:
            where = self.located.get(name)
            if where is None or not where.present:
                raise FileNotFoundError(where.reason if where else f"{name}: not located")
            model, record = self.loaders[name](where.path)
            inner = getattr(model, "model", model)
            if hasattr(inner, "to"):
                inner.to(self.device)
            self._models[name], self._records[name] = model, record
        return self._models[name]

    def records(self, names: tuple[str, ...]) -> list[dict[str, str]]:
        """{name, file, sha256} of the named weights that were loaded."""
        return [{"name": n, **self._records[n].as_dict()} for n in names if n in self._records]
