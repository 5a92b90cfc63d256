"""Hostile transactions through the real ``Ledger.commit(..., allow_system=False)``.

Every case must be refused with ``BatchRejected`` and a clear reason, leaving the head hash, the
files on disk and the state exactly as they were.  Cases that the ``Tx`` constructor refuses
(empty id, amount >= 2**63) are also forged past the constructor, as a decoder bug or a
hand-built object would, and must still be refused by the ledger.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import TAO, acct, epoch_batch, key, mint, raw_signature, signed

from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.store import Ledger
from taoflow.ledger.submissions import submission_binding
from taoflow.tasks.weights import ValidatorPolicy, win_rates

SUBNET = "sn"
PER_EPOCH_MAX = 2


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "LOCK"
    }


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    book = Ledger.open(tmp_path)
    book.commit([mint("m/alice", "alice", 100 * TAO), mint("m/bob", "bob", 100 * TAO)])
    book.commit([mint("m/carol", "carol", 100 * TAO)])
    config = canonical_json(
        {
            "tempo_blocks": 10,
            "registration_cost_rao": TAO,
            "uids_max": 8,
            "submissions_per_epoch_max": PER_EPOCH_MAX,
        }
    )
    create = Tx(
        "create",
        Kind.SUBNET_CREATE,
        subnet=SUBNET,
        coldkey=acct("alice"),
        hotkey=acct("alice-hot"),
        amount_rao=10 * TAO,
        payload=config,
    )
    book.commit([signed(book.state(), create)], allow_system=False)
    for who in ("carol", "bob"):  # carol gets the lower uid
        state = book.state()
        register = Tx(
            f"reg/{who}",
            Kind.REGISTER,
            subnet=SUBNET,
            coldkey=acct(who),
            hotkey=acct(f"{who}-hot"),
            amount_rao=state.registration_cost(SUBNET),
        )
        book.commit([signed(state, register)], allow_system=False)
    return book


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _submission(tx_id: str, hot: str, digest: str, *, binding_for: str | None = None) -> Tx:
    hotkey = acct(hot)
    binding = submission_binding(digest=digest, hotkey=acct(binding_for or hot))
    return Tx(
        tx_id,
        Kind.SUBMISSION_COMMIT,
        subnet=SUBNET,
        hotkey=hotkey,
        payload=canonical_json(
            {"digest": digest, "binding": binding, "uri": f"artifact://{digest}"}
        ),
    )


def _transfer(tx_id: str, amount: int = 1, **changes: Any) -> Tx:
    tx = Tx(tx_id, Kind.TRANSFER, coldkey=acct("alice"), dest=acct("bob"), amount_rao=amount)
    return dataclasses.replace(tx, **changes) if changes else tx


def _forged(**values: Any) -> Tx:
    """A ``Tx`` built without its constructor's checks (what a decoder bug could produce)."""
    tx = object.__new__(Tx)
    for spec in fields(Tx):
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        object.__setattr__(tx, spec.name, values.get(spec.name, default))
    return tx


def _sign_forged(ledger: Ledger, tx: Tx) -> Tx:
    nonce = ledger.state().next_nonce(acct("alice"))
    object.__setattr__(tx, "nonce", nonce)
    object.__setattr__(tx, "signature", raw_signature(key("alice"), tx))
    return tx


def _assert_rejected(ledger: Ledger, txs: list[Tx], fragment: str) -> BatchRejected:
    root = ledger.root
    head = ledger.head_hash()
    files = _snapshot(root)
    nonces = dict(ledger.state().nonces)
    balances = dict(ledger.state().balances)
    with pytest.raises(BatchRejected) as caught:
        ledger.commit(txs, allow_system=False)
    assert fragment in caught.value.reason, caught.value.reason
    assert ledger.head_hash() == head
    assert _snapshot(root) == files
    assert ledger.state().nonces == nonces
    assert ledger.state().balances == balances
    reopened = Ledger.open(root)
    assert reopened.head_hash() == head
    return caught.value


def test_unsigned_transaction_is_rejected(ledger: Ledger) -> None:
    state = ledger.state()
    tx = dataclasses.replace(
        _submission("unsigned", "bob-hot", _digest("u")), nonce=state.next_nonce(acct("bob-hot"))
    )
    rejected = _assert_rejected(ledger, [tx], "missing signature")
    assert rejected.tx_id == "unsigned"


def test_transaction_signed_by_another_key_is_rejected(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _transfer("wrong-key"))
    forged = dataclasses.replace(tx, signature=raw_signature(key("eve"), tx))
    _assert_rejected(ledger, [forged], "bad signature")


def test_tampered_signed_transaction_is_rejected(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _transfer("tampered", 1))
    _assert_rejected(ledger, [dataclasses.replace(tx, amount_rao=50 * TAO)], "bad signature")


def test_replayed_transaction_exists_and_changes_nothing(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _transfer("pay-once", 7))
    first = ledger.commit([tx], allow_system=False)
    assert first.applied == 1
    head = ledger.head_hash()
    files = _snapshot(ledger.root)
    balance = ledger.state().balance(acct("bob"))
    again = ledger.commit([tx], allow_system=False)
    assert (again.batch_no, again.applied, again.existed) == (None, 0, 1)
    assert ledger.head_hash() == head
    assert _snapshot(ledger.root) == files
    assert ledger.state().balance(acct("bob")) == balance


def test_replayed_content_under_a_new_id_fails_the_nonce(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _transfer("pay-a", 7))
    ledger.commit([tx], allow_system=False)
    replay = dataclasses.replace(tx, tx_id="pay-b")
    replay = dataclasses.replace(replay, signature=raw_signature(key("alice"), replay))
    _assert_rejected(ledger, [replay], "nonce")


def test_reused_id_with_other_content_is_rejected(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _transfer("pay-x", 7))
    ledger.commit([tx], allow_system=False)
    other = signed(ledger.state(), _transfer("pay-x", 8))
    _assert_rejected(ledger, [other], "already used")


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '"text"', "", "{"])
def test_malformed_payload_is_rejected(ledger: Ledger, payload: str) -> None:
    tx = signed(ledger.state(), _transfer("bad-payload", payload=payload))
    _assert_rejected(ledger, [tx], "payload is not a JSON object")


def test_empty_tx_id_is_refused_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="tx_id"):
        _transfer("")


def test_forged_empty_tx_id_is_rejected_by_the_ledger(ledger: Ledger) -> None:
    tx = _sign_forged(
        ledger,
        _forged(
            tx_id="", kind=Kind.TRANSFER, coldkey=acct("alice"), dest=acct("bob"), amount_rao=1
        ),
    )
    _assert_rejected(ledger, [tx], "id")


def test_oversized_payload_is_rejected(ledger: Ledger) -> None:
    payload = canonical_json({"blob": "x" * (5 * 1024 * 1024)})
    tx = signed(ledger.state(), _transfer("huge", payload=payload))
    _assert_rejected(ledger, [tx], "payload larger than")


def test_oversized_tx_id_and_fields_are_rejected(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _transfer("i" * 10_000))
    _assert_rejected(ledger, [tx], "transaction id longer")
    tx = signed(ledger.state(), _transfer("big-subnet", subnet="s" * 10_000))
    _assert_rejected(ledger, [tx], "subnet longer")


def test_amount_of_2_63_is_refused_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="amount_rao"):
        _transfer("overflow", 2**63)


@pytest.mark.parametrize("amount", [2**63, 2**64 + 5, -1])
def test_forged_out_of_range_amount_is_rejected_by_the_ledger(ledger: Ledger, amount: int) -> None:
    tx = _sign_forged(
        ledger,
        _forged(
            tx_id="overflow",
            kind=Kind.TRANSFER,
            coldkey=acct("alice"),
            dest=acct("bob"),
            amount_rao=amount,
        ),
    )
    _assert_rejected(ledger, [tx], "rao")  # "insufficient balance" or "amount_rao out of range"


def test_system_entry_from_a_user_is_rejected(ledger: Ledger) -> None:
    _assert_rejected(ledger, [mint("free-money", "eve", 10**6 * TAO)], "produced only by")


def test_unregistered_hotkey_submission_is_rejected(ledger: Ledger) -> None:
    tx = signed(ledger.state(), _submission("eve-sub", "eve", _digest("eve")))
    _assert_rejected(ledger, [tx], "not registered")


def test_submission_quota_is_enforced(ledger: Ledger) -> None:
    for index in range(PER_EPOCH_MAX):
        tx = signed(ledger.state(), _submission(f"q{index}", "bob-hot", _digest(f"q{index}")))
        ledger.commit([tx], allow_system=False)
    over = signed(ledger.state(), _submission("q-over", "bob-hot", _digest("q-over")))
    _assert_rejected(ledger, [over], "quota reached")
    commits = ledger.state().submission_commits(subnet=SUBNET, hotkey=acct("bob-hot"))
    assert [c.tx_id for c in commits] == [f"q{i}" for i in range(PER_EPOCH_MAX)]


def test_quota_counts_commits_within_one_batch(ledger: Ledger) -> None:
    state = ledger.state()
    nonce = state.next_nonce(acct("bob-hot"))
    batch = [
        signed(state, _submission(f"b{i}", "bob-hot", _digest(f"b{i}")), nonce=nonce + i)
        for i in range(PER_EPOCH_MAX + 1)
    ]
    _assert_rejected(ledger, batch, "quota reached")


def test_copied_model_keeps_the_original_first(ledger: Ledger) -> None:
    digest = _digest("bob's model")
    original = signed(ledger.state(), _submission("orig", "bob-hot", digest))
    ledger.commit([original], allow_system=False)
    # The network closes epoch 0, so the next commit lands on a later block.
    ledger.commit(epoch_batch(ledger.state(), SUBNET, block=10), allow_system=True)

    stolen = signed(
        ledger.state(), _submission("copy-bound", "carol-hot", digest, binding_for="bob-hot")
    )
    _assert_rejected(ledger, [stolen], "binding does not match")

    own = signed(ledger.state(), _submission("copy-own", "carol-hot", digest))
    assert ledger.commit([own], allow_system=False).applied == 1

    state = ledger.state()
    uid_bob = state.uid_of(subnet=SUBNET, hotkey=acct("bob-hot"))
    uid_carol = state.uid_of(subnet=SUBNET, hotkey=acct("carol-hot"))
    assert uid_bob is not None and uid_carol is not None
    assert uid_carol < uid_bob  # a uid tie-break alone would favour the copier
    blocks = {
        uid: state.submission_commits(subnet=SUBNET, hotkey=acct(hot))[-1].block
        for uid, hot in ((uid_bob, "bob-hot"), (uid_carol, "carol-hot"))
    }
    assert blocks[uid_bob] < blocks[uid_carol]
    rates = win_rates(
        {uid_bob: 0.9, uid_carol: 0.9},
        commit_blocks=blocks,
        current_block=blocks[uid_carol] + 1,
        policy=ValidatorPolicy(),
    )
    assert rates == {uid_bob: 1.0, uid_carol: 0.0}
