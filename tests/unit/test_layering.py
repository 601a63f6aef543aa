"""Imports only go downward: flows → components → models (DESIGN.md)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "models": {"components", "flows", "prefect", "mlflow", "dvc", "great_expectations"},
    "components": {"flows", "prefect"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_import_direction():
    violations = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((REPO / layer).rglob("*.py")):
            bad = imported_roots(path) & banned
            if bad:
                violations.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert violations == []


def test_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom prefect import flow\nimport components.stage\n")
    assert imported_roots(bad) == {"os", "prefect", "components"}
