"""Noise shared across frames (diffusion.shared_noise): unit variance, the asked frame correlation, i.i.d. at 0."""
import pytest
import torch
from pydantic import ValidationError

from components.dit.config import DiffusionConfig
from components.dit.objective import Objective
from models.diffusion.rectified_flow import RectifiedFlow, RectifiedFlowConfig, frame_noise


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_zero_share_is_plain_randn_draw_for_draw():
    shape = (2, 4, 5, 3, 3)
    assert torch.equal(frame_noise(shape, 0.0, gen(3)), torch.randn(shape, generator=gen(3)))


def test_images_and_single_frames_stay_iid():
    for shape in [(2, 4, 6, 6), (2, 4, 1, 6, 6)]:
        assert torch.equal(frame_noise(shape, 0.7, gen(1)), torch.randn(shape, generator=gen(1)))


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_shared_noise_has_unit_variance_and_the_asked_frame_correlation(share):
    noise = frame_noise((64, 4, 5, 16, 16), share, gen(0))  # 327,680 values
    assert abs(float(noise.mean())) < 0.01
    assert abs(float(noise.var()) - 1.0) < 0.01
    a, b = noise[:, :, 0].flatten(), noise[:, :, 3].flatten()
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert abs(corr - share) < 0.02
    # different samples and channels stay independent
    c = noise[:, 1:, 0].flatten()
    assert abs(float(torch.corrcoef(torch.stack([noise[:, :-1, 0].flatten(), c]))[0, 1])) < 0.02


def test_share_out_of_range_is_refused():
    with pytest.raises(ValueError, match="shared must be in"):
        frame_noise((1, 4, 5, 2, 2), 1.0)
    with pytest.raises(ValidationError):
        DiffusionConfig(kind="rflow", shared_noise=1.0)
    with pytest.raises(ValidationError, match="rectified flow only"):
        DiffusionConfig(kind="ddpm", shared_noise=0.5)


def test_training_loss_and_objective_draw_the_configured_noise():
    """The training loss noises with the shared prior; Objective.noise (sampling, validation) draws the same."""
    x0 = torch.zeros(2, 4, 5, 3, 3)
    seen = {}

    def model(x_t, timestep):
        seen["x_t"] = x_t
        return torch.zeros_like(x_t)

    flow = RectifiedFlow(RectifiedFlowConfig(shared_noise=0.6))
    g = gen(5)
    t = flow.sample_t(2, generator=g)
    state = g.get_state()
    flow.training_losses(model, x0, t=t, generator=g)
    g.set_state(state)
    expected = frame_noise(x0.shape, 0.6, g) * t.view(-1, 1, 1, 1, 1)  # x0 = 0: x_t = t·noise
    torch.testing.assert_close(seen["x_t"], expected)

    objective = Objective(DiffusionConfig(kind="rflow", shared_noise=0.6), learn_sigma=True)
    torch.testing.assert_close(objective.noise((2, 4, 5, 3, 3), gen(9)), frame_noise((2, 4, 5, 3, 3), 0.6, gen(9)))
    plain = Objective(DiffusionConfig(kind="rflow"), learn_sigma=True)
    assert torch.equal(plain.noise((2, 4, 5, 3, 3), gen(9)), torch.randn((2, 4, 5, 3, 3), generator=gen(9)))
