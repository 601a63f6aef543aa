"""The motion term of the rectified-flow loss: what it charges, over which frames, and that 0 changes nothing."""
import pytest
import torch
from pydantic import ValidationError

from components.dit.config import DiffusionConfig
from components.dit.objective import Objective
from models.diffusion.rectified_flow import RectifiedFlow, RectifiedFlowConfig, motion_loss, velocity_loss


def video(seed: int, shape=(2, 4, 5, 3, 3)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_an_error_shared_by_all_frames_costs_nothing_and_a_frame_to_frame_one_does():
    x0, eps = video(0), video(1)
    target = x0 - eps
    shared = target + video(2, (2, 4, 1, 3, 3))  # the same error in every frame
    assert float(motion_loss(shared, x0, eps).abs().max()) < 1e-6
    assert float(velocity_loss(shared, x0, eps).min()) > 0.5  # the plain MSE charges it
    # Alternating ±1 error: every frame-to-frame change is ±2, so the mean of its square is 4 (MSE: 1).
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]).view(1, 1, 5, 1, 1)
    torch.testing.assert_close(motion_loss(target + sign, x0, eps), torch.full((2,), 4.0))
    torch.testing.assert_close(velocity_loss(target + sign, x0, eps), torch.full((2,), 1.0))


def test_only_pairs_of_noised_frames_count_and_images_give_zero():
    x0, eps = video(0), video(1)
    pred = video(2)
    x_mask = torch.tensor([[False, True, True, False, True], [True, True, True, True, True]])
    changed = pred.clone()
    changed[0, :, 0] += 5.0  # given frame: its pair (0, 1) is left out
    changed[0, :, 4] += 5.0  # noised, but its only neighbour (frame 3) is given
    torch.testing.assert_close(motion_loss(pred, x0, eps, x_mask)[0], motion_loss(changed, x0, eps, x_mask)[0])
    error = pred - (x0 - eps)
    expected = ((error[0, :, 2] - error[0, :, 1]) ** 2).mean()  # the one noised pair of sample 0
    torch.testing.assert_close(motion_loss(pred, x0, eps, x_mask)[0], expected)
    images = video(3, (2, 4, 1, 3, 3))
    assert motion_loss(images, images, video(4, (2, 4, 1, 3, 3))).tolist() == [0.0, 0.0]


def half(x_t, timestep, **kwargs):
    return 0.5 * x_t  # any fixed function of the input stands in for the DiT


def test_training_loss_adds_the_weighted_term_and_mse_stays_the_plain_loss():
    x0, eps, t = video(0), video(1), torch.tensor([0.3, 0.7])
    plain = RectifiedFlow(RectifiedFlowConfig(use_shift=False)).training_losses(half, x0, t=t, noise=eps)
    weighted = RectifiedFlow(RectifiedFlowConfig(use_shift=False, motion_weight=0.5)).training_losses(
        half, x0, t=t, noise=eps)
    assert torch.equal(plain["loss"], plain["mse"])  # weight 0: exactly the velocity MSE
    torch.testing.assert_close(weighted["mse"], plain["mse"])
    pred = half((1 - t.view(-1, 1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1, 1) * eps, None)
    torch.testing.assert_close(weighted["loss"], plain["mse"] + 0.5 * motion_loss(pred, x0, eps))


def test_objective_validates_with_the_plain_loss_and_ddpm_refuses_the_weight():
    batch = {"x0": video(0), "y": None, "mask": None, "fps": None, "height": None, "width": None}

    cfg = DiffusionConfig(kind="rflow", motion_weight=2.0)
    objective = Objective(cfg, learn_sigma=False)
    t, noise = torch.tensor([0.4, 0.9]), video(1)
    train = objective.losses(half, batch, t=t, noise=noise)
    val = objective.losses(half, batch, t=t, noise=noise, eval_terms=True)
    plain = Objective(DiffusionConfig(kind="rflow"), learn_sigma=False).losses(half, batch, t=t, noise=noise)
    torch.testing.assert_close(val, plain)
    assert (train > val).all()
    with pytest.raises(ValidationError, match="motion_weight applies to rectified flow only"):
        DiffusionConfig(kind="ddpm", motion_weight=1.0)
