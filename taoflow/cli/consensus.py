"""``taoflow consensus run``: multi-epoch Yuma scenarios through the DuckDB implementation.

Output: ``--format table`` (default) prints one row per (epoch, uid), with the active stake of a
v2 scenario and the uid's emission in rao (the exact split); ``--format json`` (or ``--json``)
prints the whole result; ``--out FILE`` writes the JSON result to FILE and prints nothing (a
refusal is still one line on stderr). A bad ``--format`` is a usage error (exit 2).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taoflow.cli.common import JsonOption, console
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import print_json as _print_json


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


consensus_app = typer.Typer(no_args_is_help=True, help="Run Yuma consensus on scenarios")


@consensus_app.command("run")
def consensus_run(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario JSON (see tasks/consensus/scenario.md)")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write every epoch's outputs (JSON) here, print nothing"),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table or json (on stdout)")
    ] = OutputFormat.TABLE,
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
        try:
            out.write_text(json.dumps(result, indent=1, sort_keys=True))
        except OSError as exc:
            raise _fail(f"cannot write {out}: {exc.strerror or exc}") from None
        return
    if as_json or output_format is OutputFormat.JSON:
        _print_json(result)
        return
    table = Table(title=f"consensus — {scenario.name}", header_style="bold cyan")
    columns = ("Epoch", "UID", "Permit", "Active", "VTrust", "Consensus", "Incentive", "Dividends")
    for column in (*columns, "Emission rao"):
        table.add_column(column, justify="right")
    for row in summarise(result):
        active = row["active_stake"]  # None for a v1 result
        table.add_row(
            str(row["epoch"]),
            str(row["uid"]),
            "✓" if row["permit"] else "",
            "" if active is None else f"{active:.5f}",
            f"{row['validator_trust']:.5f}",
            f"{row['consensus']:.5f}",
            f"{row['incentive']:.5f}",
            f"{row['dividends']:.5f}",
            f"{row['emission_rao']:,}",
        )
    console.print(table)
