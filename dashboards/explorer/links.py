"""Links from an epoch to its Prefect flow run and its MLflow run.

The ledger does not record either (an epoch depends only on the ledger and stored artifacts);
the epoch's MLflow run does: it is tagged ``taoflow.subnet``, ``taoflow.epoch`` and
``taoflow.prefect_flow_run_id`` by the epoch flow. ``EpochLinks`` reads those tags from the
tracking store in a background thread (at most every ``LOOKUP_INTERVAL_S``, at most
``RUNS_MAX`` runs per subnet) so that a page never waits on MLflow; until a lookup finishes, or
where no run exists, an epoch has no link and the page says so. The same lookup collects the
subnet's governance backtest runs (tagged ``taoflow.backtest_sha256``), so a proposal's backtest
links to its MLflow run (``for_backtest``) without a request-time call either.

Invariants: read-only (``search_runs`` only); every URL is built from the configured UI base
and ids the tracking store returned, each quoted for its URL position.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

LOOKUP_INTERVAL_S: Final = 30.0
RUNS_MAX: Final = 50_000
BACKTEST_SHA_TAG: Final = "taoflow.backtest_sha256"
"""The tag ``tasks.governance.backtest.track_backtest`` puts on a backtest's run."""
"""Runs read per subnet and lookup (one epoch run each; older epochs beyond it get no link)."""
SEARCH_PAGE_MAX: Final = 5_000

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRun:
    """What the tracking store says about one epoch's run."""

    experiment_id: str
    run_id: str
    flow_run_id: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    kind: str  # "prefect" | "mlflow"


class EpochLinks:
    """Prefect and MLflow links per (subnet, epoch); see the module docstring."""

    def __init__(
        self,
        *,
        prefect_ui_url: str | None,
        mlflow_ui_url: str | None,
        mlflow_tracking_uri: str | None,
    ) -> None:
        self.prefect_ui_url = (prefect_ui_url or "").rstrip("/") or None
        self.mlflow_ui_url = (mlflow_ui_url or "").rstrip("/") or None
        self.tracking_uri = mlflow_tracking_uri
        self._runs: dict[str, dict[int, EpochRun]] = {}
        self._backtests: dict[str, EpochRun] = {}
        """Backtest sha256 → its run (``flow_run_id`` empty)."""
        self._looked_at_s: dict[str, float] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.tracking_uri is not None and (
            self.prefect_ui_url is not None or self.mlflow_ui_url is not None
        )

    def for_epoch(self, subnet: str, epoch: int | None) -> list[Link]:
        """The links of ``subnet``'s ``epoch`` known now (a lookup starts in the background)."""
        if epoch is None or not self.enabled:
            return []
        self._maybe_look_up(subnet)
        run = self._runs.get(subnet, {}).get(int(epoch))
        if run is None:
            return []
        links = []
        if self.prefect_ui_url and run.flow_run_id:
            url = f"{self.prefect_ui_url}/runs/flow-run/{quote(run.flow_run_id, safe='')}"
            links.append(Link(label=f"Prefect flow run · epoch {epoch}", url=url, kind="prefect"))
        if self.mlflow_ui_url:
            from taoflow.tasks.track_series import ui_path

            path = ui_path(
                experiment_id=quote(run.experiment_id, safe=""), run_id=quote(run.run_id, safe="")
            )
            url = f"{self.mlflow_ui_url}{path}"
            links.append(Link(label=f"MLflow run · epoch {epoch}", url=url, kind="mlflow"))
        return links

    def for_backtest(self, subnet: str, sha256: str) -> list[Link]:
        """The MLflow link of the backtest report ``sha256`` of ``subnet`` known now."""
        if not self.enabled or not self.mlflow_ui_url:
            return []
        self._maybe_look_up(subnet)
        run = self._backtests.get(sha256)
        if run is None:
            return []
        from taoflow.tasks.track_series import ui_path

        path = ui_path(
            experiment_id=quote(run.experiment_id, safe=""), run_id=quote(run.run_id, safe="")
        )
        label = f"MLflow run · backtest {sha256[:12]}"
        return [Link(label=label, url=f"{self.mlflow_ui_url}{path}", kind="mlflow")]

    def warm_up(self, subnets: list[str]) -> None:
        """Start the background lookup of every subnet now (the first page then has links)."""
        if self.enabled:
            for subnet in subnets:
                self._maybe_look_up(subnet)

    def _maybe_look_up(self, subnet: str) -> None:
        now_s = time.monotonic()
        with self._lock:
            if subnet in self._busy:
                return
            if now_s - self._looked_at_s.get(subnet, -LOOKUP_INTERVAL_S) < LOOKUP_INTERVAL_S:
                return
            self._busy.add(subnet)
            self._looked_at_s[subnet] = now_s
        threading.Thread(target=self._look_up, args=(subnet,), daemon=True).start()

    def look_up_now(self, subnet: str) -> None:
        """Read ``subnet``'s epoch runs in this thread (tests and warm-up)."""
        with self._lock:
            self._busy.add(subnet)
        self._look_up(subnet)

    def _look_up(self, subnet: str) -> None:
        try:
            self._runs[subnet], backtests = self._search(subnet)
            self._backtests.update(backtests)
        except Exception as exc:  # the tracking store is optional for the explorer
            _LOG.warning("MLflow lookup for subnet %s failed: %s", subnet, exc)
        finally:
            with self._lock:
                self._busy.discard(subnet)

    def _search(self, subnet: str) -> tuple[dict[int, EpochRun], dict[str, EpochRun]]:
        """``subnet``'s epoch runs by epoch and its backtest runs by report sha256."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment = client.get_experiment_by_name(f"subnet-{subnet}")
        if experiment is None:
            return {}, {}
        runs: dict[int, EpochRun] = {}
        backtests: dict[str, EpochRun] = {}
        token = None
        while len(runs) < RUNS_MAX:
            page = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`taoflow.subnet` = '{subnet}'",
                max_results=SEARCH_PAGE_MAX,
                page_token=token,
            )
            for run in page:
                sha256 = run.data.tags.get(BACKTEST_SHA_TAG, "")
                if sha256 and sha256 not in backtests:
                    backtests[sha256] = EpochRun(experiment.experiment_id, run.info.run_id, "")
                epoch = run.data.tags.get("taoflow.epoch", "")
                if epoch.isdigit() and int(epoch) not in runs:
                    runs[int(epoch)] = EpochRun(
                        experiment_id=experiment.experiment_id,
                        run_id=run.info.run_id,
                        flow_run_id=run.data.tags.get("taoflow.prefect_flow_run_id", ""),
                    )
            token = page.token
            if not token:
                break
        return runs, backtests
