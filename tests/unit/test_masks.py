"""UL2-style frame masks: empirical ratios over 10k draws, the frames each kind gives, and the masked mean."""
from dataclasses import asdict

import pytest
import torch

from models.diffusion.masks import (
    MASK_KINDS,
    MASK_PRESETS,
    MaskRatios,
    build_mask,
    generate_masks,
    masked_mean_flat,
    sample_mask_kinds,
)

DRAWS = 10_000


@pytest.mark.parametrize("preset", ["stage1_2", "stage3"])
def test_empirical_kind_ratios_within_one_percent(preset):
    ratios = MASK_PRESETS[preset]
    kinds = sample_mask_kinds(DRAWS, ratios, torch.Generator().manual_seed(0))
    freq = torch.bincount(kinds, minlength=len(MASK_KINDS)).double() / DRAWS
    for i, kind in enumerate(MASK_KINDS):
        assert abs(float(freq[i]) - float(ratios.probs()[i])) < 0.01, kind


@pytest.mark.parametrize("preset,masked", [("stage1_2", 0.20), ("stage3", 0.25)])
def test_share_of_masked_samples_within_one_percent(preset, masked):
    x_mask = generate_masks(DRAWS, 15, MASK_PRESETS[preset], torch.Generator().manual_seed(1))
    assert x_mask.shape == (DRAWS, 15) and x_mask.dtype == torch.bool
    share = float((~x_mask).any(dim=1).double().mean())
    # "random" leaves every frame noised with probability ~1.5% at T = 15, a 0.001 effect.
    assert abs(share - masked) < 0.01
    assert x_mask.any(dim=1).all()  # every sample keeps a frame to generate


def test_preset_values_from_the_recipe():
    s12, s3 = MASK_PRESETS["stage1_2"], MASK_PRESETS["stage3"]
    assert s12.none == pytest.approx(0.80) and s12.random == 0.05 and s12.image_head == 0.05
    assert s3.none == pytest.approx(0.75) and s3.image_head == 0.22 and s3.random == 0.01
    assert max(v for k, v in asdict(s3).items() if k not in ("image_head", "random")) <= 0.005
    assert float(s12.probs().sum()) == pytest.approx(1.0)


def given(kind: str, num_frames: int = 12, seed: int = 0) -> list[int]:
    mask = build_mask(kind, num_frames, torch.Generator().manual_seed(seed))
    return (~mask).nonzero().flatten().tolist()


def test_each_kind_gives_the_documented_frames():
    assert given("none") == []
    assert given("image_head") == [0]
    assert given("image_tail") == [11]
    assert given("image_head_tail") == [0, 11]
    assert len(given("image_random")) == 1
    for seed in range(20):
        head = given("quarter_head", seed=seed)
        assert head == list(range(len(head))) and 1 <= len(head) <= 3  # up to T // 4 = 3 frames
        tail = given("quarter_tail", seed=seed)
        assert tail == list(range(12 - len(tail), 12)) and 1 <= len(tail) <= 3
        run = given("quarter_random", seed=seed)
        assert run == list(range(run[0], run[0] + len(run))) and 1 <= len(run) <= 3
        assert given("interpolate", seed=seed) in (list(range(0, 12, 2)), list(range(1, 12, 2)))
    assert build_mask("image_head", 1, torch.Generator()).tolist() == [True]  # images are never masked


def test_bad_ratios_are_named():
    with pytest.raises(ValueError, match="MaskRatios.image_head must be in"):
        MaskRatios(image_head=1.5)
    with pytest.raises(ValueError, match="sum to 1.100000 > 1"):
        MaskRatios(random=0.6, image_head=0.5)
    with pytest.raises(ValueError, match="unknown mask kind 'middle'"):
        build_mask("middle", 8, torch.Generator())


def test_masked_mean_averages_noised_frames_only():
    x = torch.zeros(2, 3, 4, 2, 2)
    x[:, :, 0] = 10.0  # frame 0 is large
    x[:, :, 1:] = torch.arange(1, 4, dtype=torch.float32)[None, None, :, None, None]  # frames 1..3 = 1, 2, 3
    x_mask = torch.tensor([[False, True, True, True], [True, False, False, True]])
    torch.testing.assert_close(masked_mean_flat(x, x_mask), torch.tensor([2.0, 6.5]))
    torch.testing.assert_close(masked_mean_flat(x), torch.tensor([4.0, 4.0]))
    with pytest.raises(ValueError, match=r"x_mask \(2, 3\) does not match"):
        masked_mean_flat(x, x_mask[:, :3])
