"""Deployment specs and task tags: schedules, entrypoints that exist, GPU-heavy stages tagged for the concurrency limit."""
import ast

import pytest

from components.config import ConfigError
from components.evaluation.evaluate import load, plan
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


def test_evaluate_config_per_kind_and_plan(workspace):
    vae = load("vae", "tiny")
    assert vae.registered_model == "reelforge-vae" and vae.stage == "vae.stage3"
    assert [m.name for m in vae.gate.metrics] == ["eval.vae/rfvd", "eval.vae/psnr"]
    todo = plan(vae, "/reg/v1", registered={"eval.vae"}, explicit_version=True)
    assert todo.run == [("eval.vae", ["vae.dir=/reg/v1"])] and todo.skipped == []
    dit = load("dit", "tiny")
    todo = plan(dit, "/reg/v1", registered={"eval.loss"}, explicit_version=False)
    assert todo.run == [("eval.loss", [])]
    assert [name for name, _ in todo.skipped] == ["eval.vbench", "eval.adherence"]
    assert "not a registered stage" in todo.skipped[0][1]
    with pytest.raises(ConfigError, match="model_kind 'gan': expected one of vae, dit"):
        load("gan", "tiny")
    with pytest.raises(ConfigError, match="no result reader for \\['eval.fid'\\]"):
        load("vae", "tiny", ["eval_stages=[eval.fid]"])
