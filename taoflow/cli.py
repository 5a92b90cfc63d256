"""The ``taoflow`` command line (typer + rich). Errors are one clear line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from taoflow.cli_common import (
    HomeOption,
    JsonOption,
    MlflowUriOption,
    console,
    err,
)
from taoflow.cli_common import fail as _fail
from taoflow.cli_common import print_json as _print_json
from taoflow.cli_common import settings_for as _settings
from taoflow.cli_ledger import ledger_app
from taoflow.cli_network import (
    miner_app,
    register,
    stake_app,
    submissions,
    submit,
    subnet_app,
    transfer,
    weights_app,
)
from taoflow.cli_simulate import network_app
from taoflow.cli_wallet import wallet_app
from taoflow.settings import Settings, require_network

app = typer.Typer(no_args_is_help=True, add_completion=False, help="taoflow network CLI")
app.add_typer(ledger_app, name="ledger")
app.add_typer(wallet_app, name="wallet")
consensus_app = typer.Typer(no_args_is_help=True, help="Run Yuma consensus on scenarios")
app.add_typer(consensus_app, name="consensus")
app.add_typer(subnet_app, name="subnet")
app.add_typer(miner_app, name="miner")
app.add_typer(weights_app, name="weights")
epoch_app = typer.Typer(no_args_is_help=True, help="Run epochs")
app.add_typer(epoch_app, name="epoch")
track_app = typer.Typer(no_args_is_help=True, help="MLflow tracking of committed epochs")
app.add_typer(track_app, name="track")
app.add_typer(stake_app, name="stake")
app.add_typer(network_app, name="network")
app.command("transfer")(transfer)
app.command("register")(register)
app.command("submit")(submit)
app.command("submissions")(submissions)


@app.command()
def demo(
    home: HomeOption = None,
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="Epochs to run")] = 3,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the home and start over")] = False,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Join an existing Dask scheduler")
    ] = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Run a local network: genesis (once), then EPOCHS real epochs."""
    from taoflow.demo import run_demo
    from taoflow.services import make_ephemeral_prefect_server_die_with_parent

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    settings.apply_environment()
    make_ephemeral_prefect_server_die_with_parent()
    run_demo(settings, epochs=epochs, fresh=fresh, console=console)


@app.command()
def metagraph(
    subnet: Annotated[str, typer.Option("--subnet", help="Subnet name")] = "digits",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The subnet's metagraph after its last epoch."""
    from taoflow.ledger.store import Ledger
    from taoflow.queries import NoSuchSubnet
    from taoflow.queries import metagraph as query
    from taoflow.render import metagraph_table

    settings = _settings(home)
    try:
        rows = query(Ledger.open(settings.ledger_dir), subnet=subnet)
    except NoSuchSubnet:
        raise _fail(f"no subnet {subnet!r} in {settings.home}") from None
    if as_json:
        _print_json(rows)
        return
    epoch = rows[0]["epoch"] if rows else None
    from taoflow.names import account_labels

    labels = account_labels(settings.wallets_dir)
    console.print(metagraph_table(rows, title=f"{subnet} — after epoch {epoch}", labels=labels))


@app.command()
def up(
    home: HomeOption = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect UI/API port")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port")] = 5000,
) -> None:
    """Start the Prefect server and the MLflow UI on 127.0.0.1; Ctrl-C stops both."""
    from taoflow.services import ServiceError, running, wait_forever

    settings = _settings(home)
    try:
        with running(
            settings, prefect_port=prefect_port, mlflow_port=mlflow_port, report=console.print
        ):
            console.print(
                f"serving {settings.home}; in another terminal: "
                f"PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api taoflow serve. Ctrl-C stops."
            )
            wait_forever()
    except ServiceError as exc:
        raise _fail(str(exc)) from None
    console.print("stopped")


@app.command()
def serve(
    home: HomeOption = None,
    fast: Annotated[bool, typer.Option("--fast", help="0.1 s blocks for local use")] = False,
    block_time_s: Annotated[float, typer.Option(min=0.01, help="Seconds per block")] = 12.0,
    prefect_port: Annotated[
        int, typer.Option(help="Port of the Prefect server started when none is configured")
    ] = 4200,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Join an existing Dask scheduler")
    ] = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Serve one scheduled epoch deployment per subnet (tempo × block time)."""
    import os

    from taoflow.services import (
        BLOCK_TIME_S_FAST,
        ServiceError,
        make_ephemeral_prefect_server_die_with_parent,
        running,
        serve_epochs,
    )

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    settings.apply_environment()
    make_ephemeral_prefect_server_die_with_parent()
    seconds = BLOCK_TIME_S_FAST if fast else block_time_s
    try:
        if os.environ.get("PREFECT_API_URL"):
            serve_epochs(settings, block_time_s=seconds, dask_address=settings.dask_address)
            return
        with running(settings, prefect_port=prefect_port, mlflow_port=None, report=console.print):
            os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
            serve_epochs(settings, block_time_s=seconds, dask_address=settings.dask_address)
    except ServiceError as exc:
        raise _fail(str(exc)) from None


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

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    settings.apply_environment()
    if subnet not in Ledger.open(settings.ledger_dir).state().subnets:
        raise _fail(f"no subnet {subnet!r} in {settings.home}")
    _reconcile_quietly(settings)
    from taoflow.services import make_ephemeral_prefect_server_die_with_parent

    make_ephemeral_prefect_server_die_with_parent()
    from taoflow.flows.epoch import epoch_flow
    from taoflow.names import account_labels
    from taoflow.render import metagraph_table

    result = epoch_flow(subnet=subnet, home=str(settings.home), dask_address=dask_address)
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
                "metagraph": result.metagraph.to_pylist(),
            }
        )
        return
    title = f"{subnet} — epoch {result.epoch} — batch {result.batch_no}"
    labels = account_labels(settings.wallets_dir)
    console.print(metagraph_table(result.metagraph.to_pylist(), title=title, labels=labels))


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


@consensus_app.command("run")
def consensus_run(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario JSON (see tasks/consensus/scenario.md)")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write every epoch's outputs here")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a multi-epoch consensus scenario through the DuckDB implementation."""
    from taoflow.tasks.consensus.scenario import InvalidScenario, run_scenario, summarise

    try:
        document = json.loads(scenario.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {scenario}: {exc}") from None
    if not isinstance(document, dict):
        raise _fail(f"{scenario}: the scenario must be a JSON object")
    try:
        result = run_scenario(document)
    except InvalidScenario as exc:
        raise _fail(f"{scenario}: {exc}") from None
    if out is not None:
        out.write_text(json.dumps(result, indent=1, sort_keys=True))
        err.print(f"wrote {len(result['epochs'])} epochs to {out}")
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"consensus — {scenario.name}", header_style="bold cyan")
    for column in ("epoch", "uid", "permit", "VTrust", "Consensus", "Incentive", "Dividends"):
        table.add_column(column, justify="right")
    for row in summarise(result):
        table.add_row(
            str(row["epoch"]),
            str(row["uid"]),
            "✓" if row["permit"] else "",
            f"{row['validator_trust']:.5f}",
            f"{row['consensus']:.5f}",
            f"{row['incentive']:.5f}",
            f"{row['dividends']:.5f}",
        )
    console.print(table)


DEBUG_ENV = "TAOFLOW_DEBUG"


def main() -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, no traceback."""
    import os

    from taoflow.ledger.errors import LedgerError
    from taoflow.tasks.errors import StageError
    from taoflow.wallet import WalletError

    try:
        app()
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        expected: tuple[type[Exception], ...] = (
            LedgerError,
            WalletError,
            OSError,
            ValueError,
            LookupError,
            StageError,
        )
        if isinstance(exc, expected):
            err.print(f"[red]error:[/] {exc}", soft_wrap=True)
            raise SystemExit(1) from None
        # Anything else is a bug: say so, still no traceback by default.
        err.print(
            f"[red]unexpected error:[/] {type(exc).__name__}: {exc} "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            soft_wrap=True,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
