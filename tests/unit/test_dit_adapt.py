"""DiT adaptation building blocks: new modules start as no-ops, predecessor loading, the recipe chain, closed forms.

QK-norm is NOT a no-op. Open-Sora 1.2 (stage 2 of §4.2) switches `qk_norm=True` on the PixArt-Σ weights and
loads them with strict=False: the new RMSNorm weights start at 1, so attention logits change from q·k/√d to
q̂·k̂/√d with q̂ = q / rms(q) per head, and the model recovers during the stage's 18k steps. We assert what does
hold: every shared weight is loaded unchanged, the new weights are exactly 1, the output does change, and it no
longer depends on the scale of q and k (the property QK-norm is added for: bounded logits, stable training).
"""
from __future__ import annotations

import json

import pytest
import torch

from components.config import flat_params, resolve
from components.dit.config import DiTModelConfig, DiffusionConfig, DiTStageConfig
from components.dit.model_io import build_model, export_model, load_dit, load_state
from components.dit.objective import Objective
from components.training.stale import guard_checkpoints
from models.stdit import STDiT

SMALL = DiTModelConfig(size="tiny", caption_channels=16, model_max_length=8, input_sq_size=32)
SMALL_HIDDEN = 64  # STDiT "tiny" width: the first 64 rows of each qkv projection are the queries
RECIPE_STEPS = [20000, 18000, 10000, 33000, 8000, 25000, 3000, 38000]  # RECIPE §5


def randomised(model: STDiT, seed: int = 0) -> STDiT:
    """Every weight random (zero-initialised layers included), so equal outputs are not a trivial 0 == 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model.eval()


def inputs(frames: int = 1, batch: int = 2, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch, 4, frames, 4, 4, generator=gen), "timestep": torch.tensor([100.0, 700.0]),
            "y": torch.randn(batch, 8, 16, generator=gen), "mask": torch.tensor([[True] * 5 + [False] * 3] * batch),
            "fps": torch.tensor([8.0, 120.0]), "height": 32.0, "width": 32.0}


def grown(before: DiTModelConfig, **switch: bool) -> tuple[STDiT, STDiT, dict[str, str]]:
    """A random model and the next stage's model loaded from it; returns both and the new keys."""
    old = randomised(build_model(before, seed=0))
    new = build_model(before.model_copy(update=switch), seed=1).eval()
    report = load_state(new, old.state_dict(), "predecessor")
    return old, new, report.new


def test_fps_embedding_leaves_the_output_unchanged_at_step_0():
    old, new, added = grown(SMALL.model_copy(update={"qk_norm": True}), fps_cond=True)
    assert set(added) == {k for k in new.state_dict() if k.startswith("fps_embedder.")} and len(added) == 4
    with torch.no_grad():
        assert torch.equal(old(**inputs()), new(**inputs()))
    # it is not dead weight: the zero last layer gets a gradient at once
    new.train()
    new(**inputs(), force_drop_ids=torch.tensor([False, False])).square().mean().backward()
    assert new.fps_embedder.mlp[2].weight.grad.abs().max() > 0


def test_temporal_blocks_leave_the_output_unchanged_at_step_0():
    old, new, added = grown(SMALL.model_copy(update={"qk_norm": True, "fps_cond": True}), temporal=True)
    assert added and all(k.startswith("temporal_blocks.") for k in added)
    video = inputs(frames=3)
    given = torch.tensor([[False, True, True], [True, True, False]])
    with torch.no_grad():
        assert torch.equal(old(**video), new(**video))  # the image model on each frame == the video model
        assert torch.equal(old(**video, x_mask=given), new(**video, x_mask=given))
    new.train()
    new(**video, force_drop_ids=torch.tensor([False, False])).square().mean().backward()
    assert all(b.attn.proj.weight.grad.abs().max() > 0 for b in new.temporal_blocks)


def test_qk_norm_loads_every_weight_but_changes_the_logits():
    old, new, added = grown(SMALL, qk_norm=True)
    assert set(added) == {k for k in new.state_dict() if ".attn.q_norm." in k or ".attn.k_norm." in k}
    assert all(torch.equal(new.state_dict()[k], torch.ones_like(new.state_dict()[k])) for k in added)
    shared = old.state_dict()
    assert all(torch.equal(new.state_dict()[k], v) for k, v in shared.items())
    with torch.no_grad():
        before, after = old(**inputs()), new(**inputs())
        assert (before - after).abs().max() > 1e-3  # not a no-op
        for model in (old, new):  # scale the query rows of every qkv projection by 3
            for block in model.spatial_blocks:
                block.attn.qkv.weight[: SMALL_HIDDEN].mul_(3.0)
                block.attn.qkv.bias[: SMALL_HIDDEN].mul_(3.0)
        assert torch.allclose(new(**inputs()), after, atol=1e-5)  # RMS-normalised queries: scale-free
        assert (old(**inputs()) - before).abs().max() > 1e-3



def test_loading_names_the_keys_that_do_not_fit():
    model = build_model(SMALL, seed=0)
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"lacks 1 tensor\(s\) that are not new modules.*final_layer.linear.bias"):
        load_state(build_model(SMALL, seed=0), {k: v for k, v in state.items() if k != "final_layer.linear.bias"}, "p")
    with pytest.raises(ValueError, match=r"holds 4 tensor\(s\) this model lacks.*fps_embedder.mlp.0.bias"):
        load_state(model, build_model(SMALL.model_copy(update={"fps_cond": True}), 0).state_dict(), "p")
    with pytest.raises(ValueError, match=r"shape mismatch.*final_layer.linear.weight \(16, 64\) vs \(32, 64\)"):
        load_state(model, build_model(SMALL.model_copy(update={"learn_sigma": False}), 0).state_dict(), "p")


@pytest.mark.parametrize("attention", ["factorized", "full"])
def test_export_rebuilds_the_same_model(tmp_path, attention):
    switches = {"fps_cond": True, "temporal": True, "temporal_attention": attention}
    model = randomised(build_model(SMALL.model_copy(update=switches), seed=0))
    export_model(tmp_path / "adapt7", model, None, {"stage": "dit.adapt7", "diffusion": {"kind": "rflow"}})
    loaded, info = load_dit(tmp_path / "adapt7")
    assert info["stage"] == "dit.adapt7" and info["stdit"]["temporal"] is True
    assert loaded.cfg.temporal_attention == attention
    assert loaded.temporal_blocks[0].full_attention == (attention == "full")
    assert info["stdit"]["patch_size"] == [1, 2, 2] and info["diffusion"] == {"kind": "rflow"}
    with torch.no_grad():
        assert torch.equal(loaded(**inputs(frames=2)), model(**inputs(frames=2)))
    with pytest.raises(FileNotFoundError, match="ema.safetensors is missing"):
        load_dit(tmp_path / "adapt7", weights="ema")


def batch(seed: int, n: int) -> dict:
    """A micro-batch of n image latents (4x4) with 8-token captions, as DiTBatches yields it."""
    gen = torch.Generator().manual_seed(seed)
    return {"x0": torch.randn(n, 4, 1, 4, 4, generator=gen), "y": torch.randn(n, 8, 16, generator=gen),
            "mask": torch.ones(n, 8, dtype=torch.bool), "fps": torch.full((n,), 120.0),
            "height": torch.full((n,), 32.0), "width": torch.full((n,), 32.0),
            "num_frames": torch.ones(n, dtype=torch.long)}


@pytest.mark.parametrize("kind", ["ddpm", "rflow"])
def test_fresh_model_validation_loss_closed_form(kind):
    """A fresh STDiT outputs 0 (zero final layer): eps-MSE = mean(ε²), velocity loss = mean((x0 − ε)²)."""
    model = build_model(SMALL, seed=0).eval()
    objective = Objective(DiffusionConfig(kind=kind, eval_points=4), learn_sigma=True)
    batches = [batch(3, n=3), batch(4, n=2)]  # two buckets of unequal size: the mean is per sample
    gen = torch.Generator().manual_seed(11)
    expected = []
    for b in batches:
        noise = torch.randn(b["x0"].shape, generator=gen)
        target = noise if kind == "ddpm" else b["x0"] - noise
        expected += target.square().flatten(1).mean(1).tolist()
    got = objective.eval_loss(model, batches, seed=11)
    assert got == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_eval_timesteps_are_equidistant_bin_centres():
    ddpm = Objective(DiffusionConfig(kind="ddpm", eval_points=4), learn_sigma=True)
    assert [int(t[0]) for t in ddpm.eval_timesteps(2, torch.device("cpu"))] == [125, 375, 625, 875]
    rflow = Objective(DiffusionConfig(kind="rflow", eval_points=5), learn_sigma=True)
    assert [round(float(t[0]), 6) for t in rflow.eval_timesteps(2, torch.device("cpu"))] == [0.1, 0.3, 0.5, 0.7, 0.9]


def test_shift_ratio_is_one_at_the_base_resolution():
    objective = Objective(DiffusionConfig(kind="rflow", shift=True, shift_base_resolution=64 * 64), learn_sigma=True)
    b = {"x0": torch.zeros(3, 4, 1, 1, 1), "height": torch.tensor([64.0, 128.0, 64.0]),
         "width": torch.tensor([64.0, 128.0, 64.0]), "num_frames": torch.tensor([1, 1, 17])}
    # sqrt(h·w / base) · sqrt(latent frames): 17 pixel frames are 5 latent frames
    assert objective.ratio(b).tolist() == pytest.approx([1.0, 2.0, 5 ** 0.5])
    assert Objective(DiffusionConfig(kind="rflow", shift=False), True).ratio(b) is None


# ---- the recipe chain ---------------------------------------------------------------------------------------
CHANGES = {  # what each stage changes in the model, objective, latents and masks (RECIPE §5)
    "adapt1": {},
    "adapt2": {"model.qk_norm": True},
    "adapt3": {"diffusion.kind": "rflow"},
    "adapt4": {"diffusion.timesteps": "logit_normal", "diffusion.shift": True},
    "adapt5": {"eps": 1e-15},
    "adapt6": {"vae.kind": "video", "vae.dir": "vae/stage3", "model.fps_cond": True},
    "adapt7": {"model.temporal": True},
    "adapt8": {"mask": "stage1_2", "data.images_from_videos": False},
}
TRACKED = ("model.", "diffusion.kind", "diffusion.timesteps", "diffusion.shift", "vae.kind", "vae.dir", "eps",
           "mask", "data.images_from_videos")


@pytest.mark.parametrize("profile", ["tiny", "full"])
def test_each_recipe_is_its_predecessor_plus_one_change(profile, workspace):
    configs = {name: resolve(f"dit.{name}", DiTStageConfig, profile) for name in ["stage0", *CHANGES]}
    names = list(configs)
    for before, after in zip(names, names[1:]):
        a, b = flat_params(configs[before]), flat_params(configs[after])
        changed = {k: b[k] for k in b if k.startswith(TRACKED) and a.get(k) != b[k]}
        assert changed == CHANGES[after], after
        assert configs[after].init.kind == "stage" and configs[after].init.stage == f"dit/{before}"
    assert configs["stage0"].model.temporal is False and configs["stage0"].model.learn_sigma is True
    assert configs["stage0"].diffusion.kind == "ddpm" and configs["stage0"].model.qk_norm is False
    if profile == "full":
        assert configs["stage0"].mode == "import" and configs["stage0"].init.kind == "pixart"
        assert [configs[n].steps for n in names[1:]] == RECIPE_STEPS
    else:
        assert configs["stage0"].init.kind == "random" and configs["adapt8"].sample.num_frames == 17


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="model.model_max_length \\(32\\) must equal text.max_length \\(64\\)"):
        DiTStageConfig(text={"kind": "minilm", "max_length": 64})
    with pytest.raises(ValueError, match=r"video frame counts \[17\] but model.temporal is off"):
        DiTStageConfig(data={"buckets": {"64px": {17: [1.0, 2]}}})
    with pytest.raises(ValueError, match="mask 'half': known presets"):
        DiTStageConfig(mask="half")
    with pytest.raises(ValueError, match="init.kind=stage needs init.stage"):
        DiTStageConfig(init={"kind": "stage"})


def test_checkpoints_of_other_inputs_are_moved_aside(tmp_path):
    ckpt, init = tmp_path / "checkpoints" / "dit.adapt2", tmp_path / "init.safetensors"
    init.write_bytes(b"weights of adapt1, first run")
    assert guard_checkpoints(ckpt, {"init": str(init)}) is False
    (ckpt / "step_00000010").mkdir()
    assert guard_checkpoints(ckpt, {"init": str(init)}) is False  # same inputs: a retry resumes
    assert (ckpt / "step_00000010").is_dir()
    init.write_bytes(b"weights of adapt1, re-run")
    assert guard_checkpoints(ckpt, {"init": str(init)}) is True
    assert not (ckpt / "step_00000010").exists() and (ckpt.with_name("dit.adapt2.stale") / "step_00000010").is_dir()
    assert json.loads((ckpt / "inputs.json").read_text())["init"] != ""


def test_checkpoints_of_another_recipe_are_moved_aside_but_a_resume_may_change_where_it_stops(tmp_path):
    from components.training.stale import recipe_digest

    ckpt, init = tmp_path / "checkpoints" / "dit.adapt2", tmp_path / "init.safetensors"
    init.write_bytes(b"weights")
    killed = DiTStageConfig(steps=10, stop_after=4, log_every=1)
    assert recipe_digest(killed) == recipe_digest(DiTStageConfig(steps=10, log_every=5))  # the rerun after a kill
    assert guard_checkpoints(ckpt, {"init": str(init)}, recipe=recipe_digest(killed)) is False
    (ckpt / "step_00000004").mkdir()
    assert guard_checkpoints(ckpt, {"init": str(init)}, recipe=recipe_digest(DiTStageConfig(steps=10))) is False
    assert guard_checkpoints(ckpt, {"init": str(init)}, recipe=recipe_digest(DiTStageConfig(steps=10, lr=1e-3))) is True
    assert not (ckpt / "step_00000004").exists()
