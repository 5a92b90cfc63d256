"""Settings and process environment for every taoflow command.

Invariants:
- All state of a network lives under one home directory (``--home`` / ``TAOFLOW_HOME``, default
  ``./.taoflow``): ledger, artifacts, Prefect's database, MLflow's database and artifacts.
- Privacy and offline defaults are set before prefect, mlflow or datasets are imported: no
  telemetry, no Hub access, services bound to 127.0.0.1, no pickle deserialisation in MLflow.
  A value the user exported explicitly wins, except the pickle switch, which is always off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "TAOFLOW_HOME"
DASK_ADDRESS_ENV = "TAOFLOW_DASK_ADDRESS"
ARTIFACT_STORE_ENV = "TAOFLOW_ARTIFACT_STORE"
"""An fsspec URL (e.g. ``s3://bucket/taoflow``) where submissions are published; unset: local."""
DEFAULT_HOME = Path(".taoflow")

PRIVACY_DEFAULTS: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "PREFECT_SERVER_API_HOST": "127.0.0.1",
    "PREFECT_UI_ENABLED": "true",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_ENABLED": "true",
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}
FORCED: dict[str, str] = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}


@dataclass(frozen=True)
class Settings:
    """Where a network keeps its data, and how to reach its services."""

    home: Path
    dask_address: str | None = None

    @classmethod
    def load(cls, home: Path | str | None = None, dask_address: str | None = None) -> Settings:
        chosen = Path(home) if home else Path(os.environ.get(HOME_ENV, DEFAULT_HOME))
        address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
        return cls(home=chosen.expanduser().resolve(), dask_address=address)

    @property
    def ledger_dir(self) -> Path:
        return self.home / "ledger"

    @property
    def artifact_store_url(self) -> str | None:
        """Remote artifact store (fsspec URL) from ``TAOFLOW_ARTIFACT_STORE``, if any."""
        return os.environ.get(ARTIFACT_STORE_ENV) or None

    @property
    def wallets_dir(self) -> Path:
        return self.home / "wallets"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlruns"

    @property
    def mlflow_outbox_dir(self) -> Path:
        """MLflow runs waiting for MLflow to be reachable again."""
        return self.home / "mlflow-outbox"

    def apply_environment(self) -> None:
        """Export the defaults above plus this home's Prefect and MLflow locations."""
        self.home.mkdir(parents=True, exist_ok=True)
        for key, value in PRIVACY_DEFAULTS.items():
            os.environ.setdefault(key, value)
        os.environ.update(FORCED)
        os.environ[HOME_ENV] = str(self.home)
        os.environ["PREFECT_HOME"] = str(self.prefect_home)
        os.environ["MLFLOW_TRACKING_URI"] = self.mlflow_tracking_uri
        os.environ.setdefault("MLFLOW_REGISTRY_URI", self.mlflow_tracking_uri)


class NoNetwork(LookupError):
    """There is no network (ledger) in the chosen home."""


def require_network(settings: Settings) -> None:
    """Raise ``NoNetwork`` with a one-line hint unless ``settings.home`` holds a ledger."""
    if not settings.home.exists():
        raise NoNetwork(f"no network at {settings.home}: run `taoflow demo` or pass --home")
    if not (settings.ledger_dir / "COMMITS").exists():
        raise NoNetwork(f"{settings.home} holds no ledger: run `taoflow demo` or pass --home")
