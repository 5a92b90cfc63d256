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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.store import Ledger

GOVERNANCE_COMMIT_ATTEMPTS_MAX: Final = 3


@dataclass(frozen=True)
class GovernanceEntry:
    """One committed tally or activation, as the flow reports it."""

    proposal_id: str
    kind: str
    """``tally`` or ``activation``."""
    summary: str


@dataclass(frozen=True)
class GovernanceCommit:
    batch_no: int | None
    batch_hash: str | None
    entries: tuple[GovernanceEntry, ...]


def describe(tx: Tx) -> GovernanceEntry:
    """A one-line account of a tally or activation entry."""
    payload = json.loads(tx.payload)
    proposal_id = str(payload["proposal_id"])
    if tx.kind == Kind.PROPOSAL_TALLY:
        outcome = "passed" if payload["passed"] else "not passed"
        if not payload["quorum_met"]:
            outcome = "no quorum"
        summary = (
            f"{proposal_id}: {outcome} (for {payload['for_rao']:,} rao, against "
            f"{payload['against_rao']:,}, abstain {payload['abstain_rao']:,}; turnout "
            f"{payload['turnout_rao']:,} of {payload['total_rao']:,}); deposit {payload['deposit']}"
        )
        return GovernanceEntry(proposal_id, "tally", summary)
    if payload["problem"]:
        summary = f"{proposal_id}: not applied: {payload['problem']}"
    else:
        epochs = ", ".join(
            f"{s} from epoch {e}" for s, e in sorted(payload["effective_from_epoch"].items())
        )
        summary = f"{proposal_id}: in effect for {epochs}"
    return GovernanceEntry(proposal_id, "activation", summary)


def commit_governance(ledger_dir: Path) -> GovernanceCommit:
    """Commit what governance has due at this boundary (see the module docstring)."""
    ledger = Ledger.shared(ledger_dir)
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
