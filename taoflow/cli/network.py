"""``taoflow network simulate``: fast-forward a subnet with synthetic scores (``tasks.simulate``).

The arguments are checked before anything is written: a bad value is one line on stderr and
exit code 2. A home without a ledger gets a simulated network (derived SIMULATION keys: never
for real money); a home whose network has the subnet is continued from its next epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from taoflow.cli.common import error_line
from taoflow.settings import HOME_ENV, Settings

if TYPE_CHECKING:
    from taoflow.tasks.simulate import SimulationSummary

USAGE_EXIT_CODE = 2
TABLE_WIDTH_MIN = 150

network_app = typer.Typer(no_args_is_help=True, help="Simulated networks")
err = Console(stderr=True)


@network_app.command("simulate")
def simulate_command(
    subnet: Annotated[str, typer.Option("--subnet", "-s", help="Subnet name")],
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs to simulate")],
    miners: Annotated[
        int | None, typer.Option("--miners", help="Miners of a new network [default: 256]")
    ] = None,
    validators: Annotated[
        int | None, typer.Option("--validators", help="Validators of a new network [default: 64]")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of keys, salt, scores")] = None,
    home: Annotated[
        Path | None, typer.Option("--home", envvar=HOME_ENV, help="Network data directory")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Seeded synthetic scores through the real consensus and ledger: no training, no Prefect,
    no MLflow. Continues the home's network if it already has SUBNET."""
    from taoflow.tasks.simulate import EpochReport, SimulationError, SimulationSpec, simulate

    given = {"miners": miners, "validators": validators, "seed": seed}
    chosen: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    try:
        spec = SimulationSpec(subnet=subnet, epochs=epochs, **chosen)
    except SimulationError as exc:
        error_line(str(exc))
        raise typer.Exit(USAGE_EXIT_CODE) from None
    settings = Settings.load(home)
    progress = Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[seconds]:.3f} s/epoch"),
        TimeRemainingColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
    )
    with progress:
        bar = progress.add_task("simulate", total=spec.epochs, epoch="-", seconds=0.0)

        def advance(report: EpochReport) -> None:
            progress.update(bar, advance=1, epoch=report.epoch, seconds=report.seconds)

        try:
            summary = simulate(settings.ledger_dir, spec, on_epoch=advance)
        except SimulationError as exc:
            error_line(str(exc))
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2, sort_keys=True))
        return
    _print_summary(summary)


def _tao(amount_rao: int) -> str:
    from taoflow.ledger.schema import RAO_PER_TAO  # pyarrow: only once a summary exists

    whole, rest = divmod(amount_rao, RAO_PER_TAO)
    return f"{whole:,}.{rest:09d}"


def _print_summary(summary: SimulationSummary) -> None:
    console = Console() if Console().is_terminal else Console(width=TABLE_WIDTH_MIN)
    table = Table(title=f"simulated {summary.subnet}", header_style="bold cyan")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("network", "created (simulation keys)" if summary.genesis else "continued"),
        ("miners / validators", f"{summary.miners} / {summary.validators}"),
        ("epochs committed", f"{summary.epochs} ({summary.first_epoch}…{summary.last_epoch})"),
        ("ledger batches", str(summary.batches)),
        ("ledger bytes on disk", f"{summary.ledger_bytes:,}"),
        ("bytes on disk per epoch", f"{summary.bytes_per_epoch:,}"),
        (
            "  batch / records",
            f"{summary.batch_bytes_per_epoch:,} / {summary.record_bytes_per_epoch:,}",
        ),
        ("seconds per epoch (mean)", f"{summary.seconds_per_epoch:.3f}"),
        ("emitted τ", _tao(summary.emitted_rao)),
        ("supply identity", "holds" if summary.supply_identity_holds else "BROKEN"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
