"""The epoch flow: governance → gather → evaluate (Dask) → consensus (DuckDB) → emit (ledger) →
track (MLflow).

Invariants: the flow only orders steps; an epoch is paid at most once because the ledger commit
is idempotent per (subnet, epoch); MLflow comes after the commit and its failure never undoes
or blocks the commit (it is reported in the result instead). Governance runs first: the tallies
and activations due at this boundary are committed (their own batch) before the epoch is
gathered, so the epoch sees the parameters in effect at its start.

Output: a flow run is named ``<subnet> · epoch <n>`` (:func:`flow_run_name`, the epoch it will
commit, read from the ledger when the run starts); each stage logs one concise line through the
run logger (the Prefect UI's Logs tab), the flow adds the MLflow run's line. Importing this module
quiets Dask to WARNING and routes the run loggers' INFO lines to the Prefect API only
(``tasks.run_logs``): a successful epoch prints nothing on stderr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypeVar, cast

import pyarrow as pa
from prefect import flow
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from taoflow.tasks import shells
from taoflow.tasks.governance.boundary import GovernanceCommit
from taoflow.tasks.metagraph import build_metagraph, epoch_tags
from taoflow.tasks.registry import champion_from_metagraph
from taoflow.tasks.run_logs import quiet_dask, route_run_logs, run_logger
from taoflow.tasks.summary import epoch_run_name, tracking_line

T = TypeVar("T")

quiet_dask()  # before any cluster of this process starts (the demo's starts before a flow)
route_run_logs()


def _q(value: T) -> T:
    """Pass ``value`` to a task without Prefect walking it (typed wrapper around ``quote``)."""
    return cast(T, quote(value))


@dataclass(frozen=True)
class EpochResult:
    subnet: str
    epoch: int
    batch_no: int | None
    batch_hash: str | None
    emission_rao: int
    metagraph: pa.Table
    mlflow_run_id: str | None
    mlflow_error: str | None
    flow_run_id: str | None
    stage_compute_s: dict[str, float] = field(default_factory=dict)
    """Seconds each stage task spent in its own stage call (see ``tasks.shells``)."""
    governance: GovernanceCommit | None = None
    """What the governance step committed before the epoch (no batch when nothing was due)."""


def next_epoch(*, subnet: str, home: str) -> int | None:
    """The epoch the next run of ``subnet`` in ``home`` commits; ``None`` if there is no such
    network or subnet (the gather task then fails with the reason). Creates nothing."""
    from taoflow.ledger.store import Ledger
    from taoflow.settings import NoNetwork, Settings, require_network

    settings = Settings.load(home)
    try:
        require_network(settings)
        state = Ledger.shared(settings.ledger_dir).state()
    except (NoNetwork, OSError, ValueError):
        return None
    if subnet not in state.subnets:
        return None
    return state.last_epoch.get(subnet, -1) + 1


def flow_run_name() -> str:
    """``<subnet> · epoch <n>`` for the run starting now (Prefect calls this at its start)."""
    parameters = flow_run.parameters
    subnet = str(parameters.get("subnet", "digits"))
    try:
        epoch = next_epoch(subnet=subnet, home=str(parameters.get("home", ".taoflow")))
    except Exception:  # a name must never fail the run: gather reports a broken ledger
        epoch = None
    return epoch_run_name(subnet, epoch)


@flow(name="epoch", flow_run_name=flow_run_name, log_prints=False, persist_result=False)
def epoch_flow(
    subnet: str = "digits",
    home: str = ".taoflow",
    dask_address: str | None = None,
) -> EpochResult:
    """Run the next epoch of ``subnet`` for the network stored in ``home``."""
    from taoflow.settings import Settings

    quiet_dask()  # again: a long-lived process (``serve``) may have reset logging since import
    route_run_logs()
    stage_compute_s = shells.start_stage_timings()
    settings = Settings.load(home, dask_address)
    governance = shells.governance(settings.ledger_dir, subnet)
    ctx = shells.gather(settings.ledger_dir, subnet)
    # _q(): Prefect would otherwise walk these large inputs (bond matrices…) for every task.
    evaluation = shells.evaluate(
        _q(ctx),
        artifacts_root=settings.artifacts_dir,
        dask_address=settings.dask_address,
        fetch_policy=_q(settings.fetch_policy()),
    )
    outcome = shells.consensus(_q(ctx), _q(evaluation))
    payouts, commit = shells.emit(
        settings.ledger_dir,
        _q(ctx),
        _q(outcome),
        _q(evaluation),
        wallets_dir=settings.wallets_dir,
    )
    metagraph = build_metagraph(
        ctx,
        outputs=outcome.outputs,
        payouts=payouts,
        scores=evaluation.mean_scores(),
        errors=evaluation.errors,
    )
    run_id = str(flow_run.id) if flow_run.id else None
    mlflow_run_id, mlflow_error = None, None
    try:
        mlflow_run_id, mlflow_error = shells.track(
            tracking_uri=settings.mlflow_tracking_uri,
            artifacts_dir=settings.mlflow_artifacts_dir,
            ctx=_q(ctx),
            metagraph=_q(metagraph),
            tags=epoch_tags(ctx, batch_hash=commit.batch_hash, flow_run_id=run_id),
            outbox_root=settings.mlflow_outbox_dir,
            weights=_q(outcome.weights),
            emission_rao=payouts.total_rao,
            commit=commit,
            champion=champion_from_metagraph(metagraph, artifacts_root=settings.artifacts_dir),
            ledger_dir=settings.ledger_dir,
        )
    except Exception as exc:  # MLflow must never undo or block the ledger commit
        mlflow_error = f"{type(exc).__name__}: {exc}"
    uri = settings.mlflow_tracking_uri
    line = tracking_line(run_id=mlflow_run_id, error=mlflow_error, tracking_uri=uri)
    run_logger().log(logging.WARNING if mlflow_error else logging.INFO, line)
    return EpochResult(
        subnet=subnet,
        epoch=ctx.epoch,
        batch_no=commit.batch_no,
        batch_hash=commit.batch_hash,
        emission_rao=payouts.total_rao,
        metagraph=metagraph,
        mlflow_run_id=mlflow_run_id,
        mlflow_error=mlflow_error,
        flow_run_id=run_id,
        stage_compute_s=dict(stage_compute_s),
        governance=governance,
    )
