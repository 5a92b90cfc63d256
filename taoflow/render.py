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


def verify_lines(report: Any, checked: Any = None) -> list[str]:
    """What ``ledger verify`` prints for a ledger that verifies: chain, writer, finality."""
    lines = [f"[green]ok[/]: {report.batches} batches, {report.rows} rows, head {report.head_hash}"]
    if report.writer_key:
        lines.append(f"  every batch signed by the network's writer key {report.writer_key[:16]}…")
    else:
        lines.append("  [yellow]unsigned[/]: this ledger names no writer key (no network entry)")
    if report.rules_from_batch > report.batches:
        lines.append(
            f"  rules: the newest verified snapshot is of the head (batch {report.batches}); "
            f"every batch hashed and every signature checked"
        )
    elif report.rules_from_batch > 1:
        lines.append(
            f"  rules replayed from batch {report.rules_from_batch} (after the newest verified "
            f"snapshot); every batch hashed and every signature checked"
        )
    else:
        lines.append("  rules replayed from genesis")
    for subnet, f in sorted(report.finality.items()):
        share = f.signed_ppm / 10_000
        lines.append(
            f"  {subnet}: epoch {f.epoch} co-signed by {f.signers}/{f.validators} validators "
            f"holding {share:.2f} % of validator stake"
        )
    if checked is not None:
        lines.append(f"  cross-check: {checked.summary}")
    return lines
