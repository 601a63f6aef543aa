"""Deployment specs and task tags: schedules, entrypoints that exist, GPU-heavy stages tagged for the concurrency limit."""
import ast

import pytest

from components.config import ConfigError
from components.evaluation.evaluate import load, plan, split_sets
from flows.deploy import POOL, deployments, require_server
from flows.tasks import GPU_HEAVY, stage_tags
from tests.conftest import REPO


def flow_functions(path):
    """Names of the functions decorated with @flow(...) in a file."""
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "flow" for d in node.decorator_list)}


def test_three_scheduled_deployments_point_at_flows():
    specs = {d.name: d for d in deployments("full")}
    assert set(specs) == {"reelforge-pipeline", "data-refresh", "nightly-evaluation"}
    assert specs["nightly-evaluation"].crons == [("0 2 * * *", {"model_kind": "dit"}), ("0 2 * * *", {"model_kind": "vae"})]
    assert all(spec.parameters["profile"] == "full" for spec in specs.values())
    for spec in specs.values():
        file, function = spec.entrypoint.split(":")
        assert function in flow_functions(REPO / file), spec.entrypoint
    assert POOL == "reelforge-process"


def test_training_and_evaluation_tasks_are_gpu_heavy():
    assert [n for n in ("vae.stage1", "dit.adapt3", "pretrain.tier1", "eval.vae", "train.smoke") if stage_tags(n) == [GPU_HEAVY]] \
        == ["vae.stage1", "dit.adapt3", "pretrain.tier1", "eval.vae", "train.smoke"]
    assert stage_tags("data.ingest") == [] and stage_tags("curate.split") == []


def test_deploy_refuses_an_ephemeral_server(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(SystemExit, match="reelforge deploy needs a Prefect server"):
        require_server()


DIT_STAGES = ("eval.loss", "eval.vbench", "eval.adherence")


def test_evaluate_config_per_kind_and_plan(workspace):
    vae = load("vae", "tiny")
    assert vae.registered_model == "reelforge-vae" and vae.stage == "vae.stage3"
    assert [m.name for m in vae.gate.metrics] == ["eval.vae/rfvd", "eval.vae/psnr"]
    todo = plan(vae, "/reg/v1", registered={"eval.vae"}, explicit_version=True)
    assert todo.run == [("eval.vae", ["vae.dir=/reg/v1"])] and todo.skipped == []
    dit = load("dit", "tiny")
    assert dit.registered_model == "reelforge-dit" and dit.stage == "pretrain.tier3" and dit.gate.rule == "first"
    assert [m.name for m in dit.gate.metrics] == ["eval.vbench/total", "eval.adherence/accuracy"]
    assert dit.model_sets == load("dit", "full").model_sets == {s: "model" for s in DIT_STAGES}
    todo = plan(dit, "/reg/v1", registered=set(DIT_STAGES), explicit_version=True)
    assert todo.run == [(s, ["model=/reg/v1"]) for s in DIT_STAGES] and todo.skipped == []
    todo = plan(dit, "/reg/v1", registered={"eval.loss"}, explicit_version=False)
    assert todo.run == [("eval.loss", ["model=/reg/v1"])]
    assert [name for name, _ in todo.skipped] == ["eval.vbench", "eval.adherence"]
    assert "not a registered stage" in todo.skipped[0][1]
    without = dit.model_copy(update={"model_sets": {"eval.loss": "model"}})  # no key: it cannot judge a version
    todo = plan(without, "/reg/v1", registered=set(DIT_STAGES), explicit_version=True)
    assert todo.run == [("eval.loss", ["model=/reg/v1"])]
    assert todo.skipped[1] == ("eval.adherence", "no model_sets.eval.adherence key to point it at /reg/v1; it would "
                                                 "evaluate its default input instead of this version")
    with pytest.raises(ConfigError, match="model_kind 'gan': expected one of vae, dit"):
        load("gan", "tiny")
    with pytest.raises(ConfigError, match="no result reader for \\['eval.fid'\\]"):
        load("vae", "tiny", ["eval_stages=[eval.fid]"])


def test_evaluate_stage_overrides_follow_the_model_key(workspace):
    dit = load("dit", "tiny")
    overrides = split_sets(dit, ["eval.adherence.samples=4", "eval.loss.grid.points=2", "eval.adherence.steps=2"])
    assert overrides == {"eval.adherence": ["samples=4", "steps=2"], "eval.loss": ["grid.points=2"]}
    todo = plan(dit, "/reg/v1", registered=set(DIT_STAGES), explicit_version=True, overrides=overrides)
    assert todo.run == [("eval.loss", ["model=/reg/v1", "grid.points=2"]), ("eval.vbench", ["model=/reg/v1"]),
                        ("eval.adherence", ["model=/reg/v1", "samples=4", "steps=2"])]
    with pytest.raises(ConfigError, match="--set 'samples=4': expected <eval stage>.<key>=<value> with the stage "
                                          "one of eval.loss, eval.vbench, eval.adherence"):
        split_sets(dit, ["samples=4"])
    with pytest.raises(ConfigError, match="--set 'eval.adherence.samples': expected"):
        split_sets(dit, ["eval.adherence.samples"])
    with pytest.raises(ConfigError, match=r"overrides for \['eval.vae'\]: not eval stages of reelforge-dit"):
        plan(dit, "/reg/v1", registered=set(DIT_STAGES), explicit_version=True, overrides={"eval.vae": ["x=1"]})
    with pytest.raises(ConfigError, match="overrides for eval.vbench: 'model=/reg/v2' would replace the version under "
                                          "evaluation \\(model=/reg/v1\\)"):
        plan(dit, "/reg/v1", registered=set(DIT_STAGES), explicit_version=True,
             overrides={"eval.vbench": ["model=/reg/v2"]})
