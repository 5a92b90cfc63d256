"""The ``taoflow`` command line (typer + rich). Errors are one clear line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
from taoflow.settings import HOME_ENV, Settings, require_network

app = typer.Typer(no_args_is_help=True, add_completion=False, help="taoflow network CLI")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and verify the ledger")
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
TABLE_WIDTH_MIN = 150
console = Console()
if not console.is_terminal:
    console = Console(width=TABLE_WIDTH_MIN)
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Network data directory (default ./.taoflow)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
MlflowUriOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri",
        envvar="TAOFLOW_MLFLOW_URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI if set, else the home's SQLite)",
    ),
]


def _settings(home: Path | None) -> Settings:
    """Settings of an existing network (fails with one line if there is none at ``home``)."""
    settings = Settings.load(home)
    require_network(settings)
    settings.apply_environment()
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


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
    from ledger.store import Ledger
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


@ledger_app.command("verify")
def ledger_verify(
    home: HomeOption = None,
    as_json: JsonOption = False,
    cross_check: Annotated[
        bool,
        typer.Option(
            "--cross-check",
            help="Also compare each epoch's batch hash with what MLflow and Prefect published",
        ),
    ] = False,
) -> None:
    """Re-hash every batch, check signatures and replay the rules from genesis."""
    from ledger.errors import LedgerError
    from ledger.store import Ledger

    settings = _settings(home)
    try:
        report = Ledger(settings.ledger_dir).verify()
    except LedgerError as exc:
        raise _fail(str(exc), 2) from None
    checked = None
    if cross_check and report.ok:
        from taoflow.crosscheck import cross_check as run_cross_check

        checked = run_cross_check(settings)
    if as_json:
        body = {
            **{k: v for k, v in report.__dict__.items() if k != "finality"},
            "finality": {
                subnet: {**f.__dict__, "signed_ppm": f.signed_ppm}
                for subnet, f in report.finality.items()
            },
        }
        if checked is not None:
            body["cross_check"] = {
                "ok": checked.ok,
                "epochs": checked.epochs,
                "sources": {c.source: c.__dict__ for c in checked.sources},
            }
        _print_json(body)
    elif report.ok:
        from taoflow.render import verify_lines

        for line in verify_lines(report, checked):
            console.print(line, soft_wrap=True)
    else:
        err.print(
            f"[red]FAILED[/] at batch {report.first_bad_batch}: {report.problem}", soft_wrap=True
        )
    if not report.ok or (checked is not None and not checked.ok):
        raise typer.Exit(1)


@ledger_app.command("repair")
def ledger_repair(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Rebuild a damaged or missing commit log from the batch files (never deletes data)."""
    from ledger.store import Ledger

    settings = Settings.load(home)
    if not (settings.ledger_dir / "batches").is_dir():
        raise _fail(f"no ledger at {settings.ledger_dir}: nothing to repair")
    settings.apply_environment()
    ledger = Ledger(settings.ledger_dir)
    report = ledger.repair()
    records = ledger.records()
    head = records[-1].batch_hash if records else "-"
    if as_json:
        _print_json({**report.__dict__, "batches": len(records), "head_hash": head})
        return
    for action in report.actions:
        console.print(f"• {action}", soft_wrap=True)
    summary = "nothing to repair" if not report.actions else "repaired"
    console.print(f"[green]{summary}[/]: {len(records)} batches, head {head}", soft_wrap=True)


AsOfEpochOption = Annotated[
    int | None,
    typer.Option("--as-of-epoch", min=0, help="State right after this epoch of --subnet"),
]
SubnetOption = Annotated[str, typer.Option("--subnet", help="Subnet for --as-of-epoch")]


def _views_and_bound(
    settings: Settings, *, as_of_epoch: int | None, subnet: str
) -> tuple[Any, int | None]:
    from ledger.store import Ledger
    from ledger.views import LedgerViews

    views = LedgerViews(Ledger(settings.ledger_dir).table())
    if as_of_epoch is None:
        return views, None
    batch = views.batch_of_epoch(subnet=subnet, epoch=as_of_epoch)
    if batch is None:
        raise _fail(f"epoch {as_of_epoch} of subnet {subnet!r} is not in the ledger")
    return views, batch


def _resolve_account(settings: Settings, value: str) -> str:
    """An account id from a hex id, a wallet name (its coldkey) or wallet/hotkey."""
    from taoflow.names import UnknownAccount, resolve_account

    try:
        return resolve_account(settings.wallets_dir, value)
    except UnknownAccount as exc:
        raise _fail(str(exc)) from None


def _tao(rao: int) -> str:
    return f"{rao / 1e9:,.9f}"


@ledger_app.command("log")
def ledger_log(
    home: HomeOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Newest entries to show")] = 30,
    kind: Annotated[str, typer.Option(help="Only entries of this kind")] = "",
    account: Annotated[str, typer.Option(help="Only entries touching this account")] = "",
    as_json: JsonOption = False,
) -> None:
    """The newest ledger entries."""
    from ledger.schema import Kind
    from taoflow.names import account_labels, label

    settings = _settings(home)
    if kind and kind not in {k.value for k in Kind}:
        raise _fail(f"unknown kind {kind!r}; kinds: {', '.join(k.value for k in Kind)}")
    resolved = _resolve_account(settings, account) if account else ""
    views, _ = _views_and_bound(settings, as_of_epoch=None, subnet="")
    rows = views.log(limit=limit, kind=kind, account=resolved)
    if as_json:
        _print_json(rows)
        return
    labels = account_labels(settings.wallets_dir)
    table = Table(title="ledger log (newest first)", header_style="bold cyan")
    for column in ("batch", "kind", "tx id", "from", "to / hotkey", "τ"):
        table.add_column(column, justify="right" if column == "τ" else "left")
    for row in rows:
        target = row["dest"] or row["hotkey"]
        table.add_row(
            str(row["batch_no"]),
            row["kind"],
            row["tx_id"],
            label(row["coldkey"], labels) if row["coldkey"] else "",
            label(target, labels) if target else "",
            _tao(row["amount_rao"]),
        )
    console.print(table)


@ledger_app.command("balance")
def ledger_balance(
    home: HomeOption = None,
    account: Annotated[str, typer.Option(help="Only this account (id or wallet name)")] = "",
    as_of_epoch: AsOfEpochOption = None,
    subnet: SubnetOption = "digits",
    as_json: JsonOption = False,
) -> None:
    """Free balances per coldkey (optionally as of an epoch)."""
    from taoflow.names import account_labels, label

    settings = _settings(home)
    resolved = _resolve_account(settings, account) if account else ""
    views, bound = _views_and_bound(settings, as_of_epoch=as_of_epoch, subnet=subnet)
    rows = [
        r for r in views.balances(as_of_batch=bound) if not resolved or r["coldkey"] == resolved
    ]
    if resolved and not rows:
        rows = [{"coldkey": resolved, "balance_rao": 0}]
    if as_json:
        _print_json(rows)
        return
    labels = account_labels(settings.wallets_dir)
    table = Table(title="balances", header_style="bold cyan")
    table.add_column("coldkey")
    table.add_column("balance τ", justify="right")
    for row in rows:
        table.add_row(label(row["coldkey"], labels), _tao(row["balance_rao"]))
    console.print(table)


@ledger_app.command("stakes")
def ledger_stakes(
    home: HomeOption = None,
    account: Annotated[str, typer.Option(help="Only this coldkey or hotkey")] = "",
    as_of_epoch: AsOfEpochOption = None,
    subnet: SubnetOption = "digits",
    as_json: JsonOption = False,
) -> None:
    """Stake per (coldkey, hotkey) (optionally as of an epoch)."""
    from taoflow.names import account_labels, label

    settings = _settings(home)
    resolved = _resolve_account(settings, account) if account else ""
    views, bound = _views_and_bound(settings, as_of_epoch=as_of_epoch, subnet=subnet)
    rows = [
        r
        for r in views.stakes(as_of_batch=bound)
        if not resolved or resolved in (r["coldkey"], r["hotkey"])
    ]
    if as_json:
        _print_json(rows)
        return
    labels = account_labels(settings.wallets_dir)
    table = Table(title="stakes", header_style="bold cyan")
    for column in ("coldkey", "hotkey", "stake τ"):
        table.add_column(column, justify="right" if column == "stake τ" else "left")
    for row in rows:
        table.add_row(
            label(row["coldkey"], labels), label(row["hotkey"], labels), _tao(row["stake_rao"])
        )
    console.print(table)


@ledger_app.command("supply")
def ledger_supply(
    home: HomeOption = None,
    as_of_epoch: AsOfEpochOption = None,
    subnet: SubnetOption = "digits",
    as_json: JsonOption = False,
) -> None:
    """Total issued, burned, Σ balances, Σ stakes, Σ locked (rao), and whether they agree."""
    settings = _settings(home)
    views, bound = _views_and_bound(settings, as_of_epoch=as_of_epoch, subnet=subnet)
    supply = views.supply(as_of_batch=bound)
    held = supply["balances_rao"] + supply["stakes_rao"] + supply["locked_rao"]
    supply["identity_holds"] = supply["issued_rao"] - supply["burned_rao"] == held
    if as_json:
        _print_json(supply)
        return
    table = Table(title="supply", header_style="bold cyan")
    table.add_column("term")
    table.add_column("rao", justify="right")
    table.add_column("τ", justify="right")
    for key, value in supply.items():
        if key.endswith("_rao"):
            table.add_row(key.removesuffix("_rao"), f"{value:,}", _tao(value))
    console.print(table)
    console.print("identity " + ("[green]holds[/]" if supply["identity_holds"] else "[red]BROKEN"))
    if not supply["identity_holds"]:
        raise typer.Exit(1)


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
    from ledger.store import Ledger

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    settings.apply_environment()
    if subnet not in Ledger.open(settings.ledger_dir).state().subnets:
        raise _fail(f"no subnet {subnet!r} in {settings.home}")
    _reconcile_quietly(settings)
    from taoflow.services import make_ephemeral_prefect_server_die_with_parent

    make_ephemeral_prefect_server_die_with_parent()
    from flows.epoch import epoch_flow
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
    from tasks.track_reconcile import BACKFILLS_PER_CALL_MAX, reconcile_tracking

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
    from tasks.consensus.scenario import InvalidScenario, run_scenario, summarise

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

    from ledger.errors import LedgerError
    from taoflow.wallet import WalletError
    from tasks.errors import StageError

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
