"""The ``taoflow`` command line (typer + rich). Errors are one clear line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from taoflow.cli_wallet import wallet_app
from taoflow.settings import HOME_ENV, Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="taoflow network CLI")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and verify the ledger")
app.add_typer(ledger_app, name="ledger")
app.add_typer(wallet_app, name="wallet")
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


def _settings(home: Path | None) -> Settings:
    settings = Settings.load(home)
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
) -> None:
    """Run a local network: genesis (once), then EPOCHS real epochs."""
    from taoflow.demo import run_demo

    settings = Settings.load(home, dask_address)
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
def ledger_verify(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Re-hash every batch and replay the rules from genesis."""
    from ledger.errors import LedgerError
    from ledger.store import Ledger

    settings = _settings(home)
    try:
        report = Ledger(settings.ledger_dir).verify()
    except LedgerError as exc:
        raise _fail(str(exc), 2) from None
    if as_json:
        _print_json(report.__dict__)
    elif report.ok:
        console.print(
            f"[green]ok[/]: {report.batches} batches, {report.rows} rows, head {report.head_hash}"
        )
    else:
        err.print(f"[red]FAILED[/] at batch {report.first_bad_batch}: {report.problem}")
    if not report.ok:
        raise typer.Exit(1)


@ledger_app.command("supply")
def ledger_supply(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Total issued, burned, Σ balances, Σ stakes, Σ locked (rao), and whether they agree."""
    from ledger.store import Ledger
    from ledger.views import LedgerViews

    settings = _settings(home)
    supply = LedgerViews(Ledger(settings.ledger_dir).table()).supply()
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
            table.add_row(key.removesuffix("_rao"), f"{value:,}", f"{value / 1e9:,.9f}")
    console.print(table)
    console.print("identity " + ("[green]holds[/]" if supply["identity_holds"] else "[red]BROKEN"))
    if not supply["identity_holds"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
