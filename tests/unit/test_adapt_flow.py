"""adapt_flow wiring and the dit.* stage registrations: names, outputs, declared inputs, the stage order."""
from __future__ import annotations

import flows.adapt as adapt
from components.config import resolve
from components.dit.config import DiTStageConfig
from components.dit.stages import dit_inputs
from components.stage import REGISTRY
from flows.adapt import ADAPT_STAGES


def test_stages_registered_in_chain_order():
    assert ADAPT_STAGES == ["dit.stage0", *(f"dit.adapt{i}" for i in range(1, 9))]
    for name in ADAPT_STAGES:
        spec = REGISTRY[name]
        assert spec.config is DiTStageConfig and spec.output == f"dit/{name.split('.')[1]}"


def test_declared_inputs_are_checked_before_work(workspace):
    ws = workspace
    first = dit_inputs(resolve("dit.stage0", DiTStageConfig, "tiny"), ws)
    assert first == {"clips": str(ws / "data/ingest/metadata.parquet"), "vae": str(ws / "vae/stage0/model.safetensors")}
    sixth = dit_inputs(resolve("dit.adapt6", DiTStageConfig, "tiny"), ws)
    assert sixth["init"] == str(ws / "dit/adapt5/model.safetensors")
    assert sixth["vae"] == str(ws / "vae/stage3/model.safetensors")
    # the full profile's 2D VAE comes from the weights store and its stage0 only converts PixArt-Σ
    assert dit_inputs(resolve("dit.stage0", DiTStageConfig, "full"), ws) == {}
    assert set(dit_inputs(resolve("dit.adapt1", DiTStageConfig, "full"), ws)) == {"clips", "init"}


def test_flow_runs_the_stages_in_order_from_start(monkeypatch):
    calls = []
    monkeypatch.setattr(adapt, "stage", lambda name, profile, use_dvc: calls.append((name, profile, use_dvc)) or {})
    adapt.adapt_flow.fn(profile="tiny", use_dvc=False)
    assert [c[0] for c in calls] == ADAPT_STAGES and {c[1:] for c in calls} == {("tiny", False)}
    calls.clear()
    adapt.adapt_flow.fn(profile="full", start="dit.adapt7")
    assert calls == [("dit.adapt7", "full", True), ("dit.adapt8", "full", True)]
