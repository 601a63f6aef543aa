"""Recipes resolve as recipe section ← extends ← params.yaml overrides ← --set, into validated typed configs."""
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from components.config import ConfigError, StageConfig, flat_params, params_hash, parse_set, recipe_file, resolve
from tests.conftest import REPO


class StepConfig(StageConfig):
    lr: float = 1e-4
    steps: int = Field(10, ge=1)
    eps: float = 1e-8
    opt: dict = {}


def write(root: Path, doc: dict, params: dict | None = None) -> None:
    (root / "configs" / "tiny").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "tiny" / "dit.yaml").write_text(yaml.safe_dump(doc))
    (root / "params.yaml").write_text(yaml.safe_dump(params or {"profile": "tiny"}))


def test_parse_set_nests_and_types_values():
    assert parse_set(["a.b=3", "a.c=x", "d=1e-15", "e=true", "f=[1, 2]"]) == {
        "a": {"b": 3, "c": "x"}, "d": 1e-15, "e": True, "f": [1, 2]}


def test_extends_chain_params_and_set_override_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_ROOT", str(tmp_path))
    write(tmp_path, {
        "adapt1": {"lr": 2e-5, "steps": 100, "opt": {"beta1": 0.9}},
        "adapt2": {"extends": "adapt1", "steps": 200},
        "adapt3": {"extends": "adapt2", "eps": 1e-15},
    }, {"profile": "tiny", "overrides": {"dit": {"adapt3": {"steps": 300}}}})
    cfg = resolve("dit.adapt3", StepConfig, "tiny", ["opt.beta2=0.999"])
    assert (cfg.lr, cfg.steps, cfg.eps) == (2e-5, 300, 1e-15)
    assert cfg.opt == {"beta1": 0.9, "beta2": 0.999}
    assert resolve("dit.adapt2", StepConfig, "tiny").steps == 200


def test_unknown_key_and_bad_value_name_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_ROOT", str(tmp_path))
    write(tmp_path, {"adapt1": {"lrr": 1.0}})
    with pytest.raises(ConfigError, match=r"dit.adapt1.*lrr"):
        resolve("dit.adapt1", StepConfig, "tiny")
    write(tmp_path, {"adapt1": {"steps": 0}})
    with pytest.raises(ConfigError, match=r"steps: Input should be greater than or equal to 1"):
        resolve("dit.adapt1", StepConfig, "tiny")


def test_extends_cycle_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_ROOT", str(tmp_path))
    write(tmp_path, {"a": {"extends": "b"}, "b": {"extends": "a"}})
    with pytest.raises(ConfigError, match="cycle"):
        resolve("dit.a", StepConfig, "tiny")


def test_params_hash_is_stable_and_sensitive():
    a, b = StepConfig(lr=1e-4), StepConfig(lr=1e-4)
    assert params_hash(a) == params_hash(b)
    assert params_hash(a) != params_hash(StepConfig(lr=2e-4))
    flat = flat_params(StepConfig(opt={"beta1": 0.9}))
    assert flat["opt.beta1"] == 0.9 and flat["launch.mode"] == "inprocess"


def test_every_dvc_stage_depends_on_the_recipe_file_its_stage_reads(monkeypatch):
    """`dvc repro` re-runs a stage when its recipe changes only if dvc.yaml lists that file among its deps."""
    monkeypatch.setenv("REELFORGE_ROOT", str(REPO))  # recipe_file and dvc.yaml from the same checkout, any cwd
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    checked, missing = 0, []
    for name, spec in stages.items():
        words = spec["cmd"].split()
        if words[:3] != ["reelforge", "stage", "run"]:
            continue
        stage = words[3]
        recipe = recipe_file("${profile}", stage).relative_to(REPO).as_posix()
        checked += 1
        if recipe not in spec.get("deps", []):
            missing.append(f"{name}: {recipe}")
    assert checked >= 20 and missing == []
