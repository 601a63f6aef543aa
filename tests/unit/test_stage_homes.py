"""STAGE_HOMES names the module of every stage, so a stage process imports that module alone."""
import subprocess
import sys

from components import stage
from tests.conftest import REPO


def test_every_stage_lives_where_stage_homes_says():
    # other tests in the same process may register their own stages: only the product's modules count here
    registry = {n: s for n, s in stage.load_all().items() if s.fn.__module__ in stage.STAGE_MODULES}
    assert len(registry) == 29
    assert {name: stage.home(name) for name in registry} == {name: spec.fn.__module__ for name, spec in registry.items()}
    assert stage.home("vae.stage9") == "components.training.vae_stages" and stage.home("nope.x") is None


def test_getting_a_stage_imports_only_its_module():
    code = ("import sys; from components import stage; stage.get('data.ingest'); "
            "print(sorted(m for m in stage.STAGE_MODULES if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['components.data.ingest']"


def test_device_kind_does_not_import_torch_for_a_stage_that_did_not():
    code = "import sys; from components.runner import device_kind; print(device_kind(), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["cpu", "False"]
    import torch

    from components.runner import device_kind
    assert device_kind() == ("cuda" if torch.cuda.is_available() else "cpu")
