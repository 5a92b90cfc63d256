"""The rules as a state machine: every rejection explained, state untouched, identity exact."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.schema import Kind, Tx, canonical_json
from ledger.state import Applied, Exists, LedgerState, Rejected, apply

TAO = 10**9


def funded() -> LedgerState:
    state = LedgerState()
    for i, name in enumerate(["alice", "bob"]):
        assert isinstance(
            state.apply(Tx(f"m{i}", Kind.GENESIS_MINT, coldkey=name, amount_rao=100 * TAO)), Applied
        )
    config = canonical_json({"tempo_blocks": 10, "registration_cost_rao": TAO, "uids_max": 2})
    create = Tx(
        "s",
        Kind.SUBNET_CREATE,
        subnet="sn",
        coldkey="alice",
        hotkey="alice-hot",
        amount_rao=10 * TAO,
        payload=config,
    )
    assert isinstance(state.apply(create), Applied)
    reg = Tx("r", Kind.REGISTER, subnet="sn", coldkey="bob", hotkey="bob-hot", amount_rao=TAO)
    assert isinstance(state.apply(reg), Applied)
    return state


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
    outcome = state.apply(
        Tx("t", Kind.TRANSFER, coldkey="bob", dest="alice", amount_rao=1000 * TAO)
    )
    assert isinstance(outcome, Rejected)
    assert "insufficient balance" in outcome.reason
    assert state == before


def test_same_id_same_content_exists_other_content_rejected() -> None:
    state = funded()
    tx = Tx("t", Kind.TRANSFER, coldkey="bob", dest="alice", amount_rao=5)
    assert isinstance(state.apply(tx), Applied)
    assert isinstance(state.apply(tx), Exists)
    other = Tx("t", Kind.TRANSFER, coldkey="bob", dest="alice", amount_rao=6)
    outcome = state.apply(other)
    assert isinstance(outcome, Rejected) and "different content" in outcome.reason
    assert state.balance("alice") == 90 * TAO + 5


def test_unstake_more_than_staked_rejected() -> None:
    state = funded()
    assert isinstance(
        state.apply(Tx("a", Kind.ADD_STAKE, coldkey="bob", hotkey="bob-hot", amount_rao=3)), Applied
    )
    outcome = state.apply(Tx("b", Kind.REMOVE_STAKE, coldkey="bob", hotkey="bob-hot", amount_rao=4))
    assert isinstance(outcome, Rejected) and "3 rao staked" in outcome.reason


def test_stake_to_unregistered_hotkey_rejected() -> None:
    outcome = funded().apply(Tx("a", Kind.ADD_STAKE, coldkey="bob", hotkey="nobody", amount_rao=1))
    assert isinstance(outcome, Rejected) and "not registered" in outcome.reason


def test_registration_burns_exact_cost_and_respects_capacity() -> None:
    state = funded()
    wrong = Tx("r2", Kind.REGISTER, subnet="sn", coldkey="alice", hotkey="a2", amount_rao=2 * TAO)
    assert isinstance(state.apply(wrong), Rejected)
    ok = Tx("r3", Kind.REGISTER, subnet="sn", coldkey="alice", hotkey="a3", amount_rao=TAO)
    assert isinstance(state.apply(ok), Applied)
    full = Tx("r4", Kind.REGISTER, subnet="sn", coldkey="alice", hotkey="a4", amount_rao=TAO)
    outcome = state.apply(full)
    assert isinstance(outcome, Rejected) and "full" in outcome.reason
    stolen = Tx(
        "r5", Kind.REGISTER, subnet="sn2", coldkey="alice", hotkey="bob-hot", amount_rao=TAO
    )
    assert isinstance(state.apply(stolen), Rejected)


def test_system_entries_refused_from_users() -> None:
    outcome = LedgerState().apply(
        Tx("m", Kind.GENESIS_MINT, coldkey="eve", amount_rao=TAO), allow_system=False
    )
    assert isinstance(outcome, Rejected) and "network" in outcome.reason


def test_epoch_paid_once_in_order_and_exactly() -> None:
    state = funded()
    skip = Tx("e1", Kind.EPOCH, subnet="sn", epoch=1, block=10, amount_rao=10)
    assert isinstance(state.apply(skip), Rejected)
    assert isinstance(
        state.apply(Tx("e0", Kind.EPOCH, subnet="sn", epoch=0, block=10, amount_rao=10)), Applied
    )
    over = Tx("p", Kind.EMISSION_OWNER, subnet="sn", epoch=0, coldkey="alice", amount_rao=11)
    assert isinstance(state.apply(over), Rejected)
    pay = Tx(
        "p",
        Kind.EMISSION_INCENTIVE,
        subnet="sn",
        epoch=0,
        coldkey="bob",
        hotkey="bob-hot",
        amount_rao=4,
    )
    assert isinstance(state.apply(pay), Applied)
    try:
        state.check_epochs_complete()
        raise AssertionError("an epoch with 6 rao unpaid must not pass")
    except Exception as exc:
        assert "not paid" in str(exc)
    again = Tx("e0b", Kind.EPOCH, subnet="sn", epoch=0, block=10, amount_rao=10)
    assert isinstance(state.apply(again), Rejected)


def test_pure_apply_does_not_touch_its_input() -> None:
    state = funded()
    before = state.copy()
    result = apply(state, Tx("t", Kind.TRANSFER, coldkey="bob", dest="carol", amount_rao=1))
    assert isinstance(result, LedgerState) and result.balance("carol") == 1
    assert state == before


OPS = st.lists(
    st.tuples(
        st.sampled_from(["transfer", "stake", "unstake", "register"]),
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from(["alice", "bob", "carol"]),
        st.integers(min_value=0, max_value=120 * TAO),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_random_sequences_keep_identity_and_match_a_simple_model(ops: list) -> None:
    state = funded()
    model_bal = {"alice": 90 * TAO, "bob": 99 * TAO, "carol": 0}
    model_stake: dict[str, int] = {}
    for n, (op, src, dst, amount) in enumerate(ops):
        if op == "transfer":
            tx = Tx(f"x{n}", Kind.TRANSFER, coldkey=src, dest=dst, amount_rao=amount)
            ok = src != dst and model_bal[src] >= amount
            if ok:
                model_bal[src] -= amount
                model_bal[dst] += amount
        elif op == "stake":
            tx = Tx(f"x{n}", Kind.ADD_STAKE, coldkey=src, hotkey="bob-hot", amount_rao=amount)
            ok = 0 < amount <= model_bal[src]
            if ok:
                model_bal[src] -= amount
                model_stake[src] = model_stake.get(src, 0) + amount
        elif op == "unstake":
            tx = Tx(f"x{n}", Kind.REMOVE_STAKE, coldkey=src, hotkey="bob-hot", amount_rao=amount)
            ok = 0 < amount <= model_stake.get(src, 0)
            if ok:
                model_stake[src] -= amount
                model_bal[src] += amount
        else:
            tx = Tx(
                f"x{n}",
                Kind.REGISTER,
                subnet="sn",
                coldkey=src,
                hotkey=f"{src}-{n}",
                amount_rao=TAO,
            )
            ok = len(state.neurons["sn"]) < 2 and model_bal[src] >= TAO
            if ok:
                model_bal[src] -= TAO
        outcome = state.apply(tx)
        assert isinstance(outcome, Applied) == ok, (tx, outcome)
        if isinstance(outcome, Rejected):
            assert outcome.reason
        state.check_supply()
    for name, balance in model_bal.items():
        assert state.balance(name) == balance
    for name, stake in model_stake.items():
        assert state.stake(coldkey=name, hotkey="bob-hot") == stake
