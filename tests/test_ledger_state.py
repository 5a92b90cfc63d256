"""The rules as a state machine: every rejection explained, state untouched, identity exact."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from ledger_helpers import TAO, acct, apply_all, epoch_batch, key, mint, signed

from taoflow.ledger.errors import SupplyIdentityViolated
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.state import (
    TAKE_DEFAULT_PPM,
    TAKE_INCREASE_INTERVAL_BLOCKS,
    Applied,
    Exists,
    LedgerState,
    Rejected,
    apply,
)


def do(state: LedgerState, tx: Tx) -> object:
    return state.apply(signed(state, tx))


def funded() -> LedgerState:
    state = LedgerState()
    for i, name in enumerate(["alice", "bob"]):
        assert isinstance(state.apply(mint(f"m{i}", name, 100 * TAO)), Applied)
    config = canonical_json({"tempo_blocks": 10, "registration_cost_rao": TAO, "uids_max": 2})
    create = Tx(
        "s",
        Kind.SUBNET_CREATE,
        subnet="sn",
        coldkey=acct("alice"),
        hotkey=acct("alice-hot"),
        amount_rao=10 * TAO,
        payload=config,
    )
    assert isinstance(do(state, create), Applied)
    reg = Tx(
        "r", Kind.REGISTER, subnet="sn", coldkey=acct("bob"), hotkey=acct("bob-hot"), amount_rao=TAO
    )
    assert isinstance(do(state, reg), Applied)
    return state


def transfer(tx_id: str, src: str, dst: str, amount: int) -> Tx:
    return Tx(tx_id, Kind.TRANSFER, coldkey=acct(src), dest=acct(dst), amount_rao=amount)


def test_identity_after_setup() -> None:
    state = funded()
    state.check_supply()
    assert state.supply() == {
        "issued_rao": 200 * TAO,
        "burned_rao": TAO,
        "balances_rao": 189 * TAO,
        "stakes_rao": 0,
        "locked_rao": 10 * TAO,
    }


def test_overdraft_rejected_and_state_unchanged() -> None:
    state = funded()
    before = state.copy()
    outcome = do(state, transfer("t", "bob", "alice", 1000 * TAO))
    assert isinstance(outcome, Rejected)
    assert "insufficient balance" in outcome.reason
    assert state == before


def test_bad_signature_missing_signature_and_wrong_signer_rejected() -> None:
    state = funded()
    tx = signed(state, transfer("t", "bob", "alice", 5))
    tampered = dataclasses.replace(tx, amount_rao=6)
    assert "bad signature" in state.apply(tampered).reason  # type: ignore[union-attr]
    unsigned = dataclasses.replace(tx, signature=b"")
    assert "missing signature" in state.apply(unsigned).reason  # type: ignore[union-attr]
    by_eve = dataclasses.replace(tx, signature=key("eve").sign(b"anything" * 8))
    assert "bad signature" in state.apply(by_eve).reason  # type: ignore[union-attr]
    not_a_key = Tx(
        "x",
        Kind.TRANSFER,
        coldkey="bob",
        dest=acct("alice"),
        amount_rao=1,
        nonce=1,
        signature=b"\0" * 64,
    )
    assert "not an account id" in state.apply(not_a_key).reason  # type: ignore[union-attr]


def test_nonce_must_be_the_next_one() -> None:
    state = funded()
    stale = signed(state, transfer("t1", "bob", "alice", 1), nonce=1)  # bob used nonce 1
    outcome = state.apply(stale)
    assert isinstance(outcome, Rejected) and "nonce" in outcome.reason
    skipped = signed(state, transfer("t2", "bob", "alice", 1), nonce=5)
    assert isinstance(state.apply(skipped), Rejected)
    assert isinstance(do(state, transfer("t3", "bob", "alice", 1)), Applied)
    assert state.nonces[acct("bob")] == 2


def test_same_id_same_content_exists_other_content_rejected() -> None:
    state = funded()
    tx = signed(state, transfer("t", "bob", "alice", 5))
    assert isinstance(state.apply(tx), Applied)
    assert isinstance(state.apply(tx), Exists)
    outcome = do(state, transfer("t", "bob", "alice", 6))
    assert isinstance(outcome, Rejected) and "different content" in outcome.reason
    assert state.balance(acct("alice")) == 90 * TAO + 5


def test_unstake_more_than_staked_rejected() -> None:
    state = funded()
    add = Tx("a", Kind.ADD_STAKE, coldkey=acct("bob"), hotkey=acct("bob-hot"), amount_rao=3)
    assert isinstance(do(state, add), Applied)
    remove = Tx("b", Kind.REMOVE_STAKE, coldkey=acct("bob"), hotkey=acct("bob-hot"), amount_rao=4)
    outcome = do(state, remove)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "cannot unstake 0.000000004 τ: 0.000000003 τ staked"


def test_delegation_to_any_registered_hotkey() -> None:
    state = funded()
    add = Tx("a", Kind.ADD_STAKE, coldkey=acct("alice"), hotkey=acct("bob-hot"), amount_rao=7)
    assert isinstance(do(state, add), Applied)
    assert state.hotkey_stake(acct("bob-hot")) == 7
    nobody = Tx("b", Kind.ADD_STAKE, coldkey=acct("alice"), hotkey=acct("eve"), amount_rao=1)
    outcome = do(state, nobody)
    assert isinstance(outcome, Rejected) and "not registered" in outcome.reason


def register(
    state: LedgerState, tx_id: str, who: str, hot: str, amount: int | None = None
) -> object:
    cost = state.registration_cost("sn") if amount is None else amount
    return do(
        state,
        Tx(tx_id, Kind.REGISTER, subnet="sn", coldkey=acct(who), hotkey=acct(hot), amount_rao=cost),
    )


def test_registration_burns_exact_current_cost_which_rises() -> None:
    state = funded()
    cost = state.registration_cost("sn")
    assert cost == TAO * 11 // 10  # 1 τ initial, +10 % after bob's registration
    wrong = register(state, "r2", "alice", "carol-hot", amount=TAO)
    assert isinstance(wrong, Rejected) and "exactly" in wrong.reason
    assert isinstance(register(state, "r3", "alice", "carol-hot"), Applied)
    assert state.registration_cost("sn") == cost * 11 // 10
    assert state.burned_rao == TAO + cost


def test_full_subnet_refuses_while_every_uid_is_immune() -> None:
    state = funded()
    assert isinstance(register(state, "r3", "alice", "carol-hot"), Applied)
    full = register(state, "r4", "alice", "dave")
    assert isinstance(full, Rejected) and "immune" in full.reason
    stolen = register(state, "r5", "alice", "bob-hot")
    assert isinstance(stolen, Rejected)


def test_full_subnet_replaces_lowest_emission_non_immune_uid() -> None:
    state = funded()
    assert isinstance(register(state, "r3", "alice", "carol-hot"), Applied)
    # Epoch 0 far past the immunity period pays bob's uid 0 but not carol's uid 1.
    batch = epoch_batch(state, "sn", block=10_000, incentive=[1, 0])
    apply_all(state, batch)
    assert [(tx.kind, tx.uid) for tx in batch[1:]] == [
        (Kind.EMISSION_OWNER, -1),
        (Kind.EMISSION_INCENTIVE, 0),
    ]
    assert isinstance(register(state, "r4", "alice", "dave"), Applied)
    assert state.neurons["sn"][1].hotkey == acct("dave")
    assert state.neurons["sn"][1].registered_block == 10_000
    assert state.neurons["sn"][0].hotkey == acct("bob-hot")


def test_registration_cost_decays_each_epoch_down_to_the_minimum() -> None:
    state = funded()
    before = state.registration_cost("sn")
    apply_all(state, epoch_batch(state, "sn", block=10))
    assert state.registration_cost("sn") == before * 95 // 100
    for epoch in range(1, 200):
        apply_all(state, epoch_batch(state, "sn", block=10 + epoch))
    assert state.last_epoch["sn"] == 199
    assert state.registration_cost("sn") == TAO // 10


def test_registration_records_the_ledger_block_not_the_senders() -> None:
    state = funded()
    tx = Tx(
        "r3",
        Kind.REGISTER,
        subnet="sn",
        coldkey=acct("alice"),
        hotkey=acct("carol-hot"),
        amount_rao=state.registration_cost("sn"),
        block=10**9,
    )
    assert isinstance(do(state, tx), Applied)
    assert state.neurons["sn"][1].registered_block == 0
    assert state.block == 0


def test_system_entries_refused_from_users() -> None:
    outcome = LedgerState().apply(mint("m", "eve", TAO), allow_system=False)
    assert isinstance(outcome, Rejected) and "network" in outcome.reason


def test_take_bounds_and_rate_limited_increase() -> None:
    state = funded()
    take = TAKE_DEFAULT_PPM
    validator = Tx(
        "rv",
        Kind.REGISTER,
        subnet="sn",
        coldkey=acct("bob"),
        hotkey=acct("carol-hot"),
        amount_rao=state.registration_cost("sn"),
        payload=canonical_json({"role": "validator"}),
    )
    assert isinstance(do(state, validator), Applied)

    def set_take(tx_id: str, ppm: int, who: str = "bob", hot: str = "carol-hot") -> object:
        return do(
            state,
            Tx(
                tx_id,
                Kind.SET_TAKE,
                coldkey=acct(who),
                hotkey=acct(hot),
                payload=canonical_json({"take_ppm": ppm}),
            ),
        )

    miner = set_take("tm", take // 2, hot="bob-hot")  # bob-hot is registered as a miner
    assert isinstance(miner, Rejected) and "take is a validator setting" in miner.reason
    assert isinstance(set_take("t0", take + 1), Rejected)  # above the maximum
    assert isinstance(set_take("t1", take // 2, who="alice"), Rejected)  # not the owner
    assert isinstance(set_take("t2", take // 2), Applied)  # decrease: immediate
    assert isinstance(set_take("t3", take // 2 + 1), Applied)  # first increase
    outcome = set_take("t4", take // 2 + 2)  # second increase too soon
    assert isinstance(outcome, Rejected) and "next increase" in outcome.reason
    apply_all(state, epoch_batch(state, "sn", block=TAKE_INCREASE_INTERVAL_BLOCKS))
    assert isinstance(set_take("t5", take // 2 + 2), Applied)
    assert state.take_ppm(acct("carol-hot")) == take // 2 + 2
    assert state.take_ppm(acct("bob-hot")) == take


def test_weights_commit_then_matching_reveal() -> None:
    state = funded()  # bob-hot is uid 0, a miner: it may commit only its self-weight
    body = {"uids": [0], "weights": [65535], "salt": "ab"}
    commit_hash = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    undeclared = Tx(
        "c0",
        Kind.WEIGHTS_COMMIT,
        subnet="sn",
        hotkey=acct("bob-hot"),
        payload=canonical_json({"commit_hash": commit_hash}),
    )
    outcome = do(state, undeclared)
    assert isinstance(outcome, Rejected) and "only validators with a permit" in outcome.reason
    commit = Tx(
        "c",
        Kind.WEIGHTS_COMMIT,
        subnet="sn",
        hotkey=acct("bob-hot"),
        payload=canonical_json({"commit_hash": commit_hash, "self_weight": True}),
    )
    assert isinstance(do(state, commit), Applied)
    lie = Tx(
        "r1",
        Kind.WEIGHTS_REVEAL,
        subnet="sn",
        hotkey=acct("bob-hot"),
        payload=canonical_json({**body, "weights": [1]}),
    )
    outcome = do(state, lie)
    assert isinstance(outcome, Rejected) and "do not match" in outcome.reason
    reveal = Tx(
        "r2", Kind.WEIGHTS_REVEAL, subnet="sn", hotkey=acct("bob-hot"), payload=canonical_json(body)
    )
    assert isinstance(do(state, reveal), Applied)
    assert state.revealed_weights[("sn", acct("bob-hot"))]["weights"] == [65535]


def test_epoch_paid_once_in_order_and_exactly() -> None:
    state = funded()
    batch = epoch_batch(state, "sn", block=10, incentive=[1])
    epoch, owner, incentive = batch
    skip = dataclasses.replace(epoch, tx_id="e1", epoch=1)
    outcome = state.apply(skip)
    assert isinstance(outcome, Rejected) and "out of order: next is 0" in outcome.reason
    assert isinstance(state.apply(epoch), Applied)
    over = dataclasses.replace(owner, amount_rao=owner.amount_rao + 1)
    outcome = state.apply(over)
    assert isinstance(outcome, Rejected)
    expected = f"must be exactly {owner.amount_rao} rao, not {owner.amount_rao + 1}"
    assert outcome.reason == f"emission_owner of uid -1 {expected}"
    assert isinstance(state.apply(incentive), Applied)
    with pytest.raises(
        SupplyIdentityViolated, match=f"{owner.amount_rao} rao announced but not paid"
    ):
        state.check_epochs_complete()
    assert isinstance(state.apply(owner), Applied)
    state.check_epochs_complete()
    state.check_supply()
    again = dataclasses.replace(epoch, tx_id="e0b")
    outcome = state.apply(again)
    assert isinstance(outcome, Rejected) and "out of order: next is 1" in outcome.reason


def test_supply_violation_is_a_dedicated_error() -> None:
    state = funded()
    state.balances[acct("bob")] += 1  # corrupt the fold on purpose
    with pytest.raises(SupplyIdentityViolated):
        state.check_supply()


def test_pure_apply_does_not_touch_its_input() -> None:
    state = funded()
    before = state.copy()
    result = apply(state, signed(state, transfer("t", "bob", "carol", 1)))
    assert isinstance(result, LedgerState) and result.balance(acct("carol")) == 1
    assert state == before
