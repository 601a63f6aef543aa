"""The synthetic corpus: determinism, holdout, ground truth that matches the decoded files, rendering maths."""
from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from components.data.schema import QUARANTINE_KINDS
from components.data.synth import SynthConfig, corpus_files, synthesize, unlisted_files
from components.data.synth_plan import Scene, Shot, Transition, VideoPlan, caption, plan_corpus
from components.data.synth_render import SceneRenderer, video_frames
from components.data.synth_shapes import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES

# Small enough to write in well under a second; two sizes of one aspect so derived shots find sources.
SMALL = dict(n_videos=5, n_images=2, shots_per_video=(2, 3), shot_seconds=(0.7, 1.2), fps_choices=[8, 12],
             frame_sizes=[(128, 72), (96, 54)], image_sizes=[(96, 64)], fade_fraction=0.5)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    return root, synthesize(root, SynthConfig(seed=3, **SMALL))


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    root, _ = corpus
    again = synthesize(tmp_path / "again", SynthConfig(seed=3, **SMALL))
    first, second = _files(root), _files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
    assert again == json.loads((root / "ground_truth.json").read_text())
    synthesize(tmp_path / "other", SynthConfig(seed=4, **SMALL))
    other = _files(tmp_path / "other")
    changed = [k for k in first if k.startswith("videos/video_") and k.endswith(".mp4") and first[k] != other.get(k)]
    assert len(changed) == SMALL["n_videos"]


def test_ground_truth_frame_counts_equal_decoder(corpus):
    root, gt = corpus
    assert len(gt["videos"]) == SMALL["n_videos"]
    for video in gt["videos"]:
        with av.open(str(root / video["path"])) as container:
            stream = container.streams.video[0]
            decoded = sum(1 for _ in container.decode(stream))
            assert (stream.codec_context.width, stream.codec_context.height) == (video["width"], video["height"])
            assert float(stream.average_rate) == video["fps"]
        assert decoded == video["num_frames"], video["path"]
        shots = video["shots"]
        assert shots[0]["start"] == 0 and shots[-1]["end"] == video["num_frames"]
        assert all(a["end"] == b["start"] for a, b in zip(shots, shots[1:]))
        assert [t["frame"] for t in video["transitions"]] == [s["start"] for s in shots[1:]]
        for t in video["transitions"]:
            assert t["kind"] in ("cut", "fade") and (t["length"] >= 2) == (t["kind"] == "fade")


def test_holdout_combos_never_drawn():
    # hold out every direction of two colour/shape pairs, so a careless draw would hit them often
    holdout = [(c, s, d) for c, s in (("red", "circle"), ("white", "star")) for d in DIRECTIONS]
    videos, _ = plan_corpus(SynthConfig(n_videos=60, holdout=holdout))
    seen = {(s.scene.colour, s.scene.shape, s.scene.direction) for v in videos for s in v.shots}
    assert len(seen) > 50
    assert seen.isdisjoint(holdout)


def test_default_holdout_absent_from_small_corpus(corpus):
    _, gt = corpus
    holdout = {tuple(c) for c in gt["holdout"]}
    assert holdout == {("red", "circle", "left"), ("blue", "square", "up"), ("green", "triangle", "right")}
    shots = [s for v in gt["videos"] for s in v["shots"]]
    assert not {(s["colour"], s["shape"], s["direction"]) for s in shots} & holdout


def test_derived_shots_point_to_a_shot_in_another_video():
    cfg = SynthConfig(n_videos=24)
    videos, _ = plan_corpus(cfg)
    shots = {s.id: (s, v) for v in videos for s in v.shots}
    derived = [(s, v) for s, v in shots.values() if s.kind in ("near_duplicate", "degraded")]
    assert {s.kind for s, _ in derived} == {"near_duplicate", "degraded"}
    for shot, video in derived:
        source_id = shot.duplicate_of or shot.degraded_of
        source, source_video = shots[source_id]
        assert source.kind == "normal" and source_video is not video
        assert source.scene == shot.scene
        assert source_video.width * video.height == source_video.height * video.width  # same aspect
        if shot.kind == "near_duplicate":
            assert shot.duplicate_edit in ("crop", "shift") and shot.degraded_of is None
            # shorter than the original (in seconds), unless the minimum shot length forced it up
            assert shot.length / video.fps <= source.length / source_video.fps or shot.length == cfg.min_shot_frames
        else:
            assert shot.degradation in ("blur", "noise", "overexposed") and shot.duplicate_of is None


def test_every_kind_planted_with_its_flags():
    videos, _ = plan_corpus(SynthConfig())
    shots = [s for v in videos for s in v.shots]
    kinds = {s.kind for s in shots}
    assert kinds == {"normal", "static", "camera", "text", "near_duplicate", "degraded"}
    for s in shots:
        assert (s.scene.camera is not None) == (s.kind == "camera")
        assert (s.scene.text is not None) == (s.kind == "text")
        assert (s.scene.direction is None) == (s.kind == "static")
        if s.kind == "camera":
            assert BACKGROUNDS[s.scene.background][0] == "texture"


def test_captions_and_sidecars(corpus):
    root, gt = corpus
    for video in gt["videos"]:
        joined = " Then ".join(s["caption"] for s in video["shots"])
        assert (root / f"{video['path']}.txt").read_text() == joined + "\n"
    for image in gt["images"]:
        assert (root / f"{image['path']}.txt").read_text() == image["caption"] + "\n"
    scene = Scene("red", "circle", "left", "fast", "gray")
    assert caption(scene) == "a red circle moving left quickly on a gray background"
    scene = Scene("orange", "star", None, None, "checker", camera="pan_left")
    assert caption(scene) == "an orange star standing still on a checkered background, while the camera pans left"


def test_bad_files_listed_and_present(corpus):
    root, gt = corpus
    kinds = {b["kind"] for b in gt["bad_files"]}
    assert kinds == {"empty_file", "not_media", "truncated", "no_frames", "undecodable", "absurd_dimensions"}
    assert kinds <= set(QUARANTINE_KINDS)
    sizes = {b["kind"]: (root / b["path"]).stat().st_size for b in gt["bad_files"]}
    assert sizes["empty_file"] == 0 and sizes["truncated"] > 0


def test_plant_bad_false_writes_only_good_files(tmp_path):
    gt = synthesize(tmp_path, SynthConfig(**{**SMALL, "n_videos": 1, "n_images": 1}, plant_bad=False))
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.suffix in (".mp4", ".png", ".jpg")}
    assert gt["bad_files"] == []
    assert written == {gt["videos"][0]["path"], gt["images"][0]["path"]}


def test_rewriting_a_corpus_removes_only_the_files_the_old_one_listed(tmp_path):
    big = synthesize(tmp_path, SynthConfig(**{**SMALL, "n_videos": 3, "n_images": 2}))
    (tmp_path / "videos" / "mine.mp4").write_bytes(b"not from the generator")  # no ground truth lists it
    small = synthesize(tmp_path, SynthConfig(**{**SMALL, "n_videos": 1, "n_images": 1}, plant_bad=False))
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == corpus_files(small) | {"videos/mine.mp4"}
    assert len(corpus_files(big)) == 3 * 2 + 2 * 2 + 7 + 1  # media + sidecars, planted bad files, ground truth
    assert len(on_disk) == 1 * 2 + 1 * 2 + 1 + 1
    assert unlisted_files(tmp_path, small) == ["videos/mine.mp4"]  # `data synth` warns about it when it skips
    (tmp_path / "ground_truth.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="ground_truth.json: not a synthetic corpus"):
        synthesize(tmp_path, SynthConfig(**SMALL))


def test_shape_moves_by_speed_times_time():
    cfg = SynthConfig()
    scene = Scene("yellow", "square", "right", "slow", "gray", x0=0.3, y0=0.5, size=0.2)
    r = SceneRenderer(scene, 200, 100, 2.0, cfg)
    (x0, y0), (x1, y1) = r.position(0.0), r.position(1.0)
    assert (x1 - x0, y1 - y0) == pytest.approx((cfg.speeds["slow"] * 200, 0.0))
    # the drawn square's centroid follows the same track (within anti-aliasing)
    ys, xs = np.nonzero(np.all(r.frame(1.0) == COLOURS["yellow"], axis=-1))
    assert xs.mean() == pytest.approx(x1, abs=1.0) and ys.mean() == pytest.approx(y1, abs=1.0)


def test_static_scene_identical_and_camera_pan_shifts_background():
    cfg = SynthConfig()
    static = SceneRenderer(Scene("blue", "star", None, None, "noise", seed=5), 96, 64, 1.0, cfg)
    assert np.array_equal(static.frame(0.0), static.frame(0.9))
    # pan_right: the window moves right, so the content drifts left by camera_speed * width px per second
    pan = SceneRenderer(Scene("blue", "star", None, None, "noise", camera="pan_right", seed=5), 100, 60, 1.0, cfg)
    a, b = pan._background(0.0), pan._background(0.5)
    step = int(round(cfg.camera_speed * 0.5 * 100))
    assert step == 10
    assert np.array_equal(a[:, step:], b[:, :-step])
    assert not np.array_equal(a, b)


def test_cross_fade_is_a_linear_blend():
    cfg = SynthConfig()
    gray = Scene("white", "circle", None, None, "gray", x0=0.2, y0=0.2, size=0.1)
    black = Scene("white", "circle", None, None, "black", x0=0.2, y0=0.2, size=0.1)
    video = VideoPlan("v.mp4", 8, 64, 64, [Shot("a", "static", gray, 0, 10), Shot("b", "static", black, 10, 20)],
                      [Transition(10, "fade", 4, "cross")])
    frames = list(video_frames(video, cfg))
    assert len(frames) == 20
    g, k = BACKGROUNDS["gray"][2][0][0], BACKGROUNDS["black"][2][0][0]
    corner = [int(f[-1, -1, 0]) for f in frames]  # far from the shape: background only
    fade = [round(g * (1 - p) + k * p) for p in ((i + 0.5) / 4 for i in range(4))]
    assert corner == [g] * 8 + fade + [k] * 8


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="must be even"):
        SynthConfig(frame_sizes=[(127, 72)])
    with pytest.raises(ValidationError, match="not in the vocabulary"):
        SynthConfig(holdout=[("purple", "circle", "left")])
    with pytest.raises(ValidationError, match="sum to 1"):
        SynthConfig(kind_fractions={"normal": 0.5})
    assert set(SHAPES) >= {"circle", "square", "triangle", "star"}


@pytest.mark.slow
def test_default_corpus_is_fast_and_complete(tmp_path):
    start = time.perf_counter()
    gt = synthesize(tmp_path, SynthConfig())
    assert time.perf_counter() - start < 20.0
    assert (len(gt["videos"]), len(gt["images"]), len(gt["bad_files"])) == (24, 8, 7)
    sizes = {(v["width"], v["height"]) for v in gt["videos"]}
    assert {round(w / h, 2) for w, h in sizes} >= {1.78, 1.0, 0.56}
    assert {v["fps"] for v in gt["videos"]} == {8, 12, 24, 30}


def test_synth_command_skips_a_written_corpus_and_names_files_its_ground_truth_does_not_list(tmp_path):
    from typer.testing import CliRunner

    from components.cli import app

    args = ["data", "synth", "--out", str(tmp_path), "--set", "n_videos=1", "--set", "n_images=1", "--set",
            "plant_bad=false"]
    assert CliRunner().invoke(app, args).exit_code == 0
    (tmp_path / "images" / "old_image.png").write_bytes(b"left by an older corpus")
    again = CliRunner().invoke(app, args)
    said = " ".join(again.output.split())  # rich wraps long lines at the terminal's width
    assert again.exit_code == 0 and "already holds this corpus" in said
    assert "also holds 1 file(s) its ground_truth.json does not list (images/old_image.png)" in said
    assert (tmp_path / "images" / "old_image.png").exists()  # named, never deleted
