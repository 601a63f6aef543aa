"""Pretraining tiers and the validation-loss grid: recipes (tiny and full), declared inputs, the flow order, and
the grid's averaging over exactly 10 equidistant timesteps against a closed form."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import flows.pretrain as pretrain_flow_module
from components.config import resolve
from components.data.buckets import salt
from components.dit.config import DiffusionConfig
from components.dit.latent_stage import LatentCacheConfig
from components.dit.objective import Objective
from components.dit.pretrain import pretrain_inputs
from components.dit.pretrain_config import Cell, GridConfig, PretrainConfig, profile_cells
from components.dit.val_grid import GridBatches, evaluate_grid, grid_objective
from components.stage import REGISTRY
from flows.pretrain import PRETRAIN_STAGES
from models.diffusion import MASK_PRESETS

TIERS = ["pretrain.tier1", "pretrain.tier2", "pretrain.tier3"]


def test_tiny_recipe_tiers_chain_and_stay_small():
    cfgs = {name: resolve(name, PretrainConfig, "tiny") for name in TIERS}
    assert [c.init.stage for c in cfgs.values()] == ["dit/adapt8", "pretrain/tier1", "pretrain/tier2"]
    assert [c.tier for c in cfgs.values()] == ["tier1", "tier2", "tier3"]
    assert [c.mask for c in cfgs.values()] == ["stage1_2", "stage1_2", "stage3"]
    assert MASK_PRESETS["stage3"].none == pytest.approx(0.75)  # 25% of tier-3 samples are masked
    for cfg in cfgs.values():
        buckets = cfg.data.buckets.resolutions
        assert all(int(r.removesuffix("px")) <= 64 for r in buckets)
        assert {f for entries in buckets.values() for f in entries} == {1, 9, 17}  # joint image + video
        assert cfg.ema_decay == 0.99 and cfg.latents.kind == "cache" and cfg.diffusion.kind == "rflow"
    # the largest resolution grows tier by tier; tier 3 fills it first (the smaller ones keep fewer clips)
    largest = [max(int(r.removesuffix("px")) for r in c.data.buckets.resolutions) for c in cfgs.values()]
    assert largest == [48, 64, 64]
    keep = {r: e[17].keep_prob for r, e in cfgs["pretrain.tier3"].data.buckets.resolutions.items()}
    assert keep["64px"] > keep["48px"] > 0
    # score-to-text (RECIPE §1): every tier appends its clips' scores, and the cache encodes those captions
    assert all(c.data.score_text and c.data.score_text_drop == pytest.approx(0.2) for c in cfgs.values())
    cache = resolve("cache.latents", LatentCacheConfig, "tiny")
    assert cache.score_text
    for name, cfg in cfgs.items():  # the cache holds exactly what each tier will ask for
        tier = cache.tiers[cfg.tier]
        assert tier.buckets == cfg.data.buckets and tier.table == cfg.data.tables[0]
        assert (tier.images_from_videos, tier.video_frames_as_images) == (False, True)  # joint image + video
        assert (cfg.data.images_from_videos, cfg.data.video_frames_as_images) == (False, True)
    # tiers 2 and 3 start from their predecessor's exported EMA weights, on which the grid curves are measured
    assert [c.init.weights for c in cfgs.values()] == ["model", "ema", "ema"]
    assert [c.name for c in profile_cells("tiny")] == [f"{r}x{f}" for r in ("64px", "48px", "32px") for f in (17, 9, 1)]


def test_full_recipe_has_the_open_sora_numbers():
    cfgs = [resolve(name, PretrainConfig, "full") for name in TIERS]
    assert [c.steps for c in cfgs] == [30000, 23000, 15000]
    assert all(c.launch.mode == "torchrun" and c.launch.nproc_per_node == 8 and c.launch.nnodes == "12"
               for c in cfgs)
    assert [sorted(c.data.buckets.resolutions) for c in cfgs] == [["240p", "360p"], ["360p", "480p"],
                                                                  ["1080p", "720p"]]
    assert cfgs[0].data.buckets.resolutions["240p"][102].allow_prob == pytest.approx(0.33)
    assert [c.mask for c in cfgs] == ["stage1_2", "stage1_2", "stage3"]
    assert {c.lr for c in cfgs} == {2e-5} and {c.ema_decay for c in cfgs} == {0.99}
    assert all(c.data.score_text and c.data.score_text_drop == pytest.approx(0.2) for c in cfgs)
    assert resolve("cache.latents", LatentCacheConfig, "full").score_text


def test_declared_inputs_name_the_cache_and_the_previous_export(workspace):
    ws = workspace
    second = pretrain_inputs(resolve("pretrain.tier2", PretrainConfig, "tiny"), ws)
    assert second == {"clips": str(ws / "data/ingest/metadata.parquet"),  # no tier table yet: the fallback
                      "vae": str(ws / "vae/stage3/model.safetensors"),
                      "init": str(ws / "pretrain/tier1/ema.safetensors"),
                      "cache_index": str(ws / "cache/latents/index.parquet"),
                      "cache_meta": str(ws / "cache/latents/cache.json")}
    live = resolve("pretrain.tier1", PretrainConfig, "tiny", ["latents.kind=on_the_fly"])
    assert set(pretrain_inputs(live, ws)) == {"clips", "vae", "init"}
    assert [REGISTRY[n].output for n in TIERS] == ["pretrain/tier1", "pretrain/tier2", "pretrain/tier3"]


def test_flow_chains_cache_tiers_and_eval_loss(monkeypatch):
    calls = []
    monkeypatch.setattr(pretrain_flow_module, "stage", lambda name, profile, use_dvc: calls.append(name) or {})
    pretrain_flow_module.pretrain_flow.fn(profile="tiny", use_dvc=False)
    assert calls == PRETRAIN_STAGES == ["cache.latents", *TIERS, "eval.loss"]
    calls.clear()
    pretrain_flow_module.pretrain_flow.fn(profile="tiny", start="pretrain.tier3")
    assert calls == ["pretrain.tier3", "eval.loss"]


def test_grid_cells_are_validated():
    with pytest.raises(ValueError, match="unknown bucket resolution .999p."):
        GridConfig(cells=[("999p", 1)])
    with pytest.raises(ValueError, match=r"\(32px, 0\): frame count must be >= 1"):
        GridConfig(cells=[("32px", 0)])


class Identity(nn.Module):
    """Predicts v = x_t, so the loss at t has a closed form; records the timesteps it is called with."""

    def __init__(self):
        super().__init__()
        self.calls: list[torch.Tensor] = []

    def forward(self, x, timestep, **kwargs):
        self.calls.append(timestep.clone())
        return x


def _batch(seed: int, n: int, frames: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"x0": torch.randn(n, 4, frames, 3, 4, generator=gen), "y": torch.zeros(n, 8, 16),
            "mask": torch.ones(n, 8, dtype=torch.bool), "fps": torch.full((n,), 8.0),
            "height": torch.full((n,), 24.0), "width": torch.full((n,), 32.0),
            "num_frames": torch.full((n,), frames)}


def test_grid_averages_exactly_ten_equidistant_timesteps_closed_form():
    image, video, empty = Cell("32px", 1), Cell("32px", 9), Cell("64px", 17)
    grid = GridBatches([video, image, empty], {video: [_batch(1, 3, 3), _batch(2, 2, 3)], image: [_batch(3, 2, 1)],
                                               empty: []}, {video: ["a"] * 5, image: ["b"] * 2, empty: []}, [])
    objective = grid_objective(DiffusionConfig(kind="rflow", eval_points=4), learn_sigma=False, points=10)
    model = Identity()
    result = evaluate_grid(objective, model, grid, seed=5)

    expected_t = [(i + 0.5) / 10 for i in range(10)]
    assert result.t == pytest.approx(expected_t)
    called = sorted({round(float(c[0]), 3) for c in model.calls})
    assert called == pytest.approx([1000 * t for t in expected_t])  # the model sees t · num_timesteps
    assert len(model.calls) == 10 * 3  # 10 timesteps for each of the 3 batches; the empty cell is skipped
    assert set(result.loss) == {"32pxx9", "32pxx1"} and result.samples == {"32pxx9": 5, "32pxx1": 2}
    for cell in (video, image):
        gen = torch.Generator().manual_seed(salt(5, cell.resolution, cell.num_frames) % 2**63)
        per_t = torch.zeros(10)
        count = 0
        for b in grid.batches[cell]:
            noise = torch.randn(b["x0"].shape, generator=gen)
            for i, t in enumerate(expected_t):
                # pred − target = x_t − (x0 − ε) = −t·x0 + (1 + t)·ε
                per_t[i] += (-t * b["x0"] + (1 + t) * noise).square().flatten(1).mean(1).sum()
            count += b["x0"].shape[0]
        assert result.per_t[cell.name] == pytest.approx((per_t / count).tolist(), rel=1e-5)
        assert result.loss[cell.name] == pytest.approx(float((per_t / count).mean()), rel=1e-5)
    assert result.mean == pytest.approx((result.loss["32pxx9"] + result.loss["32pxx1"]) / 2)
    assert result.metrics() == {"val/loss/32pxx9": result.loss["32pxx9"], "val/loss/32pxx1": result.loss["32pxx1"],
                                "val/loss/mean": result.mean}
    # noise is seeded per cell: a cell's number does not depend on which other cells are evaluated
    alone = evaluate_grid(objective, Identity(), GridBatches([image], {image: grid.batches[image]}, {image: ["b"]}, []),
                          seed=5)
    assert alone.loss["32pxx1"] == result.loss["32pxx1"]


def test_objective_timesteps_match_the_fixed_batch_validation():
    """The grid and the DiT stages' val/loss use the same equidistant points."""
    objective = Objective(DiffusionConfig(kind="rflow", eval_points=10), learn_sigma=True)
    points = [float(t[0]) for t in objective.eval_timesteps(1, torch.device("cpu"))]
    assert points == pytest.approx([0.05 + 0.1 * i for i in range(10)])


def test_swapped_in_weights_are_used_inside_and_the_own_ones_restored_bit_for_bit():
    from components.dit.pretrain_trainer import swapped_in

    torch.manual_seed(0)
    module = nn.Linear(3, 2)
    own = {k: v.clone() for k, v in module.state_dict().items()}
    ema = {k: torch.randn_like(v) for k, v in own.items()}
    x = torch.randn(4, 3)
    with swapped_in(module, ema):
        assert torch.equal(module(x), x @ ema["weight"].T + ema["bias"])
    assert all(torch.equal(module.state_dict()[k], v) for k, v in own.items())
    with swapped_in(module, None):  # no EMA kept: the module's own weights
        assert torch.equal(module(x), x @ own["weight"].T + own["bias"])
