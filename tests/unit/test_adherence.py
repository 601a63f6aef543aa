"""The adherence judge on rendered scenes of the synthetic world, the held-out prompts, and the report helpers.
(Its validation on the whole corpus is tests/integration/test_adherence_checker.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from components.data.synth_config import SynthConfig
from components.data.synth_plan import Scene
from components.data.synth_render import SceneRenderer
from components.evaluation.adherence import check_video, direction_of
from components.evaluation.adherence_prompts import draw_prompts, held_out_combos, i2v_prompts, seen_pairs
from components.evaluation.adherence_stage import (
    accuracy, chance_levels, first_frame_psnr, i2v_scores, is_reference, write_grid,
)


def render(colour: str, direction: str | None, background: str = "gray", text: str | None = None,
           speed: str = "fast", size: tuple[int, int] = (96, 64), frames: int = 12, fps: int = 12) -> np.ndarray:
    scene = Scene(colour=colour, shape="circle", direction=direction, speed=speed, background=background,
                  text=text, x0=0.4, y0=0.4, size=0.3, seed=3)
    renderer = SceneRenderer(scene, size[0], size[1], frames / fps, SynthConfig())
    return np.stack([renderer.frame(t / fps) for t in range(frames)])


@pytest.mark.parametrize("colour,direction,background", [
    ("red", "right", "gray"), ("blue", "left", "black"), ("yellow", "up", "sunset"),
    ("white", "down", "noise"), ("orange", "left", "brown"), ("cyan", "up", "ocean"),
])
def test_colour_and_direction_of_rendered_shapes(colour, direction, background):
    verdict = check_video(render(colour, direction, background))
    assert (verdict.colour, verdict.direction) == (colour, direction)
    assert verdict.tracked_frames == 12


def test_burned_in_white_text_does_not_outvote_a_small_moving_shape():
    frames = render("green", "right", "checker", text="BREAKING NEWS", speed="slow")
    verdict = check_video(frames)
    assert (verdict.colour, verdict.direction) == ("green", "right")
    assert "white" not in verdict.votes or verdict.votes["white"] < verdict.votes["green"]


def test_wrap_around_jump_does_not_flip_the_direction():
    # fast shape over 36 frames at 12 fps: 1.35 frame widths, so it leaves the right edge and re-enters on the left
    verdict = check_video(render("magenta", "right", frames=36))
    assert verdict.direction == "right" and verdict.step[0] > 0


def test_a_still_shape_has_no_direction_and_noise_falls_back_to_far_pixels():
    assert check_video(render("red", None)).direction is None
    grey = np.full((4, 16, 16, 3), 110, np.uint8)
    grey[:, 4:8, 4:8] = (150, 60, 60)  # muted red: no vocabulary colour within the radius
    verdict = check_video(grey)
    assert verdict.fallback and verdict.colour == "red" and verdict.direction is None


def test_direction_of_steps_and_bad_input():
    assert [direction_of(s) for s in [(1, 0.5), (-2, 1), (0.1, -3), (0, 2), (0, 0)]] == \
        ["right", "left", "up", "down", None]
    with pytest.raises(ValueError, match=r"expected \(T, H, W, 3\) frames, got \(4, 16, 16\)"):
        check_video(np.zeros((4, 16, 16), np.uint8))


def ground_truth() -> dict:
    shot = lambda c, s, d: {"colour": c, "shape": s, "direction": d}  # noqa: E731
    return {"holdout": [["red", "circle", "left"], ["blue", "square", "up"]],
            "videos": [{"shots": [shot("red", "circle", "right"), shot("green", "star", None)]}],
            "images": [{"colour": "white", "shape": "hexagon"}]}


def test_prompts_are_half_holdout_half_unseen_pairs_in_corpus_wording():
    gt = ground_truth()
    prompts = draw_prompts(gt, 48, seed=0)
    assert [p.kind for p in prompts].count("holdout") == 24
    assert {(p.colour, p.shape, p.direction) for p in prompts if p.kind == "holdout"} == \
        {("red", "circle", "left"), ("blue", "square", "up")}
    unseen = [p for p in prompts if p.kind == "unseen_pair"]
    assert not {(p.colour, p.shape) for p in unseen} & seen_pairs(gt)
    assert len(held_out_combos(gt)["unseen_pair"]) == (8 * 5 - 3) * 4  # 3 pairs seen, 4 directions each
    p = prompts[0]
    assert p.caption.startswith(f"{'an' if p.colour[0] in 'aeiou' else 'a'} {p.colour} {p.shape} moving "
                                f"{p.direction} ")
    assert draw_prompts(gt, 48, seed=0) == prompts and draw_prompts(gt, 48, seed=1) != prompts


def test_i2v_prompts_give_each_image_every_direction_in_turn():
    image = lambda i, c, s, b: {"path": f"images/image_{i}.png", "colour": c, "shape": s, "background": b}  # noqa
    gt = {"images": [image(0, "red", "circle", "gray"), image(1, "orange", "star", "checker")]}
    prompts = i2v_prompts(gt, 8)
    assert [(p.image[-5], p.direction) for p in prompts] == [  # image j on pass k: direction (j + k) % 4
        ("0", "left"), ("1", "right"), ("0", "right"), ("1", "up"), ("0", "up"), ("1", "down"), ("0", "down"),
        ("1", "left")]
    assert [p.direction for p in i2v_prompts({"images": gt["images"][:1]}, 5)] == [
        "left", "right", "up", "down", "left"]  # one image: every direction in turn
    for name in ("images/image_0.png", "images/image_1.png"):  # 4 passes of 2 images: each image, all four
        assert sorted(p.direction for p in prompts if p.image == name) == ["down", "left", "right", "up"]
    assert prompts[0].caption == "a red circle moving left quickly on a gray background"
    assert prompts[1].caption == "an orange star moving right quickly on a checkered background"
    assert {p.kind for p in prompts} == {"i2v"} and {p.speed for p in prompts} == {"fast"}
    assert i2v_prompts(gt, 1, speed="slow")[0].caption.endswith("moving left slowly on a gray background")
    assert i2v_prompts({"images": []}, 0) == []
    with pytest.raises(ValueError, match="3 image-to-video samples asked for.*lists no images"):
        i2v_prompts({"videos": []}, 3)


def test_stage_refuses_i2v_samples_without_images_before_sampling(tmp_path):
    import json

    from components.evaluation.adherence_stage import AdherenceConfig, eval_adherence
    from components.stage import StageContext

    (tmp_path / "ground_truth.json").write_text(json.dumps({k: v for k, v in ground_truth().items() if k != "images"}))
    cfg = AdherenceConfig(model="dit/missing", ground_truth=str(tmp_path / "ground_truth.json"), i2v_samples=2)
    ctx = StageContext(name="eval.adherence", profile="tiny", cfg=cfg, workspace=tmp_path / "ws", out=tmp_path,
                       inputs={}, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(ValueError, match="2 image-to-video samples asked for.*set i2v_samples: 0"):
        eval_adherence(ctx)  # before the model is looked for: no DiT exists here


def test_first_frame_psnr_and_i2v_scores():
    given = np.full((4, 6, 3), 100, np.uint8)
    assert first_frame_psnr(given, given) == 100.0
    assert first_frame_psnr(given, given + 5) == pytest.approx(10 * np.log10(255**2 / 25))  # 34.15 dB
    records = [{"colour": "red", "predicted_colour": "red", "direction": "up", "predicted_direction": "up",
                "first_frame_psnr": p} for p in (30.0, 24.0, 27.0)]
    scores = i2v_scores(records)
    assert scores["samples"] == 3 and scores["direction_accuracy"] == 1.0
    assert scores["first_frame_psnr"] == pytest.approx(27.0) and scores["first_frame_psnr_min"] == 24.0
    assert scores["first_frame_psnr_ge_25db"] == pytest.approx(2 / 3)


def test_accuracy_chance_and_grid():
    records = [{"colour": "red", "predicted_colour": "red", "direction": "up", "predicted_direction": "down"},
               {"colour": "red", "predicted_colour": "blue", "direction": "up", "predicted_direction": "up"},
               {"colour": "red", "predicted_colour": "red", "direction": "up", "predicted_direction": "up"},
               {"colour": "red", "predicted_colour": None, "direction": "up", "predicted_direction": None}]
    assert accuracy(records) == {"samples": 4, "accuracy": 0.25, "colour_accuracy": 0.5, "direction_accuracy": 0.5}
    assert chance_levels() == {"colour": 1 / 8, "direction": 1 / 4, "both": 1 / 32}
    assert [is_reference(r) for r in ("dit/adapt8", "runs:/abc", "reelforge-dit@champion", "reelforge-dit/3",
                                      "0123456789abcdef0123456789abcdef", "/abs/dit")] == \
        [False, True, True, True, True, False]


def test_grid_gif_lays_samples_out_in_rows(tmp_path):
    # frames differ in time (Pillow merges identical consecutive GIF frames)
    videos = [np.stack([np.full((8, 10, 3), 40 * i + 10 * t, np.uint8) for t in range(3)]) for i in range(5)]
    path = write_grid(videos, tmp_path / "grid.gif", columns=2, upscale=2, fps=4)
    with Image.open(path) as gif:
        # 3 rows of 2 clips 10 wide with 2-pixel bars, upscaled 2x
        assert (gif.n_frames, gif.size) == (3, (2 * (2 * 10 + 2), 2 * (3 * 8 + 2 * 2)))
