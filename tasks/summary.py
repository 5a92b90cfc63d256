"""Human summaries of an epoch: the Prefect markdown artifact and table rows. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ROWS_MAX = 256


def artifact_key(subnet: str, suffix: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    clean = "".join(c if c.isalnum() else "-" for c in subnet.lower()).strip("-") or "subnet"
    return f"{clean}-{suffix}"


def table_rows(metagraph: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keep = (
        "uid",
        "hotkey",
        "role",
        "stake_tao",
        "score",
        "validator_trust",
        "consensus",
        "incentive",
        "dividends",
        "emission_tao",
        "error",
    )
    return [{k: row.get(k) for k in keep} for row in list(metagraph)[:ROWS_MAX]]


def markdown_summary(
    *,
    subnet: str,
    epoch: int,
    block: int,
    emission_rao: int,
    batch_no: int | None,
    batch_hash: str | None,
    metagraph: Sequence[Mapping[str, Any]],
) -> str:
    miners = [r for r in metagraph if r.get("role") == "miner"]
    best = max(miners, key=lambda r: r.get("incentive") or 0.0, default=None)
    failed = [r for r in metagraph if r.get("error")]
    lines = [
        f"# {subnet} — epoch {epoch}",
        "",
        f"* block {block}, emission **{emission_rao / 1e9:,.9f} τ**",
        f"* ledger batch {batch_no} `{batch_hash or 'already committed'}`",
        f"* {len(miners)} miners, {len(metagraph) - len(miners)} validators",
    ]
    if best is not None:
        lines.append(
            f"* top miner: uid {best['uid']} (score {best.get('score') or 0:.4f}, "
            f"incentive {best.get('incentive') or 0:.4f})"
        )
    if failed:
        lines.append(f"* {len(failed)} submission(s) failed evaluation:")
        lines.extend(f"  * uid {r['uid']}: {r['error']}" for r in failed[:20])
    return "\n".join(lines) + "\n"
