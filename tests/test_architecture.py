"""Architecture rules that keep the functional core free of the orchestration stack."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
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


LAYOUT_PACKAGES = ("ledger", "tasks", "flows", "evaluation_sets", "dashboards")
ALL_SOURCES = sorted(
    {
        *(ROOT / "taoflow").glob("*.py"),  # taoflow/<layout folder> are links to the folders
        *(
            path
            for folder in (*LAYOUT_PACKAGES, "tests", "benchmarks")
            for path in (ROOT / folder).rglob("*.py")
        ),
    }
)


def test_imported_roots_sees_a_generic_top_level_name(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from ledger.state import X\nimport taoflow.tasks\n")
    assert imported_roots(probe) & set(LAYOUT_PACKAGES) == {"ledger"}


@pytest.mark.parametrize("path", ALL_SOURCES, ids=str)
def test_code_imports_the_layout_folders_under_the_taoflow_namespace(path: Path) -> None:
    """``import ledger`` would load a second copy of the module (and breaks once installed)."""
    bad = imported_roots(path) & set(LAYOUT_PACKAGES)
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}; use taoflow.<name>"


def test_the_distribution_installs_only_the_taoflow_namespace() -> None:
    """The wheel's packages: taoflow and taoflow.* (the layout folders via taoflow/<name>)."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(ROOT), **config["packages"]["find"])
    assert packages, "no packages found"
    assert {p.split(".")[0] for p in packages} == {"taoflow"}
    for name in LAYOUT_PACKAGES:
        assert f"taoflow.{name}" in packages
        assert (ROOT / "taoflow" / name).resolve() == (ROOT / name).resolve()


CLI_IMPORT_TIMEOUT_S = 120
HEAVY_FOR_THE_CLI = (
    "torch",
    "prefect",
    "mlflow",
    "dask",
    "distributed",
    "duckdb",
    "pyarrow",
    "pandas",
    "datasets",
    "sklearn",
    "fastapi",
    "uvicorn",
    "starlette",
    "jinja2",
)
"""What ``import taoflow.cli`` must not load: the commands that need them import them."""


def _modules_after(code: str, *args: str) -> set[str]:
    """Top-level package names loaded in a fresh interpreter once ``code`` has run."""
    dump = "import json, sys; print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{dump}", *args],
        capture_output=True,
        text=True,
        timeout=CLI_IMPORT_TIMEOUT_S,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_package() -> None:
    """``taoflow --help``, argument errors and read-only commands start without the flow stack."""
    loaded = _modules_after("import taoflow.cli")
    assert {"taoflow", "typer"} <= loaded
    assert loaded.isdisjoint(HEAVY_FOR_THE_CLI), sorted(loaded & set(HEAVY_FOR_THE_CLI))


def test_a_read_only_command_hides_pandas_only_in_its_own_process(tmp_path: Path) -> None:
    from ledger_helpers import network_with_subnet

    from taoflow.cli.app import run

    network_with_subnet(tmp_path, subnet="sn")
    args = ["ledger", "balance", "--json", "--home", str(tmp_path)]
    meta_path = list(sys.meta_path)
    in_process = subprocess.run(  # the same command through run(), as tests and embedders call it
        [
            sys.executable,
            "-c",
            "import sys; from taoflow.cli.app import run; sys.exit(run())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=CLI_IMPORT_TIMEOUT_S,
        check=True,
    )
    assert run(args) == 0
    assert sys.meta_path == meta_path  # run() leaves this process's imports alone
    own_process = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_IMPORT_TIMEOUT_S,
        check=True,
    )
    assert json.loads(own_process.stdout) == json.loads(in_process.stdout)
    assert len(json.loads(own_process.stdout)) == 4  # alice, bob, carol, dave
    code = "import sys; from taoflow.cli.app import main\ntry:\n    main()\nexcept SystemExit: pass"
    loaded = _modules_after(code, *args)
    assert "pyarrow" in loaded and "pandas" not in loaded


def test_submit_refuses_a_missing_file_before_loading_torch(tmp_path: Path) -> None:
    from ledger_helpers import network_with_subnet

    network_with_subnet(tmp_path, subnet="sn")
    missing = tmp_path / "nothing"
    args = [str(missing / "model.safetensors"), str(missing / "config.json"), "--subnet", "sn"]
    args += ["--wallet", "alice", "--home", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "submit", *args],
        capture_output=True,
        text=True,
        timeout=CLI_IMPORT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"error: cannot read the submission: {missing / 'model.safetensors'} is not a file\n"
    )
    code = "import sys; from taoflow.cli.app import main\ntry:\n    main()\nexcept SystemExit: pass"
    loaded = _modules_after(code, "submit", *args)
    assert loaded.isdisjoint({"torch", "datasets", "sklearn", "distributed"})


def test_the_licence_is_an_spdx_expression() -> None:
    """A licence table makes setuptools print a deprecation banner on every install."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
