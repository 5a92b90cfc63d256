"""Model-based property test: ≥ 10,000 random operation sequences against a tiny in-memory model.

The model is a few dictionaries written independently of ``ledger.state``; after every step the
ledger's outcome (applied / exists / rejected) must be the one the model predicts, every rejection
must carry a reason, balances and stakes must be identical, and the supply identity must hold.
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import TAO, acct, mint, signed

from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.state import Applied, Exists, LedgerState, Rejected

SEQUENCES = 10_000
PEOPLE = ("alice", "bob", "carol")
HOTKEYS = ("alice-hot", "bob-hot", "carol-hot")
UIDS_MAX = 2
START_RAO = 50 * TAO

OP = st.tuples(
    st.sampled_from(
        ["transfer", "stake", "unstake", "register", "retry", "reuse-id", "tamper", "bad-nonce"]
    ),
    st.sampled_from(PEOPLE),
    st.sampled_from(PEOPLE),
    st.sampled_from(HOTKEYS),
    st.one_of(st.integers(min_value=0, max_value=60 * TAO), st.integers(0, 3)),
)


def genesis() -> LedgerState:
    state = LedgerState()
    for name in PEOPLE:
        state.apply(mint(f"mint/{name}", name, START_RAO))
    config = canonical_json({"tempo_blocks": 5, "registration_cost_rao": TAO, "uids_max": UIDS_MAX})
    create = Tx(
        "create",
        Kind.SUBNET_CREATE,
        subnet="sn",
        coldkey=acct("alice"),
        hotkey=acct("alice-hot"),
        amount_rao=TAO,
        payload=config,
    )
    if not isinstance(state.apply(signed(state, create)), Applied):
        raise RuntimeError("genesis failed")
    return state


@settings(
    max_examples=SEQUENCES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(st.lists(OP, max_size=10))
def test_ledger_matches_model(ops: list[tuple[str, str, str, str, int]]) -> None:
    state = genesis()
    balance = {acct(p): START_RAO for p in PEOPLE}
    balance[acct("alice")] -= TAO
    stake: dict[tuple[str, str], int] = {}
    owner = {acct("alice-hot"): acct("alice")}
    registered: set[str] = set()
    history: list[Tx] = []
    reg_cost = TAO  # model of the rising registration cost: +10 % per registration
    for n, (op, a, b, hot, amount) in enumerate(ops):
        src, dst, hk = acct(a), acct(b), acct(hot)
        expect: type = Applied
        if op in ("retry", "reuse-id", "tamper", "bad-nonce"):
            if not history:
                continue
            base = history[n % len(history)]
            if op == "retry":
                tx, expect = base, Exists
            elif op == "reuse-id":
                tx = signed(state, dataclasses.replace(base, amount_rao=base.amount_rao + 1))
                expect = Rejected
            elif op == "tamper":
                tx = dataclasses.replace(
                    signed(state, dataclasses.replace(base, tx_id=f"t{n}")),
                    amount_rao=base.amount_rao + 1,
                )
                expect = Rejected
            else:
                tx = signed(
                    state,
                    dataclasses.replace(base, tx_id=f"n{n}"),
                    nonce=state.next_nonce(base.coldkey) + 1,
                )
                expect = Rejected
        else:
            if op == "transfer":
                tx = Tx(f"x{n}", Kind.TRANSFER, coldkey=src, dest=dst, amount_rao=amount)
                ok = src != dst and 0 < amount <= balance[src]
            elif op == "stake":
                tx = Tx(f"x{n}", Kind.ADD_STAKE, coldkey=src, hotkey=hk, amount_rao=amount)
                ok = hk in owner and 0 < amount <= balance[src]
            elif op == "unstake":
                tx = Tx(f"x{n}", Kind.REMOVE_STAKE, coldkey=src, hotkey=hk, amount_rao=amount)
                ok = 0 < amount <= stake.get((src, hk), 0)
            else:
                tx = Tx(
                    f"x{n}",
                    Kind.REGISTER,
                    subnet="sn",
                    coldkey=src,
                    hotkey=hk,
                    amount_rao=reg_cost,
                )
                ok = (
                    hk not in registered
                    and owner.get(hk, src) == src
                    and len(registered) < UIDS_MAX
                    and balance[src] >= reg_cost
                )
            tx = signed(state, tx)
            expect = Applied if ok else Rejected
        outcome = state.apply(tx)
        assert type(outcome) is expect, (op, tx, outcome)
        if isinstance(outcome, Rejected):
            assert outcome.reason
            continue
        if isinstance(outcome, Exists):
            continue
        history.append(tx)
        if tx.kind == Kind.TRANSFER:
            balance[src] -= amount
            balance[dst] += amount
        elif tx.kind == Kind.ADD_STAKE:
            balance[src] -= amount
            stake[(src, hk)] = stake.get((src, hk), 0) + amount
        elif tx.kind == Kind.REMOVE_STAKE:
            stake[(src, hk)] -= amount
            balance[src] += amount
        elif tx.kind == Kind.REGISTER:
            balance[src] -= reg_cost
            reg_cost = reg_cost * 11 // 10
            registered.add(hk)
            owner[hk] = src
        state.check_supply()
    assert {k: v for k, v in balance.items() if v} == state.balances
    assert {k: v for k, v in stake.items() if v} == state.stakes
