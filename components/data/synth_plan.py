"""Plan the synthetic corpus: which video holds which shots, their content, kinds and transitions.

The plan is the ground truth; rendering (synth_render) turns it into frames. All randomness comes from one
generator seeded by the config, drawn in a fixed order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from components.data.synth_config import DERIVED_KINDS, SHOT_KINDS, SynthConfig
from components.data.synth_shapes import (ADVERBS, BACKGROUNDS, CAMERA_PHRASES, CAMERAS, COLOURS, DEGRADATIONS,
                                          DIRECTIONS, OVERLAY_TEXTS, SHAPES, CAMERA_TEXTURES)

_MAX_DRAWS = 1000  # redraws allowed to dodge holdout combos before the config is declared infeasible


@dataclass
class Scene:
    """What a shot shows, independent of frame size and fps (positions and sizes are fractions)."""

    colour: str
    shape: str
    direction: str | None  # None: the shape stands still
    speed: str | None
    background: str
    camera: str | None = None  # pan_left, pan_right, tilt_up, tilt_down
    text: str | None = None  # burned-in overlay text
    x0: float = 0.5  # start centre, fraction of the width
    y0: float = 0.5
    size: float = 0.3  # fraction of the short side
    seed: int = 0  # texture and noise seed


@dataclass
class Shot:
    """One shot of a video: frames [start, end) showing `scene` from scene time t0 (seconds)."""

    id: str
    kind: str
    scene: Scene
    start: int = 0
    end: int = 0
    t0: float = 0.0
    duplicate_of: str | None = None
    degraded_of: str | None = None
    degradation: str | None = None
    duplicate_edit: str | None = None  # crop | shift (near-duplicates only)

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class Transition:
    """The boundary `frame` between two shots; a fade blends `length` frames starting at frame - length // 2."""

    frame: int
    kind: str  # cut | fade
    length: int = 0
    style: str | None = None  # cross | black (fades only)

    @property
    def first(self) -> int:
        return self.frame - self.length // 2


@dataclass
class VideoPlan:
    path: str
    fps: int
    width: int
    height: int
    shots: list[Shot] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.shots[-1].end if self.shots else 0


@dataclass
class ImagePlan:
    path: str
    width: int
    height: int
    scene: Scene


def article(word: str) -> str:
    """'an' before a vowel sound ('an orange circle'), else 'a'."""
    return "an" if word[0] in "aeiou" else "a"


def caption(scene: Scene) -> str:
    """The sentence describing a scene, e.g. 'a red circle moving left quickly on a gray background'."""
    what = f"{article(scene.colour)} {scene.colour} {scene.shape}"
    where = BACKGROUNDS[scene.background][1]
    if scene.direction is None:
        text = f"{what} standing still on {where}"
    else:
        text = f"{what} moving {scene.direction} {ADVERBS[scene.speed]} on {where}"
    if scene.camera:
        text += f", while the camera {CAMERA_PHRASES[scene.camera]}"
    return text


def _pick(rng: np.random.Generator, options) -> object:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _draw_scene(rng: np.random.Generator, cfg: SynthConfig, kind: str) -> Scene:
    """A fresh scene for a base shot kind, never a holdout (colour, shape, direction)."""
    holdout = {tuple(c) for c in cfg.holdout}
    for _ in range(_MAX_DRAWS):
        colour, shape, direction = _pick(rng, COLOURS), _pick(rng, SHAPES), _pick(rng, DIRECTIONS)
        if (colour, shape, direction) not in holdout:
            break
    else:
        raise ValueError(f"holdout {cfg.holdout} leaves no (colour, shape, direction) to draw")
    static = kind == "static"
    return Scene(
        colour=colour,
        shape=shape,
        direction=None if static else direction,
        speed=None if static else _pick(rng, ("slow", "fast")),
        background=_pick(rng, CAMERA_TEXTURES if kind == "camera" else BACKGROUNDS),
        camera=_pick(rng, CAMERAS) if kind == "camera" else None,
        text=_pick(rng, OVERLAY_TEXTS) if kind == "text" else None,
        x0=float(rng.uniform(0.25, 0.75)),
        y0=float(rng.uniform(0.25, 0.75)),
        size=float(rng.uniform(*cfg.shape_size)),
        seed=int(rng.integers(2**31)),
    )


def _kind_sequence(rng: np.random.Generator, cfg: SynthConfig, slots: list[tuple[int, int]]) -> list[str]:
    """Shot kinds for every (video, shot) slot in the proportions of cfg.kind_fractions.

    Derived kinds copy a shot of an earlier video, so they only go to slots outside the first video.
    """
    total = len(slots)
    counts = {k: int(np.floor(cfg.kind_fractions.get(k, 0.0) * total)) for k in SHOT_KINDS}
    later = [i for i, (video, _) in enumerate(slots) if video > 0]
    n_derived = min(len(later), sum(counts[k] for k in DERIVED_KINDS))
    derived_at = rng.permutation(later)[:n_derived].tolist()
    derived_kinds = [k for k in DERIVED_KINDS for _ in range(counts[k])][:n_derived]
    base = [k for k in SHOT_KINDS if k not in DERIVED_KINDS for _ in range(counts[k])]
    base += ["normal"] * (total - n_derived - len(base))
    base = [base[i] for i in rng.permutation(len(base))]
    kinds: list[str] = [""] * total
    for i, kind in zip(derived_at, derived_kinds):
        kinds[i] = kind
    rest = iter(base)
    return [kind or next(rest) for kind in kinds]


def _frames(seconds: float, fps: int, cfg: SynthConfig) -> int:
    return max(cfg.min_shot_frames, int(round(seconds * fps)))


def _derive(rng: np.random.Generator, cfg: SynthConfig, shot: Shot, video: VideoPlan,
            videos: list[VideoPlan], used: set[tuple[str, str]]) -> int:
    """Turn `shot` into a copy of a normal shot of an earlier video with the same aspect; returns its length.

    Without such a source the shot stays a fresh normal shot.
    """
    index = videos.index(video)
    sources = [(s, v) for v in videos[:index] for s in v.shots
               if s.kind == "normal" and v.width * video.height == v.height * video.width]
    fresh = [(s, v) for s, v in sources if (shot.kind, s.id) not in used]
    if not sources:
        shot.kind, shot.scene = "normal", _draw_scene(rng, cfg, "normal")
        return _frames(rng.uniform(*cfg.shot_seconds), video.fps, cfg)
    source, source_video = _pick(rng, fresh or sources)
    used.add((shot.kind, source.id))
    shot.scene = source.scene
    seconds = source.length / source_video.fps
    if shot.kind == "near_duplicate":
        shot.duplicate_of = source.id
        shot.duplicate_edit = _pick(rng, ("crop", "shift"))
        length = _frames(seconds * rng.uniform(*cfg.duplicate_length), video.fps, cfg)
        shot.t0 = float(rng.uniform(0.0, max(0.0, seconds - length / video.fps)))
        return length
    shot.degraded_of = source.id
    shot.degradation = _pick(rng, DEGRADATIONS)
    return _frames(seconds, video.fps, cfg)


def _transitions(rng: np.random.Generator, cfg: SynthConfig, video: VideoPlan) -> list[Transition]:
    out = []
    for before, after in zip(video.shots, video.shots[1:]):
        if rng.random() < cfg.fade_fraction:
            # a fade eats into both shots; keep most of each shot clean
            length = min(max(2, int(round(cfg.fade_seconds * video.fps))), before.length // 2, after.length // 2)
            out.append(Transition(after.start, "fade", length, _pick(rng, ("cross", "black"))))
        else:
            out.append(Transition(after.start, "cut"))
    return out


def plan_corpus(cfg: SynthConfig) -> tuple[list[VideoPlan], list[ImagePlan]]:
    """The whole corpus: video and image plans, in file-name order."""
    rng = np.random.default_rng(cfg.seed)
    videos = []
    for v in range(cfg.n_videos):
        width, height = _pick(rng, cfg.frame_sizes)
        video = VideoPlan(f"videos/video_{v:03d}.mp4", int(_pick(rng, cfg.fps_choices)), int(width), int(height))
        n_shots = int(rng.integers(cfg.shots_per_video[0], cfg.shots_per_video[1] + 1))
        video.shots = [Shot(id=f"video_{v:03d}_s{j}", kind="", scene=None) for j in range(n_shots)]
        videos.append(video)
    slots = [(v, j) for v, video in enumerate(videos) for j in range(len(video.shots))]
    for (v, j), kind in zip(slots, _kind_sequence(rng, cfg, slots)):
        videos[v].shots[j].kind = kind
    # base shots first so every derived shot finds its source's length
    lengths: dict[str, int] = {}
    for video in videos:
        for shot in video.shots:
            if shot.kind not in DERIVED_KINDS:
                shot.scene = _draw_scene(rng, cfg, shot.kind)
                lengths[shot.id] = _frames(rng.uniform(*cfg.shot_seconds), video.fps, cfg)
                shot.end = lengths[shot.id]  # provisional, so sources know their length
    used: set[tuple[str, str]] = set()
    for video in videos:
        for shot in video.shots:
            if shot.kind in DERIVED_KINDS:
                lengths[shot.id] = _derive(rng, cfg, shot, video, videos, used)
        start = 0
        for shot in video.shots:
            shot.start, shot.end = start, start + lengths[shot.id]
            start = shot.end
        video.transitions = _transitions(rng, cfg, video)
    images = []
    for i in range(cfg.n_images):
        width, height = _pick(rng, cfg.image_sizes)
        ext = "jpg" if rng.random() < cfg.image_jpeg_fraction else "png"
        images.append(ImagePlan(f"images/image_{i:03d}.{ext}", int(width), int(height),
                                _draw_scene(rng, cfg, "static")))
    return videos, images


def shot_record(shot: Shot) -> dict:
    """A shot as it appears in ground_truth.json."""
    s = shot.scene
    return {
        "id": shot.id, "start": shot.start, "end": shot.end, "caption": caption(s),
        "colour": s.colour, "shape": s.shape, "direction": s.direction, "speed": s.speed,
        "background": s.background, "kind": shot.kind, "camera": s.camera, "has_text": s.text is not None,
        "overlay_text": s.text, "duplicate_of": shot.duplicate_of, "duplicate_edit": shot.duplicate_edit,
        "degraded_of": shot.degraded_of, "degradation": shot.degradation,
    }


def video_caption(video: VideoPlan) -> str:
    """A long video's caption: its shots' captions joined with ' Then '."""
    return " Then ".join(caption(shot.scene) for shot in video.shots)


def vocabulary() -> dict[str, list[str]]:
    return {
        "colours": list(COLOURS), "shapes": list(SHAPES), "directions": list(DIRECTIONS),
        "speeds": list(ADVERBS), "backgrounds": list(BACKGROUNDS), "cameras": list(CAMERAS),
        "kinds": list(SHOT_KINDS), "degradations": list(DEGRADATIONS), "overlay_texts": list(OVERLAY_TEXTS),
    }
