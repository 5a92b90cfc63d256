"""The ``proposal-backtest`` flow: the backtest a parameter-change proposal carries.

Given a subnet and a change (``SubnetChange.values`` as a JSON object, e.g.
``{"yuma": {"kappa_u16": 39321}}``), the flow recomputes the last ``epochs`` committed epochs of
the subnet under it (``tasks.governance.backtest.run_backtest``), stores the report as
``<sha256>.parquet`` under the home's ``governance/backtests``, logs one MLflow run in the
subnet's experiment (tags ``taoflow.kind = backtest`` and ``taoflow.backtest_sha256``) and
publishes a markdown artifact ``backtest-<sha[:12]>`` and a table artifact of the largest
deltas. It returns the sha256 the proposal names.

Invariants: the flow only orders steps and never writes to the ledger. The home is a run
parameter (empty: ``TAOFLOW_HOME``, else the default home). A bad change, subnet or epoch count
fails the run with one line before anything is stored or logged. The report is
content-addressed, so a rerun with the same ledger and change stores nothing new and names the
same file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from prefect import flow
from pydantic import Field

from taoflow.flows.parameters import SubnetName
from taoflow.ledger.store import Ledger
from taoflow.settings import Settings, require_network
from taoflow.tasks.governance.backtest import (
    BACKTEST_EPOCHS_DEFAULT,
    BACKTEST_EPOCHS_MAX,
    SHA_SHOWN_CHARS,
    Backtest,
    BacktestSummary,
    markdown,
    run_backtest,
    run_name,
    store_backtest,
    track_backtest,
    values_from_json,
)
from taoflow.tasks.run_logs import run_logger

TABLE_ROWS_MAX: Final = 50
"""Rows of the table artifact (the largest deltas)."""
Publish = Callable[..., Any]
BacktestEpochs = Annotated[int, Field(ge=1, le=BACKTEST_EPOCHS_MAX)]


@dataclass(frozen=True)
class BacktestResult:
    """What the flow produced: the hash a proposal names, where the report is, its run."""

    sha256: str
    path: str
    mlflow_run_id: str
    summary: BacktestSummary


def artifact_key(backtest: Backtest) -> str:
    """``backtest-<sha[:12]>`` (Prefect keys: lowercase letters, digits, dashes)."""
    return f"backtest-{backtest.sha256[:SHA_SHOWN_CHARS]}"


def publish(
    backtest: Backtest,
    *,
    proposal_title: str,
    create_markdown: Publish,
    create_table: Publish,
) -> None:
    """The report as Prefect artifacts: markdown summary and a table of the largest deltas."""
    key = artifact_key(backtest)
    text = markdown(backtest, proposal_title=proposal_title)
    create_markdown(markdown=text, key=key, description=run_name(backtest))
    rows = backtest.deltas.slice(0, TABLE_ROWS_MAX).to_pylist()
    for row in rows:
        pct = row["delta_pct"]
        row["delta_pct"] = None if pct is None else round(pct, 4)
    create_table(table=rows, key=f"{key}-deltas", description=run_name(backtest))


@flow(name="proposal-backtest", flow_run_name="backtest · {subnet}")
def backtest_flow(
    home: str,
    subnet: SubnetName,
    values_json: str,
    epochs: BacktestEpochs = BACKTEST_EPOCHS_DEFAULT,
    proposal_title: str = "",
) -> BacktestResult:
    """Backtest a subnet change over the last committed epochs, for a governance proposal.

    Args:
        home: The network's home directory (empty: TAOFLOW_HOME or the default home).
        subnet: The subnet the change applies to.
        values_json: The change as a JSON object of setting → value, e.g.
            {"yuma": {"kappa_u16": 39321}} or {"emission_split_ppm": {...}}.
        epochs: How many of the last committed epochs to recompute.
        proposal_title: The proposal's title, recorded with the MLflow run.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    values = values_from_json(values_json)
    settings = Settings.load(home or None)
    require_network(settings)
    ledger = Ledger.open(settings.ledger_dir)
    backtest = run_backtest(ledger, subnet=subnet, values=values, epochs=epochs)
    path = store_backtest(settings.governance_backtests_dir, backtest)
    run_id = track_backtest(
        backtest,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=settings.mlflow_artifacts_dir,
        proposal_title=proposal_title,
    )
    publish(
        backtest,
        proposal_title=proposal_title,
        create_markdown=create_markdown_artifact,
        create_table=create_table_artifact,
    )
    run_logger().info(
        f"backtest {backtest.sha256[:SHA_SHOWN_CHARS]} of {subnet} epochs "
        f"{backtest.first_epoch}..{backtest.last_epoch}: stored at {path}, MLflow run {run_id}"
    )
    return BacktestResult(
        sha256=backtest.sha256, path=str(path), mlflow_run_id=run_id, summary=backtest.summary
    )
