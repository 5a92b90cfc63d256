"""The explorer's governance pages: every proposal, its stake-weighted tally, its change, its
activation and its backtest, as plain data (the HTML page and ``/api/…`` render the same object).

Invariants:
- Numbers come from the ledger's state: the tally is ``LedgerState.proposal_tally`` (the
  committed tally once tallied, the votes so far before), the thresholds are the tally's own
  ``quorum_ppm`` / ``pass_ppm``; amounts stay integer rao, shares are floats for display only.
- A proposal's backtest report is read with ``tasks.governance.backtest.load_backtest``, which
  re-hashes the stored bytes: the page says whether the report under the home matches the hash
  the proposal names and describes its change. Nothing is written under the home; a report is
  re-read only when its file changed (``Backtests`` caches at most ``BACKTESTS_CACHED_MAX``
  views, keyed by the file's size and modification time).
- Every list is bounded (``PROPOSALS_SHOWN_MAX``, ``CHANGES_SHOWN_MAX``,
  ``BACKTEST_LINES_MAX``); every string goes to Jinja's autoescape or the JSON encoder as text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from taoflow.dashboards.explorer.data import ExplorerData
from taoflow.dashboards.explorer.pages import Labels, NotFound
from taoflow.ledger.governance import PROPOSAL_OPTIONS, Tally, deposit_outcome
from taoflow.ledger.proposals import ProposalRecord, ProposalStatus
from taoflow.ledger.state import LedgerState

PROPOSALS_SHOWN_MAX: Final = 500
CHANGES_SHOWN_MAX: Final = 64
BACKTEST_LINES_MAX: Final = 20
VOTERS_SHOWN_MAX: Final = 500
BACKTESTS_CACHED_MAX: Final = 1_024
PPM: Final = 1_000_000
SHA_SHOWN_CHARS: Final = 12
VALUE_CHARS_MAX: Final = 200
"""Longest change value shown (its JSON text, cut with an ellipsis)."""

STATUS_TEXT: Final = {
    ProposalStatus.OPEN: "open",
    ProposalStatus.PASSED: "passed, takes effect after the next epoch",
    ProposalStatus.REJECTED: "rejected",
    ProposalStatus.NO_QUORUM: "no quorum",
    ProposalStatus.ACTIVATED: "activated",
    ProposalStatus.ACTIVATION_FAILED: "passed, could not be applied",
}


@dataclass(frozen=True)
class BacktestView:
    """What the explorer can tell about one proposal's backtest report."""

    sha256: str
    sha_short: str
    stored: bool
    """A report file with this name exists under the home."""
    matches: bool
    """Its bytes hash to ``sha256`` and it parses as a report."""
    describes_change: bool | None
    """It is a backtest of this proposal's change (None: not checked, e.g. a signal)."""
    problem: str
    summary_lines: tuple[str, ...]


def _cut(text: str, limit: int = VALUE_CHARS_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Backtests:
    """Read-only, cached views of the reports under a home's backtest folder."""

    def __init__(self, backtests_dir: Path, *, labels: Mapping[str, str] | None = None) -> None:
        self.backtests_dir = backtests_dir
        self.labels: Mapping[str, str] = labels or {}
        """Account → the name a local wallet gives it (hotkeys in the summary lines)."""
        self._views: dict[tuple[str, str, int, int], BacktestView] = {}
        self._lock = threading.Lock()

    def view(self, sha256: str, *, change: tuple[str, dict[str, Any]] | None) -> BacktestView:
        """The view of report ``sha256``, checked against ``change`` = (subnet, values)."""
        from taoflow.tasks.governance.backtest import BacktestError, report_path

        try:
            path = report_path(self.backtests_dir, sha256)
            stat = path.stat()
        except (BacktestError, OSError, ValueError):
            return self._load(sha256, change=change)
        key = (sha256, json.dumps(change, sort_keys=True), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._views.get(key)
        if cached is not None:
            return cached
        view = self._load(sha256, change=change)
        with self._lock:
            if len(self._views) >= BACKTESTS_CACHED_MAX:
                self._views.clear()
            self._views[key] = view
        return view

    def _load(self, sha256: str, *, change: tuple[str, dict[str, Any]] | None) -> BacktestView:
        from taoflow.tasks.governance.backtest import (
            BacktestError,
            BacktestMismatch,
            check_backtest_for,
            load_backtest,
            report_path,
            summary_lines,
        )

        short = sha256[:SHA_SHOWN_CHARS]
        try:
            stored = report_path(self.backtests_dir, sha256).is_file()
        except (BacktestError, ValueError):
            stored = False
        try:
            backtest = load_backtest(self.backtests_dir, sha256)
        except (BacktestError, BacktestMismatch, ValueError, OSError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else "unreadable report"
            return BacktestView(sha256, short, stored, False, None, problem, ())
        lines = tuple(summary_lines(backtest, labels=self.labels)[:BACKTEST_LINES_MAX])
        if change is None:
            return BacktestView(sha256, short, True, True, None, "", lines)
        try:
            check_backtest_for(backtest, subnet=change[0], values=change[1])
        except (BacktestMismatch, BacktestError) as exc:
            return BacktestView(sha256, short, True, True, False, str(exc).splitlines()[0], lines)
        return BacktestView(sha256, short, True, True, True, "", lines)


def _share(part_rao: int, whole_rao: int) -> float:
    return part_rao / whole_rao if whole_rao > 0 else 0.0


def tally_view(t: Tally, *, final: bool, voters: int) -> dict[str, Any]:
    """The tally's numbers, its thresholds and whether each is met (shares of the total power
    for the bar; the pass ratio counts for and against only)."""
    decided_rao = t.for_rao + t.against_rao
    return {
        **t.to_payload(),
        "final": final,
        "voters": voters,
        "for_share": _share(t.for_rao, t.total_rao),
        "against_share": _share(t.against_rao, t.total_rao),
        "abstain_share": _share(t.abstain_rao, t.total_rao),
        "turnout_share": _share(t.turnout_rao, t.total_rao),
        "quorum_share": t.quorum_ppm / PPM,
        "pass_share": t.pass_ppm / PPM,
        "for_of_decided": None if decided_rao == 0 else t.for_rao / decided_rao,
        "pass_met": decided_rao > 0 and t.for_rao * PPM > t.pass_ppm * decided_rao,
    }


def _activation(record: ProposalRecord) -> dict[str, Any]:
    if record.status is ProposalStatus.ACTIVATED:
        effective = [{"subnet": s, "epoch": e} for s, e in record.effective_from_epoch]
        return {"state": "activated", "effective_from": effective, "problem": ""}
    if record.status is ProposalStatus.ACTIVATION_FAILED:
        return {"state": "failed", "effective_from": [], "problem": record.activation_problem}
    if record.status is ProposalStatus.PASSED:
        return {"state": "pending", "effective_from": [], "problem": ""}
    return {"state": "none", "effective_from": [], "problem": ""}


def _changes(record: ProposalRecord) -> list[dict[str, str]]:
    """One row per setting the proposal sets; an object setting's keys as ``yuma.kappa_u16``."""
    rows = [
        {"subnet": subnet, "setting": setting, "value": _cut(json.dumps(value, sort_keys=True))}
        for subnet, values in record.changes
        for name, raw in values
        for setting, value in (
            sorted((f"{name}.{key}", v) for key, v in raw.items())
            if isinstance(raw, dict)
            else [(name, raw)]
        )
    ]
    return rows[:CHANGES_SHOWN_MAX]


def voters(record: ProposalRecord, state: LedgerState, *, labels: Labels) -> list[dict[str, Any]]:
    """Who voted what, with the power each cast itself (its own and its delegations), largest
    first; at most ``VOTERS_SHOWN_MAX``."""
    rows = [
        {
            "coldkey": coldkey,
            "label": labels.of(coldkey),
            "choice": PROPOSAL_OPTIONS[choice],
            "power_rao": record.power.power_rao(coldkey),
        }
        for (proposal_id, coldkey), choice in state.votes.items()
        if proposal_id == record.proposal_id
    ]
    rows.sort(key=lambda row: (-int(row["power_rao"]), str(row["coldkey"])))
    return rows[:VOTERS_SHOWN_MAX]


def _backtest_change(record: ProposalRecord) -> tuple[str, dict[str, Any]] | None:
    """(subnet, values) a backtest of this proposal must describe; None unless one subnet."""
    if len(record.changes) != 1:
        return None
    subnet, values = record.changes[0]
    return subnet, {setting: value for setting, value in values}


def voters_of(state: LedgerState) -> dict[str, int]:
    """Proposal id → how many coldkeys voted on it (one pass over every vote)."""
    counts: dict[str, int] = {}
    for proposal_id, _ in state.votes:
        counts[proposal_id] = counts.get(proposal_id, 0) + 1
    return counts


def proposal_view(
    record: ProposalRecord,
    state: LedgerState,
    *,
    labels: Labels,
    backtests: Backtests,
    voters: int,
) -> dict[str, Any]:
    """One proposal as the governance pages show it."""
    current = state.proposal_tally(record.proposal_id)
    fate = "locked" if record.tally is None else deposit_outcome(record.tally)
    backtest = None
    if record.backtest_sha256:
        view = backtests.view(record.backtest_sha256, change=_backtest_change(record))
        backtest = {**view.__dict__, "summary_lines": list(view.summary_lines), "links": []}
    return {
        "id": record.proposal_id,
        "kind": record.kind.value,
        "title": record.title,
        "text": record.text,
        "proposer": record.proposer,
        "proposer_label": labels.of(record.proposer),
        "status": record.status.value,
        "status_text": STATUS_TEXT[record.status],
        "opens_block": record.opens_block,
        "closes_block": record.closes_block,
        "block": record.opens_block,
        "deposit_rao": record.deposit_rao,
        "deposit": fate,
        "options": list(PROPOSAL_OPTIONS),
        "votes": [current.for_rao, current.against_rao, current.abstain_rao],
        "tally": tally_view(current, final=record.tally is not None, voters=voters),
        "changes": _changes(record),
        "activation": _activation(record),
        "backtest": backtest,
    }


def governance(data: ExplorerData, labels: Labels, backtests: Backtests) -> dict[str, Any]:
    """Every proposal (newest first, at most ``PROPOSALS_SHOWN_MAX``) and the network's block."""
    state = data.state()
    ordered = sorted(state.proposals.values(), key=lambda p: (-p.opens_block, p.proposal_id))
    voters = voters_of(state)
    return {
        "block": state.block,
        "proposals": [
            proposal_view(
                p, state, labels=labels, backtests=backtests, voters=voters.get(p.proposal_id, 0)
            )
            for p in ordered[:PROPOSALS_SHOWN_MAX]
        ],
        "total": len(state.proposals),
    }


def proposal_page(
    data: ExplorerData, proposal_id: str, labels: Labels, backtests: Backtests
) -> dict[str, Any]:
    """One proposal's page; ``NotFound`` (404) when the ledger has no such proposal."""
    state = data.state()
    record = state.proposals.get(proposal_id)
    if record is None:
        raise NotFound(f"no proposal {proposal_id!r} in the ledger")
    count = voters_of(state).get(proposal_id, 0)
    view = proposal_view(record, state, labels=labels, backtests=backtests, voters=count)
    view["voters"] = voters(record, state, labels=labels)
    return {"block": state.block, "proposal": view}
