"""Rich rendering of tables for the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

METAGRAPH_COLUMNS = (
    ("uid", "UID", "{}"),
    ("hotkey", "Hotkey", "{}"),
    ("stake_tao", "Stake τ", "{:,.4f}"),
    ("score", "Score", "{:.4f}"),
    ("validator_trust", "VTrust", "{:.5f}"),
    ("consensus", "Consensus", "{:.5f}"),
    ("incentive", "Incentive", "{:.5f}"),
    ("dividends", "Dividends", "{:.5f}"),
    ("emission_tao", "Emission τ", "{:,.6f}"),
)


def metagraph_table(
    rows: Sequence[Mapping[str, Any]], *, title: str, labels: Mapping[str, str] | None = None
) -> Table:
    """The metagraph as a rich table; hotkeys shown by wallet name where ``labels`` knows them."""
    from taoflow.names import label

    known = dict(labels or {})
    rows = [{**row, "hotkey": label(str(row.get("hotkey", "")), known)} for row in rows]
    present = [c for c in METAGRAPH_COLUMNS if not rows or c[0] in rows[0]]
    table = Table(title=title, header_style="bold cyan")
    for key, header, _ in present:
        table.add_column(header, justify="left" if key == "hotkey" else "right")
    for row in rows:
        table.add_row(
            *("—" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in present)
        )
    return table
