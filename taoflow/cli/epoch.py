"""``taoflow epoch run`` and ``taoflow track reconcile``: epochs as flow runs, their MLflow runs."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from taoflow.cli.common import (
    HomeOption,
    JsonOption,
    MlflowUriOption,
    console,
    err,
)
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import print_json as _print_json
from taoflow.settings import Settings, require_network

epoch_app = typer.Typer(no_args_is_help=True, help="Run epochs")
track_app = typer.Typer(no_args_is_help=True, help="MLflow tracking of committed epochs")


@epoch_app.command("run")
def epoch_run(
    subnet: Annotated[str, typer.Option("--subnet", help="Subnet name")] = "digits",
    home: HomeOption = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Join an existing Dask scheduler")
    ] = None,
    as_json: JsonOption = False,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Run the next epoch of SUBNET as a Prefect flow run (after backfilling MLflow runs)."""
    from taoflow.ledger.store import Ledger
    from taoflow.services import reuse_running_services

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    require_network(settings)
    settings.apply_environment()
    reuse = reuse_running_services(settings)  # `taoflow up`'s Prefect server and Dask cluster
    for line in reuse.lines():
        err.print(line, soft_wrap=True, markup=False, highlight=False)
    settings = reuse.settings
    if subnet not in Ledger.open(settings.ledger_dir).state().subnets:
        raise _fail(f"no subnet {subnet!r} in {settings.home}")
    from taoflow.oneshot import TemporaryServerFailed, epoch_cluster, temporary_prefect_server

    # Without `up`'s services, a temporary Prefect server and a Dask cluster start first and
    # boot while this process imports the flow stack and backfills MLflow.
    with contextlib.ExitStack() as services:
        prefect = services.enter_context(temporary_prefect_server(settings))
        dask = services.enter_context(epoch_cluster(settings.dask_address))
        _reconcile_quietly(settings)
        from taoflow.flows.epoch import epoch_flow
        from taoflow.names import account_labels
        from taoflow.queries import metagraph
        from taoflow.render import epoch_table

        try:
            if prefect is not None:
                prefect.wait_ready()
        except TemporaryServerFailed as exc:
            raise _fail(str(exc)) from None
        result = epoch_flow(subnet=subnet, home=str(settings.home), dask_address=dask)
        rows = metagraph(Ledger.open(settings.ledger_dir), subnet=subnet, epoch=result.epoch)
        if as_json:
            _print_json(
                {
                    "subnet": result.subnet,
                    "epoch": result.epoch,
                    "batch_no": result.batch_no,
                    "batch_hash": result.batch_hash,
                    "emission_rao": result.emission_rao,
                    "mlflow_run_id": result.mlflow_run_id,
                    "flow_run_id": result.flow_run_id,
                    "governance": [
                        {"proposal_id": e.proposal_id, "kind": e.kind, "summary": e.summary}
                        for e in (result.governance.entries if result.governance else ())
                    ],
                    "metagraph": rows,
                }
            )
            return
        labels = account_labels(settings.wallets_dir)
        for entry in result.governance.entries if result.governance else ():
            console.print(f"governance: {entry.summary}", soft_wrap=True, markup=False)
        console.print(epoch_table(rows, result=result, labels=labels))


def _reconcile(settings: Settings, *, max_backfills: int | None = None) -> Any:
    from taoflow.tasks.track_reconcile import BACKFILLS_PER_CALL_MAX, reconcile_tracking

    return reconcile_tracking(
        ledger_dir=settings.ledger_dir,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=settings.mlflow_artifacts_dir,
        outbox_root=settings.mlflow_outbox_dir,
        max_backfills=BACKFILLS_PER_CALL_MAX if max_backfills is None else max_backfills,
    )


def _reconcile_quietly(settings: Settings) -> None:
    """Backfill (bounded) before an epoch; tracking trouble is reported, never fatal."""
    try:
        report = _reconcile(settings)
    except Exception as exc:  # the epoch must run even when MLflow is down
        err.print(f"[yellow]MLflow backfill skipped:[/] {type(exc).__name__}: {exc}")
        return
    if report.flushed or report.backfilled or report.errors:
        err.print(f"MLflow: {report.summary}", soft_wrap=True)


@track_app.command("reconcile")
def track_reconcile(
    home: HomeOption = None,
    mlflow_uri: MlflowUriOption = None,
    max_backfills: Annotated[
        int, typer.Option(min=0, max=100_000, help="Epochs to backfill at most in this call")
    ] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Give every committed epoch exactly one finished MLflow run (flush queue, backfill)."""
    settings = Settings.load(home, mlflow_uri=mlflow_uri)
    require_network(settings)
    settings.apply_environment()
    report = _reconcile(settings, max_backfills=max_backfills)
    if as_json:
        _print_json(
            {
                "committed": report.committed,
                "flushed": list(report.flushed),
                "backfilled": list(report.backfilled),
                "remaining": report.remaining,
                "errors": list(report.errors),
                "tracking_uri": settings.mlflow_tracking_uri,
            }
        )
    else:
        console.print(report.summary, soft_wrap=True)
    if report.errors:
        raise typer.Exit(1)
