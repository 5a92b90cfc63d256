"""Proposals as the ledger keeps them: typed records, the system entries that close them, and
their JSON documents.

A ``proposal`` transaction opens a ``ProposalRecord`` (its change, its deposit, the voting-power
snapshot of that block). The network closes it with two system entries, built here from the
state alone so that anyone can recompute them:

- ``proposal_tally`` (id ``governance/<proposal id>/tally``): due at the first epoch boundary
  whose block reaches the proposal's ``closes_block``; its payload is the ``governance.tally`` of
  the votes over the snapshot plus the deposit's fate; its ``amount_rao`` is the deposit.
- ``proposal_activation`` (id ``governance/<proposal id>/activation``): due for a passed change
  once one more epoch boundary has passed after its tally; its payload names, per subnet, the
  first epoch the new parameters apply to, or the one-line reason the change could not be applied
  to the parameters then in effect (then nothing changes).

Invariants:
- Records are immutable; the state replaces a record when its status moves
  ``open → passed | rejected | no_quorum`` and ``passed → activated | activation_failed``.
  A tallied record keeps the power of its voters only (the tally holds the totals), so the
  state grows with votes, not with proposals × accounts.
- ``expected_tally_payload`` and ``expected_activation_payload`` are pure functions of the record
  and the votes / configs given; the ledger accepts a tally or an activation entry only when its
  payload equals them exactly, so a tally forged by hand is refused.
- ``record_from_doc(record_to_doc(r)) == r`` (snapshots store the document).
- Ids under ``GOVERNANCE_ID_PREFIX`` belong to these system entries only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.governance import (
    PowerSnapshot,
    ProposalKind,
    ProposalSpec,
    Tally,
    deposit_outcome,
    merged_config,
    tally,
)

GOVERNANCE_ID_PREFIX: Final = "governance/"
DEPOSIT_LOCK_PREFIX: Final = "proposal/"
"""``LedgerState.locked`` key of a proposal's deposit (subnet names never contain a slash)."""
GOVERNANCE_ENTRIES_PER_BATCH_MAX: Final = 256
"""At most this many tally/activation entries are committed in one governance batch."""


class ProposalStatus(StrEnum):
    OPEN = "open"
    PASSED = "passed"
    """Passed; waiting for the next epoch boundary to take effect."""
    REJECTED = "rejected"
    NO_QUORUM = "no_quorum"
    ACTIVATED = "activated"
    ACTIVATION_FAILED = "activation_failed"


@dataclass(frozen=True)
class ProposalRecord:
    """One proposal in the ledger state."""

    proposal_id: str
    proposer: str
    kind: ProposalKind
    title: str
    text: str
    deposit_rao: int
    opens_block: int
    closes_block: int
    backtest_sha256: str | None
    changes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    """(subnet, ((setting, JSON value), …)) sorted by subnet; empty for a signal."""
    power: PowerSnapshot
    status: ProposalStatus = ProposalStatus.OPEN
    tally: Tally | None = None
    boundary_after_tally: bool = False
    """An epoch entry was applied after the tally (a passed change is then due to activate)."""
    effective_from_epoch: tuple[tuple[str, int], ...] = ()
    """(subnet, first epoch under the new parameters) once activated."""
    activation_problem: str = ""

    def __deepcopy__(self, memo: dict[int, Any]) -> ProposalRecord:
        return self  # immutable all the way down

    @property
    def tally_tx_id(self) -> str:
        return governance_tx_id(self.proposal_id, "tally")

    @property
    def activation_tx_id(self) -> str:
        return governance_tx_id(self.proposal_id, "activation")

    @property
    def deposit_lock_key(self) -> str:
        return DEPOSIT_LOCK_PREFIX + self.proposal_id

    @property
    def subnets(self) -> tuple[str, ...]:
        return tuple(subnet for subnet, _ in self.changes)

    @classmethod
    def opened(
        cls, spec: ProposalSpec, *, proposal_id: str, proposer: str, power: PowerSnapshot
    ) -> ProposalRecord:
        return cls(
            proposal_id=proposal_id,
            proposer=proposer,
            kind=spec.kind,
            title=spec.title,
            text=spec.text,
            deposit_rao=spec.deposit_rao,
            opens_block=spec.opens_block,
            closes_block=spec.closes_block,
            backtest_sha256=spec.backtest_sha256,
            changes=tuple((c.subnet, c.values) for c in spec.changes),
            power=power,
        )

    def tallied(self, result: Tally, *, voters: Iterable[str]) -> ProposalRecord:
        """The record once tallied: the status the result gives, and a power snapshot cut down
        to the ``voters`` (their own power and their delegations): once the votes are counted
        (the tally keeps the totals), nobody else's power is read again, so a closed proposal
        costs the state its voters, not every account of the network."""
        kept = frozenset(voters)
        power = PowerSnapshot(
            own_rao=MappingProxyType({c: v for c, v in self.power.own_rao.items() if c in kept}),
            delegated_rao=MappingProxyType(
                {c: to for c, to in self.power.delegated_rao.items() if c in kept}
            ),
            total_rao=self.power.total_rao,
        )
        if not result.quorum_met:
            status = ProposalStatus.NO_QUORUM
        elif result.passed and self.changes:
            status = ProposalStatus.PASSED
        elif result.passed:
            status = ProposalStatus.ACTIVATED  # a signal that passed has nothing to apply
        else:
            status = ProposalStatus.REJECTED
        return replace(self, status=status, tally=result, power=power)


def governance_tx_id(proposal_id: str, step: str) -> str:
    return f"{GOVERNANCE_ID_PREFIX}{proposal_id}/{step}"


def votes_of(votes: Mapping[tuple[str, str], int], proposal_id: str) -> dict[str, int]:
    """Coldkey → choice of ``proposal_id``'s voters (``LedgerState.votes`` is keyed by both)."""
    return {coldkey: choice for (pid, coldkey), choice in votes.items() if pid == proposal_id}


def current_tally(
    record: ProposalRecord, votes: Mapping[str, int], *, quorum_ppm: int, pass_ppm: int
) -> Tally:
    return tally(record.power, votes, quorum_ppm=quorum_ppm, pass_ppm=pass_ppm)


def expected_tally_payload(record: ProposalRecord, result: Tally) -> dict[str, Any]:
    return {
        "proposal_id": record.proposal_id,
        "closes_block": record.closes_block,
        "deposit": deposit_outcome(result),
        **result.to_payload(),
    }


def tally_mismatch(payload: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """The first field where a tally entry differs from the ledger's own count, or None."""
    for name in sorted(set(payload) | set(expected)):
        if name not in expected:
            return f"tally entry has an unknown field {name!r}"
        got = payload.get(name)
        if got != expected[name] or type(got) is not type(expected[name]):
            return (
                f"tally entry does not match the ledger's own count: {name} is {got!r}, "
                f"the votes give {expected[name]!r}"
            )
    return None


def activated_configs(
    record: ProposalRecord, configs: Mapping[str, SubnetConfig]
) -> dict[str, SubnetConfig] | str:
    """The configs of ``record``'s subnets with its change applied to ``configs`` (those in
    effect now), or the one-line reason it cannot be applied any more."""
    after: dict[str, SubnetConfig] = {}
    for subnet, values in record.changes:
        if subnet not in configs:
            return f"subnet {subnet!r} no longer exists"
        try:
            after[subnet] = merged_config(configs[subnet], dict(values), subnet=subnet)
        except ValueError as error:
            return str(error)
    shares = {name: config.emission_share for name, config in configs.items()}
    shares.update({name: config.emission_share for name, config in after.items()})
    if shares and not any(shares.values()):
        return "the change would leave every subnet with a zero emission share"
    return after


def expected_activation_payload(
    record: ProposalRecord,
    *,
    configs: Mapping[str, SubnetConfig],
    next_epochs: Mapping[str, int],
) -> dict[str, Any]:
    """What the activation entry of ``record`` must say now (see the module docstring)."""
    outcome = activated_configs(record, configs)
    problem = outcome if isinstance(outcome, str) else ""
    return {
        "proposal_id": record.proposal_id,
        "effective_from_epoch": (
            {} if problem else {subnet: next_epochs.get(subnet, 0) for subnet in record.subnets}
        ),
        "problem": problem,
    }


def due_records(records: Iterable[ProposalRecord], *, block: int) -> list[ProposalRecord]:
    """Records with a system entry due at ``block``: open ones whose period closed, passed ones
    with an epoch boundary behind their tally. Ordered by closing block, then id."""
    due = [
        r
        for r in records
        if (r.status is ProposalStatus.OPEN and block >= r.closes_block)
        or (r.status is ProposalStatus.PASSED and r.boundary_after_tally)
    ]
    return sorted(due, key=lambda r: (r.closes_block, r.proposal_id))[
        :GOVERNANCE_ENTRIES_PER_BATCH_MAX
    ]


# ---- documents (snapshots) -------------------------------------------------------------------


def record_to_doc(record: ProposalRecord) -> dict[str, Any]:
    return {
        "proposal_id": record.proposal_id,
        "proposer": record.proposer,
        "kind": record.kind.value,
        "title": record.title,
        "text": record.text,
        "deposit_rao": record.deposit_rao,
        "opens_block": record.opens_block,
        "closes_block": record.closes_block,
        "backtest_sha256": record.backtest_sha256,
        "changes": [[subnet, [[k, v] for k, v in values]] for subnet, values in record.changes],
        "power": {
            "own_rao": dict(record.power.own_rao),
            "delegated_rao": {c: dict(to) for c, to in record.power.delegated_rao.items()},
            "total_rao": record.power.total_rao,
        },
        "status": record.status.value,
        "tally": None if record.tally is None else record.tally.to_payload(),
        "boundary_after_tally": record.boundary_after_tally,
        "effective_from_epoch": [[s, e] for s, e in record.effective_from_epoch],
        "activation_problem": record.activation_problem,
    }


def record_from_doc(doc: Mapping[str, Any]) -> ProposalRecord:
    power = doc["power"]
    return ProposalRecord(
        proposal_id=doc["proposal_id"],
        proposer=doc["proposer"],
        kind=ProposalKind(doc["kind"]),
        title=doc["title"],
        text=doc["text"],
        deposit_rao=int(doc["deposit_rao"]),
        opens_block=int(doc["opens_block"]),
        closes_block=int(doc["closes_block"]),
        backtest_sha256=doc["backtest_sha256"],
        changes=tuple(
            (subnet, tuple((k, v) for k, v in values)) for subnet, values in doc["changes"]
        ),
        power=PowerSnapshot(
            own_rao=MappingProxyType(dict(power["own_rao"])),
            delegated_rao=MappingProxyType(
                {c: MappingProxyType(dict(to)) for c, to in power["delegated_rao"].items()}
            ),
            total_rao=int(power["total_rao"]),
        ),
        status=ProposalStatus(doc["status"]),
        tally=None if doc["tally"] is None else Tally(**doc["tally"]),
        boundary_after_tally=bool(doc["boundary_after_tally"]),
        effective_from_epoch=tuple((s, int(e)) for s, e in doc["effective_from_epoch"]),
        activation_problem=doc["activation_problem"],
    )
