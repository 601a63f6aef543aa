"""Held-out prompts of the synthetic world: (colour, shape, direction) combinations the corpus never showed.

Two kinds, read from the corpus' ground_truth.json:
  holdout      the corpus' holdout triples: the synthesiser never draws them (SynthConfig.holdout)
  unseen_pair  a (colour, shape) pair that appears in no shot and no image of the corpus, with a direction
Half the samples go to each kind (all to holdout when the corpus leaves no pair unseen), cycling through its
combinations; speed and background vary by sample. Captions use the corpus' own wording (synth_plan.caption).
i2v_prompts gives image-to-video prompts instead: a corpus image as the first frame, its own colour, shape and
background in the caption, and each direction in turn, so only the direction word says where the shape goes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from components.data.synth_plan import Scene, caption
from components.data.synth_shapes import ADVERBS, BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES

KINDS = ("holdout", "unseen_pair")


@dataclass(frozen=True)
class AdherencePrompt:
    """One prompt to sample and judge: the attributes it asks for and its caption."""

    colour: str
    shape: str
    direction: str
    speed: str
    background: str
    kind: str
    caption: str
    image: str | None = None  # i2v: the first frame, relative to the ground truth's folder

    def as_dict(self) -> dict:
        return asdict(self)


def seen_pairs(gt: dict) -> set[tuple[str, str]]:
    """(colour, shape) of every shot and image in the corpus."""
    pairs = {(s["colour"], s["shape"]) for v in gt["videos"] for s in v["shots"]}
    return pairs | {(i["colour"], i["shape"]) for i in gt.get("images", [])}


def held_out_combos(gt: dict) -> dict[str, list[tuple[str, str, str]]]:
    """kind -> (colour, shape, direction) combinations in a fixed order."""
    holdout = [tuple(c) for c in gt.get("holdout", [])]
    seen = seen_pairs(gt)
    unseen = [(c, s, d) for c in COLOURS for s in SHAPES if (c, s) not in seen for d in DIRECTIONS]
    return {"holdout": holdout, "unseen_pair": unseen}


def draw_prompts(gt: dict, n: int, seed: int = 0) -> list[AdherencePrompt]:
    """n prompts, half holdout and half unseen pairs, each kind cycling through its shuffled combinations."""
    combos = {kind: found for kind, found in held_out_combos(gt).items() if found}
    if not combos:
        raise ValueError("the corpus' ground truth has no holdout combination and leaves no (colour, shape) pair "
                         "unseen: there is nothing held out to test adherence on")
    rng = np.random.default_rng(seed)
    order = {kind: [found[i] for i in rng.permutation(len(found))] for kind, found in combos.items()}
    kinds = list(order)
    backgrounds, speeds = list(BACKGROUNDS), list(ADVERBS)
    prompts = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        colour, shape, direction = order[kind][(i // len(kinds)) % len(order[kind])]
        speed, background = speeds[int(rng.integers(len(speeds)))], backgrounds[int(rng.integers(len(backgrounds)))]
        text = caption(Scene(colour=colour, shape=shape, direction=direction, speed=speed, background=background))
        prompts.append(AdherencePrompt(colour, shape, direction, speed, background, kind, text))
    return prompts


def i2v_prompts(gt: dict, n: int, speed: str = "fast") -> list[AdherencePrompt]:
    """n image-to-video prompts: image i % #images, each image asked for the next direction on each pass."""
    images = gt.get("images", [])
    if n and not images:
        raise ValueError(f"{n} image-to-video samples asked for, but the corpus' ground truth lists no images "
                         "(set i2v_samples: 0)")
    prompts = []
    for i in range(n):
        pass_, index = divmod(i, len(images))
        image = images[index]
        direction = list(DIRECTIONS)[(index + pass_) % len(DIRECTIONS)]  # each pass turns every image one further
        scene = Scene(colour=image["colour"], shape=image["shape"], direction=direction, speed=speed,
                      background=image["background"])
        prompts.append(AdherencePrompt(image["colour"], image["shape"], direction, speed, image["background"], "i2v",
                                       caption(scene), image["path"]))
    return prompts
