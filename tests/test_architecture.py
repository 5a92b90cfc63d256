"""Architecture rules that keep the functional core free of the orchestration stack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_LEDGER = {"prefect", "dask", "distributed", "mlflow", "prefect_dask"}
FORBIDDEN_IN_GPU_RUNNER = FORBIDDEN_IN_LEDGER | {"duckdb"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_imported_roots_sees_nested_and_from_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import prefect.flows\nfrom mlflow.tracking import x\n")
    assert imported_roots(probe) == {"prefect", "mlflow"}


@pytest.mark.parametrize("path", sorted((ROOT / "ledger").rglob("*.py")), ids=str)
def test_ledger_never_imports_orchestration(path: Path) -> None:
    bad = imported_roots(path) & FORBIDDEN_IN_LEDGER
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


GPU_SIDE = [
    *sorted((ROOT / "tasks" / "models").rglob("*.py")),
    ROOT / "tasks" / "evaluate" / "runner.py",
    ROOT / "tasks" / "evaluate" / "batched.py",
    ROOT / "tasks" / "evaluate" / "sampling.py",
    *sorted((ROOT / "evaluation_sets").rglob("*.py")),
]


@pytest.mark.parametrize("path", GPU_SIDE, ids=str)
def test_gpu_side_code_imports_without_orchestration(path: Path) -> None:
    bad = imported_roots(path) & FORBIDDEN_IN_GPU_RUNNER
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
