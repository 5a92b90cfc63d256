"""The environment a user runs ``taoflow`` in (shared by conftest and tests that start it)."""

from __future__ import annotations

import os
from pathlib import Path


def demo_env(home: Path) -> dict[str, str]:
    """The environment of a user running ``taoflow`` on ``home`` (no inherited Prefect/MLflow)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["TAOFLOW_HOME"] = str(home)
    return env
