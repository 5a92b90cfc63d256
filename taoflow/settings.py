"""Settings and process environment for every taoflow command.

Invariants:
- All state of a network lives under one home directory (``--home`` / ``TAOFLOW_HOME``, default
  ``./.taoflow``): ledger, artifacts, Prefect's database, MLflow's database and artifacts.
- Privacy and offline defaults are set before prefect, mlflow or datasets are imported: no
  telemetry, no Hub access, services bound to 127.0.0.1, no pickle deserialisation in MLflow.
  A value the user exported explicitly wins, except the pickle switch, which is always off.
- MLflow: ``--mlflow-uri`` (``Settings.load(mlflow_uri=…)``), else ``TAOFLOW_MLFLOW_URI``, else a
  ``MLFLOW_TRACKING_URI`` the user exported, else the home's SQLite database. The home's default
  is exported with a marker (``TAOFLOW_MLFLOW_URI_DEFAULTED``) so a later load for another home
  does not mistake it for the user's choice; a user's URI is never overwritten.
- Every path built from a name that came from the ledger or a user goes through
  ``Settings.path_under_home`` (``ledger.names.path_under``): resolved, symlinks included, and
  refused with one line unless it is inside the home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taoflow.ledger.names import path_under

if TYPE_CHECKING:
    from taoflow.tasks.remote_store import FetchPolicy

HOME_ENV = "TAOFLOW_HOME"
DASK_ADDRESS_ENV = "TAOFLOW_DASK_ADDRESS"
ARTIFACT_STORE_ENV = "TAOFLOW_ARTIFACT_STORE"
"""An fsspec URL (e.g. ``s3://bucket/taoflow``) where submissions are published; unset: local."""
ALLOWED_STORES_ENV = "TAOFLOW_ALLOWED_STORES"
"""More store URLs (comma-separated) validators may fetch artifacts from, besides the one above."""
ALLOW_PRIVATE_STORES_ENV = "TAOFLOW_ALLOW_PRIVATE_STORES"
"""``1``: stores on loopback, private or link-local addresses may be fetched from (test nets)."""
FETCH_DEADLINE_ENV = "TAOFLOW_FETCH_DEADLINE_S"
"""Seconds the fetch of one model's artifact may take (default ``MODEL_DEADLINE_S_DEFAULT``)."""
MLFLOW_URI_ENV = "TAOFLOW_MLFLOW_URI"
"""The MLflow tracking (and registry) URI; ``--mlflow-uri`` overrides it."""
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_DEFAULTED_ENV = "TAOFLOW_MLFLOW_URI_DEFAULTED"
"""Set to the URI that ``apply_environment`` exported as the home's default (not the user's)."""
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
    # Prefect's 20 s for its temporary API server is too short on a loaded machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}
FORCED: dict[str, str] = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}


@dataclass(frozen=True)
class Settings:
    """Where a network keeps its data, and how to reach its services."""

    home: Path
    dask_address: str | None = None
    mlflow_uri: str | None = None
    """The MLflow URI chosen by the user (option or environment); ``None``: the home's SQLite."""

    @classmethod
    def load(
        cls,
        home: Path | str | None = None,
        dask_address: str | None = None,
        *,
        mlflow_uri: str | None = None,
    ) -> Settings:
        chosen = Path(home) if home else Path(os.environ.get(HOME_ENV, DEFAULT_HOME))
        address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
        return cls(
            home=chosen.expanduser().resolve(),
            dask_address=address,
            mlflow_uri=mlflow_uri or user_mlflow_uri(),
        )

    def path_under_home(self, *parts: str) -> Path:
        """``home / parts…``, resolved; ``PathOutsideRoot`` (one line) if it leaves the home."""
        return path_under(self.home, *parts)

    @property
    def ledger_dir(self) -> Path:
        return self.home / "ledger"

    @property
    def artifact_store_url(self) -> str | None:
        """Remote artifact store (fsspec URL) from ``TAOFLOW_ARTIFACT_STORE``, if any."""
        return os.environ.get(ARTIFACT_STORE_ENV) or None

    def fetch_policy(self) -> FetchPolicy:
        """Where validators may fetch artifacts from: the configured store(s), nothing else.

        Raises ``ValueError`` (one line) for a malformed store URL or deadline.
        """
        from taoflow.tasks.remote_store import MODEL_DEADLINE_S_DEFAULT, FetchPolicy

        extra = os.environ.get(ALLOWED_STORES_ENV, "")
        urls = [self.artifact_store_url or "", *extra.split(",")]
        deadline = os.environ.get(FETCH_DEADLINE_ENV) or str(MODEL_DEADLINE_S_DEFAULT)
        try:
            deadline_s = float(deadline)
        except ValueError:
            raise ValueError(f"{FETCH_DEADLINE_ENV} must be a number of seconds") from None
        return FetchPolicy(
            store_urls=tuple(url.strip() for url in urls if url.strip()),
            allow_private=os.environ.get(ALLOW_PRIVATE_STORES_ENV, "") == "1",
            model_deadline_s=deadline_s,
        )

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
    def default_mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or self.default_mlflow_uri

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlruns"

    @property
    def mlflow_outbox_dir(self) -> Path:
        """MLflow runs waiting for MLflow to be reachable again."""
        return self.home / "mlflow-outbox"

    @property
    def governance_backtests_dir(self) -> Path:
        """Backtest reports attached to governance proposals, one ``<sha256>.parquet`` each
        (``tasks.governance.backtest``)."""
        return self.home / "governance" / "backtests"

    @property
    def services_file(self) -> Path:
        """Where a running ``taoflow up`` records its services (see ``taoflow.services``)."""
        return self.home / "services.json"

    @property
    def service_logs_dir(self) -> Path:
        """Output of the servers ``taoflow up`` and ``taoflow serve`` start."""
        return self.home / "logs"

    def apply_environment(self) -> None:
        """Export the defaults above plus this home's Prefect and MLflow locations."""
        self.home.mkdir(parents=True, exist_ok=True)
        for key, value in PRIVACY_DEFAULTS.items():
            os.environ.setdefault(key, value)
        os.environ.update(FORCED)
        os.environ[HOME_ENV] = str(self.home)
        os.environ["PREFECT_HOME"] = str(self.prefect_home)
        os.environ[MLFLOW_TRACKING_URI_ENV] = self.mlflow_tracking_uri
        if self.mlflow_uri is None:
            os.environ[MLFLOW_DEFAULTED_ENV] = self.mlflow_tracking_uri
        else:
            os.environ.pop(MLFLOW_DEFAULTED_ENV, None)
        os.environ.setdefault("MLFLOW_REGISTRY_URI", self.mlflow_tracking_uri)


def user_mlflow_uri() -> str | None:
    """The MLflow URI the user chose through the environment, or ``None``.

    ``TAOFLOW_MLFLOW_URI`` first, then ``MLFLOW_TRACKING_URI`` unless it is the value this module
    exported itself as some home's default.
    """
    chosen = os.environ.get(MLFLOW_URI_ENV)
    if chosen:
        return chosen
    exported = os.environ.get(MLFLOW_TRACKING_URI_ENV)
    if exported and exported != os.environ.get(MLFLOW_DEFAULTED_ENV):
        return exported
    return None


class NoNetwork(LookupError):
    """There is no network (ledger) in the chosen home."""


def require_network(settings: Settings) -> None:
    """Raise ``NoNetwork`` with a one-line hint unless ``settings.home`` holds a ledger."""
    if not settings.home.exists():
        raise NoNetwork(f"no network at {settings.home}: run `taoflow demo` or pass --home")
    batches = settings.ledger_dir / "batches"
    has_batches = batches.is_dir() and any(batches.glob("*.arrow"))
    if not (settings.ledger_dir / "COMMITS").exists() and not has_batches:
        # Batch files without a log are a damaged ledger, not a missing one: the ledger itself
        # says so and names `taoflow ledger repair`.
        raise NoNetwork(f"{settings.home} holds no ledger: run `taoflow demo` or pass --home")
