"""``taoflow consensus run``: multi-epoch Yuma scenarios through the DuckDB implementation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taoflow.cli.common import (
    JsonOption,
    console,
    err,
)
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import print_json as _print_json

consensus_app = typer.Typer(no_args_is_help=True, help="Run Yuma consensus on scenarios")


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
