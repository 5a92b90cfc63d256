"""Test-wide environment: offline, no telemetry, no pickle in MLflow, quiet Prefect."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"


import pytest


@pytest.fixture(autouse=True)
def _restore_environment() -> object:
    """CLI commands run in-process export settings (PREFECT_HOME, MLflow URIs…); undo that."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
