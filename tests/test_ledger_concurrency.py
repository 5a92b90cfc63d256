"""2–8 processes committing at once: one writer at a time, each id applied once, no corruption."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from ledger_helpers import (
    TAO,
    acct,
    concurrent_worker,
    epoch_worker,
    mint,
    signed,
)

from taoflow.ledger.schema import Kind, Tx, table_to_txs
from taoflow.ledger.store import Ledger

TRANSFERS_PER_PROCESS = 5
WRITERS = ("alice", "bob", "dave", "eve", "frank")
JOIN_TIMEOUT_S = 120


def setup_ledger(root: Path) -> Ledger:
    ledger = Ledger.open(root)
    ledger.commit([mint(f"mint/{n}", n, 100 * TAO) for n in (*WRITERS, "carol")])
    create = Tx(
        "create",
        Kind.SUBNET_CREATE,
        subnet="sn",
        coldkey=acct("carol"),
        hotkey=acct("carol-hot"),
        amount_rao=TAO,
        payload='{"tempo_blocks":10}',
    )
    ledger.commit([signed(ledger.state(), create)])
    return ledger


def run_all(targets: list[tuple[object, tuple[object, ...]]]) -> list[tuple[object, ...]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(targets))
    results = ctx.Queue()
    procs = [ctx.Process(target=t, args=(*a, barrier, results)) for t, a in targets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_TIMEOUT_S)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    out = []
    while not results.empty():
        out.append(results.get())
    return out


@pytest.mark.parametrize("writers", [2, 5])  # 5 and 8 processes in all
def test_concurrent_writers_and_duplicate_epoch_attempts(tmp_path: Path, writers: int) -> None:
    setup_ledger(tmp_path)
    names = WRITERS[:writers]
    targets: list[tuple[object, tuple[object, ...]]] = [
        (concurrent_worker, (str(tmp_path), name, TRANSFERS_PER_PROCESS)) for name in names
    ]
    # Two identical attempts at epoch 0 and one conflicting attempt, all at once.
    targets += [(epoch_worker, (str(tmp_path), "same")) for _ in range(2)]
    targets.append((epoch_worker, (str(tmp_path), "other")))
    results = run_all(targets)

    ledger = Ledger.open(tmp_path)
    report = ledger.verify()
    assert report.ok, report.problem
    transfer_results = [r for r in results if r[0] != "epoch"]
    assert len(transfer_results) == writers * TRANSFERS_PER_PROCESS
    assert all(isinstance(r[2], int) for r in transfer_results)  # each got its own batch
    epoch_results = [r for r in results if r[0] == "epoch"]
    committed = [r for r in epoch_results if isinstance(r[2], int)]
    assert len(committed) == 1, epoch_results
    winner_note = committed[0][1]
    for _, note, outcome in epoch_results:
        if outcome is None:  # the identical retry found the epoch already committed
            assert note == winner_note
        elif isinstance(outcome, str):
            assert note != winner_note and "different content" in outcome
    rows = [tx for r in ledger.records() for tx in table_to_txs(ledger.read_table(r))]
    ids = [tx.tx_id for tx in rows]
    assert len(ids) == len(set(ids))
    assert ids.count("epoch/sn/0") == 1
    state = ledger.state()
    paid = sum(range(1, TRANSFERS_PER_PROCESS + 1))
    for name in names:
        assert state.balance(acct(name)) == 100 * TAO - paid
    # Epoch 0 pays carol, the owner, 18 % of 10 blocks of 1 τ (no uids: the rest is unissued).
    owner_rao = 1_800_000_000
    assert state.issued_rao == 600 * TAO + owner_rao
    assert state.balance(acct("carol")) == 99 * TAO + writers * paid + owner_rao
    state.check_supply()
