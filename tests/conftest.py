"""Test-wide environment: offline, no telemetry, no pickle in MLflow, quiet Prefect."""

from __future__ import annotations

import os
import socket

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"


import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_helpers import demo_env

DEMO_EPOCHS = 2
"""Epochs the shared demo network starts with (modules may add more: never assume a count)."""
DEMO_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real demo network (``taoflow demo --epochs 2``) shared by the integration modules.

    Built once per test session, as a user would (a subprocess: Prefect's local API, a Dask
    LocalCluster, DuckDB, the Arrow ledger, MLflow on SQLite). Modules that change it only add
    epochs; a test that damages files works on a copy.
    """
    home = tmp_path_factory.mktemp("demo") / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "demo", "--epochs", str(DEMO_EPOCHS)],
        env=demo_env(home),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home


@pytest.fixture(autouse=True)
def _restore_environment() -> object:
    """CLI commands run in-process export settings (PREFECT_HOME, MLflow URIs…); undo that."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port someone else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])
