"""Rich rendering of tables for the terminal.

Invariants: ``epoch run``, ``metagraph`` and the demo print the metagraph through
``metagraph_table`` with the same columns (``METAGRAPH_COLUMNS``); τ amounts are shown from
the exact rao integers (rounded for display only, never through a float).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from rich.table import Table

from taoflow.ledger.schema import RAO_PER_TAO

METAGRAPH_COLUMNS: Final = (
    ("uid", "UID"),
    ("hotkey", "Hotkey"),
    ("stake_rao", "Stake τ"),
    ("score", "Score"),
    ("validator_trust", "VTrust"),
    ("consensus", "Consensus"),
    ("incentive", "Incentive"),
    ("dividends", "Dividends"),
    ("emission_rao", "Emission τ"),
    ("permit", "Permit"),
)
"""The metagraph's columns, the same for ``epoch run``, ``metagraph`` and the demo."""
TAO_DECIMALS: Final = {"stake_rao": 4, "emission_rao": 6}
"""Decimals shown of the τ amounts (the rao integers stay exact in ``--json``)."""
TAO_DECIMALS_EXACT: Final = 9
"""1 rao = 1e-9 τ: nine decimals show an amount exactly."""
SHARE_DECIMALS: Final = 5


def tao_rounded(amount_rao: int, *, decimals: int) -> str:
    """``amount_rao`` in τ rounded (half to even, exact integer arithmetic) to ``decimals``."""
    unit = RAO_PER_TAO // 10**decimals
    units, rest = divmod(amount_rao, unit)
    if 2 * rest > unit or (2 * rest == unit and units % 2):
        units += 1
    whole, frac = divmod(units, 10**decimals)
    return f"{whole:,}.{frac:0{decimals}d}" if decimals else f"{whole:,}"


def metagraph_title(subnet: str, *, epoch: int | None, later_batches: int = 0) -> str:
    """``digits — after epoch 3``: the state the metagraph rows show."""
    if epoch is None:
        return f"{subnet} — no epoch yet"
    if later_batches:
        return f"{subnet} — now ({later_batches} batch(es) after epoch {epoch})"
    return f"{subnet} — after epoch {epoch}"


def metagraph_cell(key: str, value: Any) -> str:
    """One metagraph cell as text: τ amounts from exact rao, shares, scores, the permit."""
    if value is None:
        return "—"
    if key in TAO_DECIMALS:
        return tao_rounded(int(value), decimals=TAO_DECIMALS[key])
    if key == "permit":
        return "✓" if value else ""
    if key == "score":
        return f"{float(value):.4f}"
    if isinstance(value, float):
        return f"{value:.{SHARE_DECIMALS}f}"
    return str(value)


def metagraph_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    caption: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Table:
    """The metagraph as a rich table; hotkeys shown by wallet name where ``labels`` knows them."""
    from taoflow.names import label

    known = dict(labels or {})
    rows = [{**row, "hotkey": label(str(row.get("hotkey", "")), known)} for row in rows]
    table = Table(title=title, caption=caption, header_style="bold cyan")
    for key, header in METAGRAPH_COLUMNS:
        table.add_column(header, justify="left" if key == "hotkey" else "right")
    for row in rows:
        table.add_row(*(metagraph_cell(key, row.get(key)) for key, _ in METAGRAPH_COLUMNS))
    return table


def epoch_table(
    rows: Sequence[Mapping[str, Any]], *, result: Any, labels: Mapping[str, str] | None = None
) -> Table:
    """After an epoch run (a ``flows.epoch.EpochResult``): ``rows`` (the metagraph right after
    its commit), titled like ``metagraph --epoch N``, with its batch and emission."""
    emission = tao_rounded(result.emission_rao, decimals=TAO_DECIMALS_EXACT)
    return metagraph_table(
        rows,
        title=metagraph_title(result.subnet, epoch=result.epoch),
        caption=f"batch {result.batch_no} · emission {emission} τ",
        labels=labels,
    )


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
