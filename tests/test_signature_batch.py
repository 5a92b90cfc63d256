"""Bulk signature checks (``ledger.signature_batch``) give exactly ``signature_problem``'s answers,
whatever the worker count and chunk size, from ``Tx`` objects or from a ledger Arrow table; the
fast signed-message builder gives the same bytes as the canonical-JSON one."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from dataclasses import fields
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import acct, key

import taoflow.ledger.signature_batch as batch
from taoflow.ledger.schema import Kind, Tx, canonical_json, txs_to_table
from taoflow.ledger.signature_batch import (
    BAD_SIGNATURE,
    MISSING_SIGNATURE,
    SYSTEM_SIGNED,
    signature_problems,
    signature_problems_table,
)
from taoflow.ledger.signing import (
    DOMAIN_TAG,
    SIGNED_FOR_ANOTHER_NETWORK,
    network_prefix,
    sign,
    signature_problem,
    signing_message,
)

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(_ROOT))

from benchmarks.signatures import bench  # noqa: E402

NETWORK = hashlib.sha256(b"test-network/bulk").hexdigest()
OTHER_NETWORK = hashlib.sha256(b"test-network/other").hexdigest()
NOT_A_CURVE_POINT = "ff" * 32


def reference_message(tx: Tx, network_id: str) -> bytes:
    """The signed message as ledgers were first signed with it (canonical JSON of a dict)."""
    body = {f.name: getattr(tx, f.name) for f in fields(tx) if f.name != "signature"}
    body["kind"] = str(tx.kind)
    return DOMAIN_TAG + network_id.encode() + b"\x00" + canonical_json(body).encode()


def transfer(i: int, *, name: str = "alice", network_id: str = NETWORK) -> Tx:
    tx = Tx(
        f"transfer/{i}",
        Kind.TRANSFER,
        coldkey=acct(name),
        dest=acct("bob"),
        amount_rao=1_000 + i,
        nonce=i,
        payload='{"memo":"caf\\u00e9 \\"quoted\\""}',
    )
    return sign(tx, key(name), network_id=network_id)


def mixed_txs() -> tuple[list[Tx], list[str | None]]:
    """One transaction of every outcome, and the answer each must get."""
    valid = transfer(1)
    weights = sign(
        Tx("weights/1", Kind.WEIGHTS_COMMIT, subnet="digits", hotkey=acct("alice-hot"), nonce=1),
        key("alice-hot"),
        network_id=NETWORK,
    )
    signed_by_other_key = dataclasses.replace(
        transfer(3),
        signature=sign(transfer(3, name="bob"), key("bob"), network_id=NETWORK).signature,
    )
    cases: list[tuple[Tx, str | None]] = [
        (valid, None),
        (weights, None),
        (dataclasses.replace(transfer(2), amount_rao=999_999), BAD_SIGNATURE),
        (transfer(4, network_id=OTHER_NETWORK), SIGNED_FOR_ANOTHER_NETWORK),
        (dataclasses.replace(transfer(5), signature=transfer(5).signature[:-1]), BAD_SIGNATURE),
        (dataclasses.replace(transfer(6), signature=b""), MISSING_SIGNATURE),
        (signed_by_other_key, BAD_SIGNATURE),
        (
            dataclasses.replace(transfer(7), coldkey=acct("alice").upper()),
            f"signer {acct('alice').upper()[:20]!r} is not an account id (64 hex digits)",
        ),
        (
            dataclasses.replace(transfer(8), coldkey=NOT_A_CURVE_POINT),
            BAD_SIGNATURE,
        ),
        (Tx("mint/1", Kind.GENESIS_MINT, coldkey=acct("carol"), amount_rao=5), None),
        (Tx("epoch/1", Kind.EPOCH, subnet="digits", epoch=1, signature=b"x" * 96), SYSTEM_SIGNED),
        (transfer(9), None),
    ]
    return [tx for tx, _ in cases], [answer for _, answer in cases]


def test_mixed_transactions_get_signature_problems_answers() -> None:
    txs, expected = mixed_txs()
    one_by_one = [signature_problem(tx, network_id=NETWORK) for tx in txs]
    assert one_by_one == expected
    assert signature_problems(txs, network_id=NETWORK, workers=1) == expected


def test_table_rows_get_the_same_answers() -> None:
    txs, expected = mixed_txs()
    table = txs_to_table(txs)
    assert signature_problems_table(table, network_id=NETWORK, workers=1) == expected
    two_chunks = pa.concat_tables([table.slice(0, 5), table.slice(5)])
    assert two_chunks.column("kind").num_chunks == 2
    assert signature_problems_table(two_chunks, network_id=NETWORK, workers=1) == expected


def test_same_answers_with_one_or_two_workers_and_many_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    txs, expected = mixed_txs()
    many = txs * 5
    pool_calls: list[int] = []
    real = batch._verify_in_workers

    def counting(jobs: list[tuple[str, bytes, bytes]], *, workers: int, chunk_txs: int) -> bytes:
        pool_calls.append(workers)
        return real(jobs, workers=workers, chunk_txs=chunk_txs)

    monkeypatch.setattr(batch, "_verify_in_workers", counting)
    alone = signature_problems(many, network_id=NETWORK, workers=1, chunk_txs=3)
    assert pool_calls == []
    pooled = signature_problems(
        many, network_id=NETWORK, workers=2, parallel_min_txs=0, chunk_txs=3
    )
    table = signature_problems_table(
        txs_to_table(many), network_id=NETWORK, workers=2, parallel_min_txs=0, chunk_txs=4
    )
    assert pool_calls == [2, 2]
    assert alone == pooled == table == expected * 5


def test_below_the_threshold_no_pool_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("a pool was started")

    monkeypatch.setattr(batch, "_verify_in_workers", refuse)
    txs, expected = mixed_txs()
    assert signature_problems(txs, network_id=NETWORK, workers=2, chunk_txs=2) == expected


def test_a_daemonic_caller_verifies_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("a pool was started")

    class Daemonic:
        daemon = True

    monkeypatch.setattr(batch, "_verify_in_workers", refuse)
    monkeypatch.setattr(batch.multiprocessing, "current_process", Daemonic)
    txs, expected = mixed_txs()
    answers = signature_problems(
        txs, network_id=NETWORK, workers=2, parallel_min_txs=0, chunk_txs=2
    )
    assert answers == expected


def test_empty_input() -> None:
    assert signature_problems([], network_id=NETWORK) == []
    assert signature_problems_table(txs_to_table([]), network_id=NETWORK) == []


def test_table_system_rows_build_no_message(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = batch.signing_body

    def counting(**fields_: object) -> bytes:
        built.append(str(fields_["tx_id"]))
        return real(**fields_)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "signing_body", counting)
    txs, expected = mixed_txs()
    assert signature_problems_table(txs_to_table(txs), network_id=NETWORK) == expected
    assert built == [
        "transfer/1",
        "weights/1",
        "transfer/2",
        "transfer/3",
        "transfer/8",
        "transfer/9",
    ]


def test_table_unknown_kind_row_is_named() -> None:
    table = txs_to_table([transfer(1), transfer(2)])
    kinds = pa.chunked_array([pa.array(["transfer", "bogus"])])
    table = table.set_column(
        table.schema.get_field_index("kind"), table.schema.field("kind"), kinds
    )
    answers = signature_problems_table(table, network_id=NETWORK)
    assert answers == [None, "unknown transaction kind 'bogus'"]


def test_hostile_table_and_options_are_refused() -> None:
    table = txs_to_table([transfer(1)])
    with pytest.raises(ValueError, match="ledger transaction schema"):
        signature_problems_table(table.drop_columns(["payload"]), network_id=NETWORK)
    with pytest.raises(ValueError, match="network id"):
        signature_problems([transfer(1)], network_id="abc")
    with pytest.raises(ValueError, match="workers"):
        signature_problems([transfer(1)], network_id=NETWORK, workers=0)
    with pytest.raises(ValueError, match="chunk_txs"):
        signature_problems([transfer(1)], network_id=NETWORK, chunk_txs=0)


def test_table_with_nulls_is_refused() -> None:
    table = txs_to_table([transfer(1)])
    nullable = pa.schema([f.with_nullable(True) for f in table.schema])
    hostile = pa.table(
        {**table.to_pydict(), "payload": pa.array([None], pa.string())}, schema=nullable
    )
    with pytest.raises(ValueError, match="null"):
        signature_problems_table(hostile.cast(table.schema), network_id=NETWORK)


def test_no_network_prefix_is_zeros() -> None:
    tx = transfer(1, network_id="")
    assert tx.signature[:32] == network_prefix("")
    assert signature_problems([tx], network_id="") == [None]
    assert signature_problems([tx], network_id=NETWORK) == [SIGNED_FOR_ANOTHER_NETWORK]


_TEXT = st.text(max_size=40)
_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(
    tx_id=st.text(min_size=1, max_size=40),
    kind=st.sampled_from(list(Kind)),
    subnet=_TEXT,
    coldkey=_TEXT,
    hotkey=_TEXT,
    dest=_TEXT,
    payload=_TEXT,
    epoch=_INT,
    block=_INT,
    uid=_INT,
    nonce=_INT,
    amount_rao=st.integers(min_value=0, max_value=2**63 - 1),
    network_id=st.sampled_from(["", NETWORK]),
)
def test_fast_message_equals_canonical_json(
    tx_id: str,
    kind: Kind,
    subnet: str,
    coldkey: str,
    hotkey: str,
    dest: str,
    payload: str,
    epoch: int,
    block: int,
    uid: int,
    nonce: int,
    amount_rao: int,
    network_id: str,
) -> None:
    tx = Tx(
        tx_id,
        kind,
        subnet=subnet,
        epoch=epoch,
        block=block,
        coldkey=coldkey,
        hotkey=hotkey,
        dest=dest,
        uid=uid,
        amount_rao=amount_rao,
        payload=payload,
        nonce=nonce,
    )
    assert signing_message(tx, network_id) == reference_message(tx, network_id)


def test_message_of_non_plain_fields_equals_canonical_json() -> None:
    class Label(str):
        pass

    odd = [
        Tx("t", Kind.TRANSFER, epoch=True),  # type: ignore[arg-type]
        Tx("t", Kind.TRANSFER, coldkey=Label("x\u2028y")),
        Tx("t", Kind.TRANSFER, uid=2.5),  # type: ignore[arg-type]
        Tx("t\ud800", Kind.TRANSFER, payload="\x00\x1f\x7f\u00ff"),
    ]
    for tx in odd:
        assert signing_message(tx, NETWORK) == reference_message(tx, NETWORK)
    assert b'"epoch":true' in signing_message(odd[0], NETWORK)


def test_benchmark_reports_every_figure() -> None:
    figures = bench(6, n_accounts=2, repeat=1, workers=2)
    assert set(figures) == {
        "txs",
        "raw_per_s",
        "bulk_per_s",
        "bulk_ratio",
        "table_per_s",
        "table_ratio",
        "parallel_per_s",
        "parallel_ratio",
        "workers",
    }
    assert (figures["txs"], figures["workers"]) == (6.0, 2.0)
    assert all(value > 0 for value in figures.values())
