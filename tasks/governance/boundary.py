"""The governance step of an epoch boundary: commit the tally and activation entries now due.

The epoch flow (and the simulator) run it before gathering an epoch, so an epoch always sees the
parameters in effect at its start: a change activated here applies from the epoch gathered next.

Invariants:
- What is due is computed by the ledger alone (``LedgerState.governance_entries_due``); this
  step only commits it, as one batch, under the ledger's writer lock, and the ledger re-checks
  every entry. Two runs racing commit the same entries: the second finds them ``Exists``.
- Nothing is committed when nothing is due; the result then has no batch.
- At most ``GOVERNANCE_COMMIT_ATTEMPTS_MAX`` attempts when another writer moved the ledger
  between reading what was due and committing it.
- ``commit_governance_on`` works on an open ``Ledger`` (the simulator's); ``commit_governance``
  opens the shared one of a directory. Both read and commit through the same object, so the
  state they read what is due from is the one the commit checks against.
- ``markdown`` (the epoch flow's artifact) is built from the committed entries' own payloads:
  amounts are integer rao, shown as exact τ text; titles and problems are escaped for markdown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.governance import Tally
from taoflow.ledger.payouts import tao_text
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.store import Ledger

GOVERNANCE_COMMIT_ATTEMPTS_MAX: Final = 3
PPM: Final = 1_000_000
MARKDOWN_TEXT_CHARS_MAX: Final = 200
"""Longest proposal id or problem text quoted in the markdown artifact."""


@dataclass(frozen=True)
class GovernanceEntry:
    """One committed tally or activation, as the flow reports it."""

    proposal_id: str
    kind: str
    """``tally`` or ``activation``."""
    summary: str
    tally: Tally | None = None
    """The tally's numbers (tally entries only)."""
    deposit: str = ""
    """``returned`` or ``burned`` (tally entries only)."""
    deposit_rao: int = 0
    effective_from_epoch: tuple[tuple[str, int], ...] = ()
    """(subnet, first epoch under the change) per subnet (activation entries only)."""
    problem: str = ""
    """Why a passed change could not be applied (activation entries only)."""


@dataclass(frozen=True)
class GovernanceCommit:
    batch_no: int | None
    batch_hash: str | None
    entries: tuple[GovernanceEntry, ...]
    problem: str = ""
    """Why the due entries were not committed (the epoch then runs on; see ``shells``)."""


def describe(tx: Tx) -> GovernanceEntry:
    """A one-line account of a tally or activation entry."""
    payload = json.loads(tx.payload)
    proposal_id = str(payload["proposal_id"])
    if tx.kind == Kind.PROPOSAL_TALLY:
        outcome = "passed" if payload["passed"] else "not passed"
        if not payload["quorum_met"]:
            outcome = "no quorum"
        turnout_pct = 100 * payload["turnout_rao"] / max(payload["total_rao"], 1)
        summary = (
            f"{proposal_id}: {outcome} (for {tao_text(payload['for_rao'])} τ, against "
            f"{tao_text(payload['against_rao'])} τ, abstain {tao_text(payload['abstain_rao'])} τ;"
            f" turnout {turnout_pct:.2f}%); deposit {payload['deposit']}"
        )
        numbers = Tally(**{name: payload[name] for name in Tally.__dataclass_fields__})
        return GovernanceEntry(
            proposal_id,
            "tally",
            summary,
            tally=numbers,
            deposit=str(payload["deposit"]),
            deposit_rao=tx.amount_rao,
        )
    effective = tuple(sorted((str(s), int(e)) for s, e in payload["effective_from_epoch"].items()))
    if payload["problem"]:
        summary = f"{proposal_id}: not applied: {payload['problem']}"
    else:
        epochs = ", ".join(f"{s} from epoch {e}" for s, e in effective)
        summary = f"{proposal_id}: in effect for {epochs}"
    return GovernanceEntry(
        proposal_id,
        "activation",
        summary,
        effective_from_epoch=effective,
        problem=str(payload["problem"]),
    )


def commit_governance(ledger_dir: Path) -> GovernanceCommit:
    """Commit what governance has due at this boundary (see the module docstring)."""
    return commit_governance_on(Ledger.shared(ledger_dir))


def commit_governance_on(ledger: Ledger) -> GovernanceCommit:
    """``commit_governance`` on an open ``ledger`` (see the module docstring)."""
    for attempt in range(GOVERNANCE_COMMIT_ATTEMPTS_MAX):
        due = ledger.state().governance_entries_due()
        if not due:
            return GovernanceCommit(batch_no=None, batch_hash=None, entries=())
        try:
            result = ledger.commit(due)
        except BatchRejected:
            if attempt + 1 == GOVERNANCE_COMMIT_ATTEMPTS_MAX:
                raise
            continue
        return GovernanceCommit(
            batch_no=result.batch_no,
            batch_hash=result.batch_hash,
            entries=tuple(describe(tx) for tx in due),
        )
    raise AssertionError("unreachable")  # the loop returns or raises


# ---- the epoch flow's artifact ---------------------------------------------------------------


def _md(text: str) -> str:
    """``text`` as inert markdown table text: one line, bounded, markup characters escaped."""
    line = " ".join(text.split())
    if len(line) > MARKDOWN_TEXT_CHARS_MAX:
        line = line[: MARKDOWN_TEXT_CHARS_MAX - 1] + "…"
    for char in "\\`*_{}[]()<>#+!|~":
        line = line.replace(char, "\\" + char)
    return line


def _ppm_text(ppm: int) -> str:
    return f"{ppm / (PPM // 100):g} %"


def _tally_row(entry: GovernanceEntry) -> str:
    t = entry.tally
    assert t is not None  # tally entries always carry their numbers
    turnout = f"{100 * t.turnout_rao / t.total_rao:.2f} %" if t.total_rao else "–"
    quorum = f"{_ppm_text(t.quorum_ppm)} {'met' if t.quorum_met else 'missed'}"
    return (
        f"| {_md(entry.proposal_id)} | {tao_text(t.for_rao)} | {tao_text(t.against_rao)} | "
        f"{tao_text(t.abstain_rao)} | {turnout} | {quorum} | {_ppm_text(t.pass_ppm)} | "
        f"{'yes' if t.passed else 'no'} | {tao_text(entry.deposit_rao)} τ {entry.deposit} |"
    )


def _power_line(entry: GovernanceEntry) -> str:
    t = entry.tally
    assert t is not None
    return (
        f"- {_md(entry.proposal_id)}: {tao_text(t.turnout_rao)} τ cast of "
        f"{tao_text(t.total_rao)} τ of voting power at its opening block"
    )


def markdown(commit: GovernanceCommit, *, title: str) -> str:
    """The committed entries as markdown: a tally table and the activations."""
    lines = [f"# {_md(title)}", ""]
    if commit.batch_no is not None:
        lines += [f"Batch {commit.batch_no} `{commit.batch_hash}`", ""]
    tallies = [e for e in commit.entries if e.kind == "tally"]
    activations = [e for e in commit.entries if e.kind == "activation"]
    if tallies:
        lines += [
            "## Tallies",
            "",
            "| proposal | for τ | against τ | abstain τ | turnout | quorum | pass over | passed "
            "| deposit |",
            "|---|---:|---:|---:|---|---|---|---|---|",
            *(_tally_row(e) for e in tallies),
            "",
            *(_power_line(e) for e in tallies),
            "",
        ]
    if activations:
        lines += ["## Activations", ""]
        for e in activations:
            if e.problem:
                lines.append(f"- {_md(e.proposal_id)}: not applied: {_md(e.problem)}")
            else:
                epochs = ", ".join(f"{_md(s)} from epoch {n}" for s, n in e.effective_from_epoch)
                lines.append(f"- {_md(e.proposal_id)}: in effect for {epochs}")
        lines.append("")
    return "\n".join(lines)
