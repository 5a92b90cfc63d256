"""Governance in the state machine: deposits, snapshots, votes, tallies, activation.

Every rejection is one line and leaves the state exactly as it was; the supply identity holds
after every entry; the tally and activation entries are accepted only as the ledger computes
them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from ledger_helpers import TAO, acct, apply_all, epoch_batch, mint, signed

from taoflow.ledger.governance import DEPOSIT_MIN_RAO_DEFAULT, GovernanceParams
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.proposals import ProposalStatus
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.snapshot_codec import state_from_tables, state_to_tables
from taoflow.ledger.state import Applied, Exists, LedgerState, Rejected
from taoflow.ledger.store import Ledger
from taoflow.ledger.views import LedgerViews

KAPPA_U16 = 39_321
VOTING_BLOCKS = 100


def do(state: LedgerState, tx: Tx, *, allow_system: bool = False) -> object:
    return state.apply(signed(state, tx), allow_system=allow_system)


FUNDS = (("alice", 100), ("bob", 50), ("carol", 40), ("dave", 60))
CONFIG = {"tempo_blocks": 100, "registration_cost_rao": TAO, "uids_max": 8}
SETUP = [
    Tx(
        "create",
        Kind.SUBNET_CREATE,
        subnet="sn",
        coldkey=acct("alice"),
        hotkey=acct("alice-hot"),
        amount_rao=10 * TAO,
        payload=canonical_json(CONFIG),
    ),
    Tx(
        "reg",
        Kind.REGISTER,
        subnet="sn",
        coldkey=acct("carol"),
        hotkey=acct("carol-hot"),
        amount_rao=TAO,
        payload=canonical_json({"role": "validator"}),
    ),
    Tx(
        "s1",
        Kind.ADD_STAKE,
        coldkey=acct("carol"),
        hotkey=acct("carol-hot"),
        amount_rao=10 * TAO,
    ),
    Tx(
        "s2",
        Kind.ADD_STAKE,
        coldkey=acct("dave"),
        hotkey=acct("carol-hot"),
        amount_rao=30 * TAO,
    ),
]


def network() -> LedgerState:
    """alice owns subnet sn; carol's validator hotkey holds 30 τ of dave's stake and 10 τ of
    her own; bob holds a free balance; eve holds nothing."""
    state = LedgerState()
    for i, (name, amount) in enumerate(FUNDS):
        assert isinstance(state.apply(mint(f"m{i}", name, amount * TAO)), Applied)
    for tx in SETUP:
        assert isinstance(do(state, tx), Applied), tx.tx_id
    return state


def proposal(tx_id: str = "p1", *, deposit_rao: int = TAO, **fields: object) -> Tx:
    payload = {
        "kind": "subnet_params",
        "title": "Raise kappa to 0.6",
        "deposit_rao": deposit_rao,
        "voting_blocks": VOTING_BLOCKS,
        "subnet": "sn",
        "changes": {"yuma": {"kappa_u16": KAPPA_U16}},
        **fields,
    }
    return Tx(
        tx_id,
        Kind.PROPOSAL,
        coldkey=acct("alice"),
        amount_rao=deposit_rao,
        payload=canonical_json(payload),
    )


def vote(tx_id: str, who: str, choice: object, proposal_id: str = "p1") -> Tx:
    body = {"proposal_id": proposal_id, "choice": choice}
    return Tx(tx_id, Kind.VOTE, coldkey=acct(who), payload=canonical_json(body))


def epoch(state: LedgerState, *, block: int) -> None:
    apply_all(state, epoch_batch(state, "sn", block=block))


def boundary(state: LedgerState) -> list[Tx]:
    """Commit the governance entries due now, as the epoch flow does; return them."""
    due = state.governance_entries_due()
    apply_all(state, due)
    return due


def rejected(state: LedgerState, tx: Tx, *, allow_system: bool = False) -> str:
    before = state.copy()
    outcome = do(state, tx, allow_system=allow_system)
    assert isinstance(outcome, Rejected), outcome
    assert state == before
    assert "\n" not in outcome.reason
    return outcome.reason


# ---- proposals -------------------------------------------------------------------------------


def test_proposal_locks_the_deposit_and_snapshots_power() -> None:
    state = network()
    held_before = state.balance(acct("alice"))
    assert isinstance(do(state, proposal()), Applied)
    state.check_supply()
    assert state.balance(acct("alice")) == held_before - TAO
    assert state.locked["proposal/p1"] == TAO
    record = state.proposals["p1"]
    assert (record.opens_block, record.closes_block) == (0, VOTING_BLOCKS)
    assert record.changes == (("sn", (("yuma", {"kappa_u16": KAPPA_U16}),)),)
    assert record.power.power_rao(acct("dave")) == 30 * TAO + 30 * TAO  # free + delegated
    assert record.power.own_rao[acct("carol")] == 29 * TAO + 10 * TAO
    assert record.power.delegated_rao[acct("dave")] == {acct("carol"): 30 * TAO}
    assert record.power.total_rao == sum(state.balances.values()) + sum(state.stakes.values())


@pytest.mark.parametrize(
    ("tx", "reason"),
    [
        (proposal(deposit_rao=TAO - 1), "below the minimum"),
        (proposal(subnet="nope"), "unknown subnet 'nope'"),
        (proposal(changes={"yuma": {"kappa_u16": 0}}), "kappa"),
        (proposal(changes={"tempo_blocks": 0}), "tempo_blocks"),
        (proposal(changes={"colour": 1}), "unknown subnet setting"),
        (proposal(voting_blocks=10), "voting_blocks"),
        (proposal(deposit_rao=500 * TAO), "insufficient balance"),
        (proposal(backtest_sha256="abc"), "backtest_sha256"),
        (
            dataclasses.replace(proposal(), amount_rao=0),
            "amount_rao 0 must equal deposit_rao 1,000,000,000",
        ),
        (proposal("governance/p9"), "belong to governance"),
    ],
)
def test_bad_proposals_are_one_line_and_change_nothing(tx: Tx, reason: str) -> None:
    state = network()
    assert reason in rejected(state, tx)


# ---- votes -----------------------------------------------------------------------------------


def test_vote_rules() -> None:
    state = network()
    assert isinstance(do(state, proposal()), Applied)
    assert "unknown proposal" in rejected(state, vote("v0", "bob", 0, proposal_id="p2"))
    assert "option index" in rejected(state, vote("v1", "bob", 3))
    assert "option index" in rejected(state, vote("v1", "bob", True))
    assert isinstance(do(state, vote("v1", "bob", 0)), Applied)
    assert "already voted 'for'" in rejected(state, vote("v2", "bob", 0))
    assert isinstance(do(state, vote("v2", "bob", 1)), Applied)  # changed its mind
    assert state.votes[("p1", acct("bob"))] == 1
    state.check_supply()


def test_tao_moved_after_the_snapshot_gives_no_power() -> None:
    state = network()
    assert isinstance(do(state, proposal()), Applied)
    move = Tx("t", Kind.TRANSFER, coldkey=acct("bob"), dest=acct("eve"), amount_rao=20 * TAO)
    assert isinstance(do(state, move), Applied)
    assert "had no voting power" in rejected(state, vote("v1", "eve", 0))
    assert isinstance(do(state, vote("v2", "bob", 0)), Applied)
    assert state.proposal_tally("p1").for_rao == 50 * TAO  # bob's snapshot, not 30 τ


def test_vote_after_close_is_refused() -> None:
    state = network()
    assert isinstance(do(state, proposal()), Applied)
    epoch(state, block=VOTING_BLOCKS - 1)
    assert isinstance(do(state, vote("v1", "bob", 0)), Applied)
    epoch(state, block=VOTING_BLOCKS)
    assert "closed at block 100" in rejected(state, vote("v2", "bob", 1))


# ---- tallies ---------------------------------------------------------------------------------


def voted_network() -> LedgerState:
    """p1 open; carol votes for (her 39 τ and dave's 30 τ delegation), dave votes against
    (overriding carol for his 30 τ stake, plus his 30 τ free)."""
    state = network()
    assert isinstance(do(state, proposal()), Applied)
    apply = [vote("v1", "carol", 0), vote("v2", "dave", 1), vote("v3", "bob", 0)]
    for tx in apply:
        assert isinstance(do(state, tx), Applied)
    return state


def test_tally_is_due_only_once_the_period_closed_and_follows_delegation() -> None:
    state = voted_network()
    epoch(state, block=VOTING_BLOCKS - 1)
    assert state.governance_entries_due() == []
    epoch(state, block=VOTING_BLOCKS)
    (entry,) = boundary(state)
    assert entry.tx_id == "governance/p1/tally" and entry.kind == Kind.PROPOSAL_TALLY
    result = json.loads(entry.payload)
    assert (result["for_rao"], result["against_rao"], result["abstain_rao"]) == (
        39 * TAO + 50 * TAO,
        60 * TAO,
        0,
    )
    assert result["passed"] and result["quorum_met"] and result["deposit"] == "returned"
    record = state.proposals["p1"]
    assert record.status is ProposalStatus.PASSED
    assert "proposal/p1" not in state.locked
    state.check_supply()


def test_forged_and_early_tallies_are_refused() -> None:
    state = voted_network()
    epoch(state, block=VOTING_BLOCKS)
    (entry,) = state.governance_entries_due()
    forged = json.loads(entry.payload)
    forged["against_rao"] = 0
    tx = dataclasses.replace(entry, payload=canonical_json(forged))
    assert "against_rao is 0" in rejected(state, tx, allow_system=True)
    assert "produced only by the network" in rejected(state, entry)  # a user cannot send it
    stolen = dataclasses.replace(entry, coldkey=acct("bob"))
    assert "names the proposer" in rejected(state, stolen, allow_system=True)
    early = network()
    assert isinstance(do(early, proposal()), Applied)
    assert "open until block 100" in rejected(early, entry, allow_system=True)
    boundary(state)
    before = state.copy()
    assert isinstance(state.apply(entry), Exists)  # the same tally again: nothing changes
    assert state == before
    assert "different content" in rejected(state, tx, allow_system=True)


def test_no_quorum_burns_the_deposit_and_changes_nothing() -> None:
    state = network()
    assert isinstance(do(state, proposal()), Applied)
    burned_before = state.burned_rao
    config_before = state.subnets["sn"].config
    epoch(state, block=VOTING_BLOCKS)
    (entry,) = boundary(state)
    assert json.loads(entry.payload)["deposit"] == "burned"
    assert state.burned_rao == burned_before + TAO
    assert state.proposals["p1"].status is ProposalStatus.NO_QUORUM
    epoch(state, block=2 * VOTING_BLOCKS)
    assert state.governance_entries_due() == []
    assert state.subnets["sn"].config == config_before
    state.check_supply()


def test_rejected_change_returns_the_deposit_and_is_never_activated() -> None:
    state = network()
    assert isinstance(do(state, proposal()), Applied)
    assert isinstance(do(state, vote("v1", "dave", 1)), Applied)
    epoch(state, block=VOTING_BLOCKS)
    alice_before = state.balance(acct("alice"))  # after the epoch's owner cut
    boundary(state)
    assert state.proposals["p1"].status is ProposalStatus.REJECTED
    assert state.balance(acct("alice")) == alice_before + TAO
    epoch(state, block=2 * VOTING_BLOCKS)
    assert state.governance_entries_due() == []


# ---- activation ------------------------------------------------------------------------------


def test_passed_change_activates_at_the_next_boundary() -> None:
    state = voted_network()
    epoch(state, block=VOTING_BLOCKS)  # epoch 0 reaches the close
    boundary(state)  # tally
    assert state.governance_entries_due() == []  # activation waits for one more boundary
    assert state.subnets["sn"].config.yuma.get("kappa_u16") is None
    epoch(state, block=2 * VOTING_BLOCKS)  # epoch 1 under the old parameters
    (entry,) = boundary(state)
    assert entry.kind == Kind.PROPOSAL_ACTIVATION
    assert json.loads(entry.payload) == {
        "proposal_id": "p1",
        "effective_from_epoch": {"sn": 2},
        "problem": "",
    }
    assert state.subnets["sn"].config.yuma["kappa_u16"] == KAPPA_U16
    assert state.proposals["p1"].status is ProposalStatus.ACTIVATED
    assert state.proposals["p1"].effective_from_epoch == (("sn", 2),)
    assert state.governance_entries_due() == []
    state.check_supply()


def test_forged_or_early_activation_is_refused() -> None:
    state = voted_network()
    epoch(state, block=VOTING_BLOCKS)
    boundary(state)
    early = Tx(
        "governance/p1/activation",
        Kind.PROPOSAL_ACTIVATION,
        payload=canonical_json(
            {"proposal_id": "p1", "effective_from_epoch": {"sn": 1}, "problem": ""}
        ),
    )
    assert "epoch boundary after its tally" in rejected(state, early, allow_system=True)
    epoch(state, block=2 * VOTING_BLOCKS)
    (entry,) = state.governance_entries_due()
    forged = dataclasses.replace(
        entry,
        payload=canonical_json(
            {"proposal_id": "p1", "effective_from_epoch": {"sn": 1}, "problem": ""}
        ),
    )
    assert "does not match the ledger's own" in rejected(state, forged, allow_system=True)
    boundary(state)
    assert "different content" in rejected(state, forged, allow_system=True)


def test_signal_that_passes_has_nothing_to_activate() -> None:
    state = network()
    signal = Tx(
        "p1",
        Kind.PROPOSAL,
        coldkey=acct("alice"),
        amount_rao=TAO,
        payload=canonical_json(
            {"kind": "signal", "title": "Ship it", "deposit_rao": TAO, "voting_blocks": 100}
        ),
    )
    assert isinstance(do(state, signal), Applied)
    assert isinstance(do(state, vote("v1", "dave", 0)), Applied)
    epoch(state, block=VOTING_BLOCKS)
    boundary(state)
    assert state.proposals["p1"].status is ProposalStatus.ACTIVATED
    epoch(state, block=2 * VOTING_BLOCKS)
    assert state.governance_entries_due() == []


# ---- the network's settings and snapshots ----------------------------------------------------


def test_network_governance_settings_apply_and_keep_old_ids() -> None:
    writer = acct("alice")
    plain = NetworkParams(name="n", writer_key=writer, salt_hex="ab" * 32)
    assert "governance" not in plain.to_payload()  # ids of networks made before stay the same
    strict = dataclasses.replace(
        plain, governance=GovernanceParams(quorum_ppm=900_000, deposit_min_rao=5 * TAO)
    )
    assert NetworkParams.from_payload(strict.to_payload()) == strict
    assert strict.network_id != plain.network_id
    with pytest.raises(ValueError, match="quorum_ppm"):
        GovernanceParams(quorum_ppm=2_000_000)
    with pytest.raises(ValueError, match="unknown governance field"):
        NetworkParams.from_payload({**plain.to_payload(), "governance": {"quorum": 1}})
    assert GovernanceParams().deposit_min_rao == DEPOSIT_MIN_RAO_DEFAULT


def test_snapshot_round_trip_keeps_every_proposal_state() -> None:
    state = voted_network()
    assert isinstance(do(state, proposal("p2", title="Second")), Applied)
    epoch(state, block=VOTING_BLOCKS)
    boundary(state)
    restored = state_from_tables(state_to_tables(state))
    assert restored.proposals == state.proposals
    assert restored.votes == state.votes
    assert restored.locked == state.locked
    assert state.copy() == state


# ---- on disk: the fold, the views and verification agree -------------------------------------


def test_committed_governance_replays_and_views_agree(tmp_path: Path) -> None:
    """Deposits returned and burned, seen the same way by the fold, the SQL views, a reopened
    ledger and ``verify``; committed through the store's checks (system entries included)."""
    built = network()  # the same transactions, committed one batch each
    ledger = Ledger.open(tmp_path / "ledger")
    setup = [mint(f"m{i}", n, a * TAO) for i, (n, a) in enumerate(FUNDS)] + SETUP
    for tx in setup:
        ledger.commit([signed(ledger.state(), tx)])
    assert ledger.state().balances == built.balances
    for tx in (proposal(), proposal("p2", title="Nobody cares"), vote("v1", "dave", 0)):
        ledger.commit([signed(ledger.state(), tx)], allow_system=False)
    for block in (VOTING_BLOCKS, 2 * VOTING_BLOCKS):
        ledger.commit(epoch_batch(ledger.state(), "sn", block=block))
        due = ledger.state().governance_entries_due()
        assert due  # the tallies, then the activation
        ledger.commit(due)
    state = ledger.state()
    assert state.proposals["p1"].status is ProposalStatus.ACTIVATED
    assert state.proposals["p2"].status is ProposalStatus.NO_QUORUM
    views = LedgerViews(ledger.table())
    assert {r["coldkey"]: r["balance_rao"] for r in views.balances()} == state.balances
    supply = views.supply()
    for name, value in state.supply().items():
        assert supply[name] == value, name
    reopened = Ledger.open(tmp_path / "ledger")
    assert reopened.state().proposals == state.proposals
    assert reopened.verify().ok


def test_a_tallied_proposal_keeps_only_its_voters_power() -> None:
    state = voted_network()
    record = state.proposals["p1"]
    assert acct("alice") in record.power.own_rao  # every holder while it is open
    epoch(state, block=VOTING_BLOCKS)
    boundary(state)
    tallied = state.proposals["p1"]
    voters = {acct("carol"), acct("dave"), acct("bob")}
    assert set(tallied.power.own_rao) == voters
    assert set(tallied.power.delegated_rao) == {acct("dave")}
    assert tallied.power.total_rao == record.power.total_rao
    assert all(tallied.power.power_rao(c) == record.power.power_rao(c) for c in voters)
    assert state_from_tables(state_to_tables(state)).proposals == state.proposals
