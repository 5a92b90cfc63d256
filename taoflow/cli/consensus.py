"""``taoflow consensus run``: multi-epoch Yuma scenarios through the DuckDB implementation.

Output: ``--format table`` (default) prints one row per (epoch, uid), with the active stake of a
v2 scenario and the uid's emission in rao (the exact split); ``--format json`` (or ``--json``)
prints the whole result; ``--out FILE`` writes the JSON result to FILE and prints nothing (a
refusal is still one line on stderr). A bad ``--format`` is a usage error (exit 2).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taoflow.cli.common import JsonOption, console
from taoflow.cli.common import fail as _fail


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


consensus_app = typer.Typer(no_args_is_help=True, help="Run Yuma consensus on scenarios")


SCENARIO_BYTES_MAX = 512 * 2**20
"""Largest scenario file read (its values are bounded again by the schema)."""
_SCALAR_LIST = re.compile(r"\[([^\[\]{}\"]*)\]")
"""A JSON list of numbers, booleans or nulls (no strings, nothing nested)."""


def scenario_json(result: object) -> str:
    """The result as indented JSON with each list of scalars on one line (a per-uid vector or a
    ``[validator, miner, u16]`` entry reads as one row)."""
    text = json.dumps(result, indent=1, sort_keys=True)
    return _SCALAR_LIST.sub(_one_line, text)


def _one_line(match: re.Match[str]) -> str:
    return "[" + ", ".join(item.strip() for item in match.group(1).split(",")) + "]"


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
        size_bytes = scenario.stat().st_size
        if size_bytes > SCENARIO_BYTES_MAX:
            limit = f"{SCENARIO_BYTES_MAX:,}-byte limit of a scenario file"
            raise _fail(f"{scenario}: {size_bytes:,} bytes, over the {limit}")
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
            out.write_text(scenario_json(result))
        except OSError as exc:
            raise _fail(f"cannot write {out}: {exc.strerror or exc}") from None
        return
    if as_json or output_format is OutputFormat.JSON:
        typer.echo(scenario_json(result))
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
