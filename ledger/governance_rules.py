"""The ledger's checks and changes for the four governance kinds (``LedgerState``'s rule table
names them beside every other kind).

- ``proposal`` (signed by the proposer's coldkey): ``amount_rao`` is the deposit and must equal
  the payload's ``deposit_rao``; the payload is parsed by ``ProposalSpec.from_payload`` against
  the subnets in effect and the network's ``GovernanceParams``. Applying it moves the deposit
  from the proposer's balance into ``locked`` and takes the voting-power snapshot of that block
  (balances net of the transaction's own fee, every stake).
- ``vote`` (signed by the voter's coldkey): ``{"proposal_id", "choice"}`` with ``choice`` an
  index into ``PROPOSAL_OPTIONS``. Refused after the period closed (the block reached
  ``closes_block``) or once tallied, for a coldkey with no power in the snapshot (neither its own
  nor delegated to it), and when it repeats the coldkey's current choice; another choice replaces
  the earlier one.
- ``proposal_tally`` / ``proposal_activation`` (system): accepted only when equal to what the
  state itself computes (``ledger.proposals``). The tally releases the deposit: back to the
  proposer's balance if the vote reached quorum, burned otherwise. An activation replaces the
  subnets' configs (re-validated) and clamps a registration cost into its new bounds.

Invariants: the supply identity holds across every entry (the deposit is locked, then returned
or burned, never both); a rejected entry changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from taoflow.ledger.governance import PROPOSAL_OPTIONS, ProposalSpec, voting_powers
from taoflow.ledger.proposals import (
    ProposalRecord,
    ProposalStatus,
    activated_configs,
    expected_activation_payload,
    expected_tally_payload,
    tally_mismatch,
    votes_of,
)
from taoflow.ledger.registration import RegistrationPolicy
from taoflow.ledger.schema import Kind, Tx, canonical_json

if TYPE_CHECKING:
    from taoflow.ledger.state import LedgerState

PROPOSAL_ID_CHARS_MAX: Final = 128


# ---- proposal --------------------------------------------------------------------------------


def _spec(state: LedgerState, tx: Tx) -> ProposalSpec:
    params = state.governance
    return ProposalSpec.from_payload(
        tx.payload_dict(),
        subnets={name: info.config for name, info in state.subnets.items()},
        block=state.block,
        deposit_min_rao=params.deposit_min_rao,
        voting_blocks_min=params.voting_blocks_min,
        voting_blocks_max=params.voting_blocks_max,
    )


def check_proposal(state: LedgerState, tx: Tx) -> str | None:
    if len(tx.tx_id) > PROPOSAL_ID_CHARS_MAX:
        return f"a proposal id has at most {PROPOSAL_ID_CHARS_MAX} characters"
    if tx.subnet or tx.hotkey or tx.dest:
        return "a proposal names its subnets in its payload (subnet, hotkey and dest stay empty)"
    try:
        spec = _spec(state, tx)
    except ValueError as exc:
        return str(exc)
    if tx.amount_rao != spec.deposit_rao:
        return (
            f"a proposal locks its deposit: amount_rao {tx.amount_rao:,} must equal "
            f"deposit_rao {spec.deposit_rao:,}"
        )
    return state._need_balance(tx.coldkey, tx.amount_rao)


def apply_proposal(state: LedgerState, tx: Tx) -> None:
    spec = _spec(state, tx)
    state._debit(tx.coldkey, spec.deposit_rao)
    balances = dict(state.balances)  # the snapshot: free balances net of this entry's fee
    fee_rao = state.tx_fee_rao
    if fee_rao:
        balances[tx.coldkey] = balances.get(tx.coldkey, 0) - fee_rao
    power = voting_powers(balances=balances, stakes=state.stakes, hotkey_owner=state.hotkey_owner)
    record = ProposalRecord.opened(spec, proposal_id=tx.tx_id, proposer=tx.coldkey, power=power)
    state.locked[record.deposit_lock_key] = spec.deposit_rao
    state.proposals[tx.tx_id] = record


# ---- vote ------------------------------------------------------------------------------------


def check_vote(state: LedgerState, tx: Tx) -> str | None:
    payload = tx.payload_dict()
    unknown = sorted(set(payload) - {"proposal_id", "choice"})
    if unknown:
        return f"unknown vote field(s) {unknown[:8]}"
    proposal_id = payload.get("proposal_id")
    record = state.proposals.get(proposal_id) if isinstance(proposal_id, str) else None
    if record is None:
        return f"unknown proposal {str(proposal_id)[:80]!r}"
    choice = payload.get("choice")
    if isinstance(choice, bool) or not isinstance(choice, int):
        return f"choice must be an option index: {_options()}"
    if not 0 <= choice < len(PROPOSAL_OPTIONS):
        return f"choice must be an option index below {len(PROPOSAL_OPTIONS)}: {_options()}"
    if record.status is not ProposalStatus.OPEN or state.block >= record.closes_block:
        return f"voting on {proposal_id!r} closed at block {record.closes_block:,}"
    if not _has_power(record, tx.coldkey):
        return (
            f"{tx.coldkey!r} had no voting power when {proposal_id!r} opened at block "
            f"{record.opens_block:,} (no balance, stake or delegation then)"
        )
    earlier = state.votes.get((record.proposal_id, tx.coldkey))
    if earlier == choice:
        return (
            f"{tx.coldkey!r} already voted {PROPOSAL_OPTIONS[choice]!r} on {proposal_id!r}; "
            "a vote can only be changed to another choice"
        )
    return None


def _options() -> str:
    return ", ".join(f"{i} = {name}" for i, name in enumerate(PROPOSAL_OPTIONS))


def _has_power(record: ProposalRecord, coldkey: str) -> bool:
    if record.power.power_rao(coldkey) > 0:
        return True
    return any(coldkey in to for to in record.power.delegated_rao.values())


def apply_vote(state: LedgerState, tx: Tx) -> None:
    payload = tx.payload_dict()
    state.votes[(str(payload["proposal_id"]), tx.coldkey)] = int(payload["choice"])


# ---- tally -----------------------------------------------------------------------------------


def _record_of(state: LedgerState, tx: Tx) -> ProposalRecord | str:
    proposal_id = tx.payload_dict().get("proposal_id")
    record = state.proposals.get(proposal_id) if isinstance(proposal_id, str) else None
    if record is None:
        return f"unknown proposal {str(proposal_id)[:80]!r}"
    return record


def _expected_tally(state: LedgerState, record: ProposalRecord) -> dict[str, Any]:
    return expected_tally_payload(record, state.proposal_tally(record.proposal_id))


def check_tally(state: LedgerState, tx: Tx) -> str | None:
    record = _record_of(state, tx)
    if isinstance(record, str):
        return record
    if tx.tx_id != record.tally_tx_id:
        return f"the tally of {record.proposal_id!r} has the id {record.tally_tx_id!r}"
    if record.status is not ProposalStatus.OPEN:
        return f"{record.proposal_id!r} was already tallied"
    if state.block < record.closes_block:
        return (
            f"voting on {record.proposal_id!r} is open until block {record.closes_block:,} "
            f"(the ledger is at block {state.block:,})"
        )
    if (tx.coldkey, tx.amount_rao) != (record.proposer, record.deposit_rao):
        return "a tally entry names the proposer and the deposit it releases"
    if tx.subnet or tx.hotkey or tx.dest:
        return "a tally entry carries no subnet, hotkey or destination"
    return tally_mismatch(tx.payload_dict(), _expected_tally(state, record))


def apply_tally(state: LedgerState, tx: Tx) -> None:
    record = state.proposals[str(tx.payload_dict()["proposal_id"])]
    result = state.proposal_tally(record.proposal_id)  # the votes so far: it is still open
    state.locked.pop(record.deposit_lock_key)
    if result.quorum_met:
        state._credit(record.proposer, record.deposit_rao)
    else:
        state.burned_rao += record.deposit_rao
    voters = votes_of(state.votes, record.proposal_id)
    state.proposals[record.proposal_id] = record.tallied(result, voters=voters)


# ---- activation ------------------------------------------------------------------------------


def _expected_activation(state: LedgerState, record: ProposalRecord) -> dict[str, Any]:
    return expected_activation_payload(
        record,
        configs={name: info.config for name, info in state.subnets.items()},
        next_epochs={name: state.last_epoch.get(name, -1) + 1 for name in state.subnets},
    )


def check_activation(state: LedgerState, tx: Tx) -> str | None:
    record = _record_of(state, tx)
    if isinstance(record, str):
        return record
    if tx.tx_id != record.activation_tx_id:
        return f"the activation of {record.proposal_id!r} has the id {record.activation_tx_id!r}"
    if record.status is not ProposalStatus.PASSED:
        return f"{record.proposal_id!r} is {record.status.value}: there is nothing to activate"
    if not record.boundary_after_tally:
        return f"{record.proposal_id!r} takes effect at the epoch boundary after its tally"
    if tx.amount_rao or tx.coldkey or tx.subnet or tx.hotkey or tx.dest:
        return "an activation entry carries only its payload"
    expected = _expected_activation(state, record)
    if tx.payload_dict() != expected:
        return (
            f"activation entry does not match the ledger's own: expected "
            f"{canonical_json(expected)[:200]}"
        )
    return None


def apply_activation(state: LedgerState, tx: Tx) -> None:
    record = state.proposals[str(tx.payload_dict()["proposal_id"])]
    configs = activated_configs(record, {n: info.config for n, info in state.subnets.items()})
    if isinstance(configs, str):
        state.proposals[record.proposal_id] = replace(
            record, status=ProposalStatus.ACTIVATION_FAILED, activation_problem=configs
        )
        return
    effective = tx.payload_dict()["effective_from_epoch"]
    for subnet, config in configs.items():
        state.subnets[subnet] = replace(state.subnets[subnet], config=config)
        if subnet in state.registration_cost_rao:
            policy = RegistrationPolicy.from_config(config)
            cost_rao = state.registration_cost_rao[subnet]
            state.registration_cost_rao[subnet] = min(
                policy.max_cost_rao, max(policy.min_cost_rao, cost_rao)
            )
    state.proposals[record.proposal_id] = replace(
        record,
        status=ProposalStatus.ACTIVATED,
        effective_from_epoch=tuple(sorted((s, int(e)) for s, e in effective.items())),
    )


# ---- due entries -----------------------------------------------------------------------------


def due_entries(state: LedgerState, records: list[ProposalRecord]) -> list[Tx]:
    """The system entries ``records`` are due for now, in order (``proposals.due_records``).

    Activations are computed against the configs the earlier ones in the list leave, as the
    ledger applies them one after the other.
    """
    configs = {name: info.config for name, info in state.subnets.items()}
    next_epochs = {name: state.last_epoch.get(name, -1) + 1 for name in state.subnets}
    entries: list[Tx] = []
    for record in records:
        if record.status is ProposalStatus.OPEN:
            entries.append(
                Tx(
                    tx_id=record.tally_tx_id,
                    kind=Kind.PROPOSAL_TALLY,
                    coldkey=record.proposer,
                    amount_rao=record.deposit_rao,
                    payload=canonical_json(_expected_tally(state, record)),
                )
            )
            continue
        payload = expected_activation_payload(record, configs=configs, next_epochs=next_epochs)
        after = activated_configs(record, configs)
        if not isinstance(after, str):
            configs.update(after)
        entries.append(
            Tx(
                tx_id=record.activation_tx_id,
                kind=Kind.PROPOSAL_ACTIVATION,
                payload=canonical_json(payload),
            )
        )
    return entries
