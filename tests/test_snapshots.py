"""Snapshots: state from snapshot + tail == state from full replay; a bad snapshot is never used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import TAO, acct, commit_signed, epoch_batch, network_with_subnet

from taoflow.ledger.emission import SHARE_QUANTUM
from taoflow.ledger.errors import LedgerError
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.faults import SNAPSHOT_FAULT_POINTS
from taoflow.ledger.store.snapshots import (
    INDEX_FILE,
    SnapshotRecord,
    index_records,
    snapshot_dir,
    snapshots_dir,
)
from taoflow.ledger.store.writer_key import load_writer_key

SUBNET = "sn"
PEOPLE = ("alice", "bob", "carol", "dave")
REPO = Path(__file__).resolve().parents[1]


def commit(ledger: Ledger, tx: Tx) -> None:
    commit_signed(ledger, tx)


def network(home: Path, *, snapshot_every: int) -> Ledger:
    return network_with_subnet(home, subnet=SUBNET, snapshot_every=snapshot_every)


def step(ledger: Ledger, op: tuple[str, int, int, int], number: int) -> None:
    """One random but valid operation, committed as its own batch."""
    kind, a, b, amount = op
    state = ledger.state()
    giver = PEOPLE[a % len(PEOPLE)]
    taker = PEOPLE[(a + 1 + b % (len(PEOPLE) - 1)) % len(PEOPLE)]  # never the giver
    if kind == "epoch":
        block = state.block + 100
        half = amount % (SHARE_QUANTUM + 1)
        batch = epoch_batch(
            state,
            SUBNET,
            block=block,
            incentive=[SHARE_QUANTUM, 0],
            dividends=[0, SHARE_QUANTUM],
            validator_share=[SHARE_QUANTUM - half, SHARE_QUANTUM],
        )
        ledger.commit(batch)
        return
    have = state.balance(acct(giver))
    value = 1 + amount % max(1, have // 4)
    if kind == "transfer" and have > value + TAO:
        commit(
            ledger,
            Tx(
                f"t/{number}",
                Kind.TRANSFER,
                coldkey=acct(giver),
                dest=acct(taker),
                amount_rao=value,
            ),
        )
    elif kind == "stake" and have > value + TAO:
        commit(
            ledger,
            Tx(
                f"s/{number}",
                Kind.ADD_STAKE,
                coldkey=acct(giver),
                hotkey=acct("carol-hot"),
                amount_rao=value,
            ),
        )
    elif kind == "unstake":
        staked = state.stake(coldkey=acct(giver), hotkey=acct("carol-hot"))
        if staked and have > TAO:
            commit(
                ledger,
                Tx(
                    f"u/{number}",
                    Kind.REMOVE_STAKE,
                    coldkey=acct(giver),
                    hotkey=acct("carol-hot"),
                    amount_rao=1 + amount % staked,
                ),
            )


def full_replay(root: Path) -> LedgerState:
    """The state replayed from genesis (snapshots moved away, then put back)."""
    parked = root.parent / "parked-snapshots"
    snapshots_dir(root).mkdir(exist_ok=True)
    shutil.move(snapshots_dir(root), parked)
    try:
        fresh = Ledger(root, snapshot_every=0)
        state = fresh.state()
        assert fresh.last_snapshot_load.used is None
        return state
    finally:
        shutil.move(parked, snapshots_dir(root))


OPS = st.tuples(
    st.sampled_from(["transfer", "stake", "unstake", "epoch"]),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 10**12),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=14), every=st.sampled_from([1, 2, 3, 5]))
def test_state_from_snapshot_plus_tail_equals_full_replay(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int, int]], every: int
) -> None:
    home = tmp_path_factory.mktemp("home")
    ledger = network(home, snapshot_every=every)
    for number, op in enumerate(ops):
        step(ledger, op, number)
    live = ledger.state()
    reopened = Ledger(ledger.root)
    assert reopened.state() == live
    batches = len(reopened.records())
    newest = batches - batches % every
    assert reopened.last_snapshot_load.used == (newest or None)
    assert full_replay(ledger.root) == live


@pytest.fixture
def snapshotted(tmp_path: Path) -> Ledger:
    """A ledger with snapshots after batches 2 and 4, and a fifth batch after them."""
    ledger = network(tmp_path, snapshot_every=2)
    step(ledger, ("transfer", 0, 1, 5 * TAO), 0)
    assert [r.batch_no for r in index_records(ledger.root)[0]] == [2, 4]
    return ledger


def reopen(ledger: Ledger) -> tuple[Ledger, LedgerState]:
    again = Ledger(ledger.root, snapshot_every=0)
    return again, again.state()


def test_a_flipped_byte_in_a_snapshot_is_detected_and_an_older_one_used(
    snapshotted: Ledger,
) -> None:
    live = snapshotted.state()
    path = snapshot_dir(snapshotted.root, 4) / "balances.arrow"
    table = ipc.open_file(pa.memory_map(str(path))).read_all()
    amounts = table.column("amount_rao").to_pylist()
    amounts[0] += 1  # an edit that keeps the file a valid Arrow file
    edited = table.set_column(1, "amount_rao", pa.array(amounts, pa.int64()))
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, edited.schema) as writer:
        writer.write_table(edited)
    again, state = reopen(snapshotted)
    assert state == live
    assert again.last_snapshot_load.used == 2
    assert any(
        "snapshot of batch 4 table balances does not match its hash" in line
        for line in again.last_snapshot_load.skipped
    )


def test_a_raw_byte_flip_falls_back_to_genesis_when_no_snapshot_verifies(
    snapshotted: Ledger,
) -> None:
    live = snapshotted.state()
    for batch_no in (2, 4):
        path = snapshot_dir(snapshotted.root, batch_no) / "tx_index.arrow"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    again, state = reopen(snapshotted)
    assert state == live
    assert again.last_snapshot_load.used is None
    assert len(again.last_snapshot_load.skipped) == 2


def test_a_snapshot_whose_index_line_is_missing_is_never_used(snapshotted: Ledger) -> None:
    live = snapshotted.state()
    index = snapshots_dir(snapshotted.root) / INDEX_FILE
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0])  # the line of batch 4 is gone, its directory stays
    again, state = reopen(snapshotted)
    assert state == live
    assert again.last_snapshot_load.used == 2


def test_a_forged_index_line_without_the_writer_signature_is_never_used(
    snapshotted: Ledger,
) -> None:
    index = snapshots_dir(snapshotted.root) / INDEX_FILE
    newest = index_records(snapshotted.root)[0][-1]
    forged = SnapshotRecord(newest.batch_no, newest.head_hash, newest.tables, signature="00" * 64)
    index.write_bytes(index.read_bytes() + forged.to_line())
    again, _ = reopen(snapshotted)
    assert again.last_snapshot_load.used == 4  # the genuine line of batch 4, not the forgery
    assert any(
        "not signed by the network's writer key" in s for s in again.last_snapshot_load.skipped
    )


def test_a_damaged_index_line_is_never_used(snapshotted: Ledger) -> None:
    index = snapshots_dir(snapshotted.root) / INDEX_FILE
    index.write_bytes(index.read_bytes().replace(b'"batch_no":4', b'"batch_no":5'))
    again, _ = reopen(snapshotted)
    assert again.last_snapshot_load.used == 2
    assert any("damaged snapshot index line" in s for s in again.last_snapshot_load.skipped)


@pytest.mark.parametrize(
    ("batch_no", "head_hash", "reason"),
    [
        (4, "ab" * 32, "is not of this history (its batch hash differs from the log's)"),
        (9, None, "names a batch the commit log does not hold"),
    ],
)
def test_a_signed_snapshot_of_another_history_is_never_used(
    snapshotted: Ledger, batch_no: int, head_hash: str | None, reason: str
) -> None:
    """Signed by the real writer key, checksummed, its tables intact: still not this history."""
    index = snapshots_dir(snapshotted.root) / INDEX_FILE
    genuine = index_records(snapshotted.root)[0][-1]
    body = SnapshotRecord(batch_no, head_hash or genuine.head_hash, genuine.tables)
    writer = load_writer_key(snapshotted.writer_key_path)
    forged = SnapshotRecord(**{**body.__dict__, "signature": writer.sign(body.message()).hex()})
    index.write_bytes(index.read_bytes() + forged.to_line())
    again, state = reopen(snapshotted)
    assert again.last_snapshot_load.used == 4 and state == snapshotted.state()
    assert f"snapshot of batch {batch_no} {reason}: not used" in again.last_snapshot_load.skipped


def test_on_demand_snapshot_is_idempotent_and_used_on_open(tmp_path: Path) -> None:
    ledger = network(tmp_path, snapshot_every=0)
    assert index_records(ledger.root)[0] == []
    first = ledger.snapshot()
    assert first is not None and first.batch_no == len(ledger.records())
    assert ledger.snapshot() == first
    assert len(index_records(ledger.root)[0]) == 1
    again, state = reopen(ledger)
    assert again.last_snapshot_load.used == first.batch_no
    assert state == ledger.state()


_KILL_SCRIPT = """
import sys
from pathlib import Path
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.faults import SNAPSHOT_FAULT_POINTS
Ledger.open(Path(sys.argv[1]), snapshot_every=0).snapshot()
"""


@pytest.mark.parametrize("point", SNAPSHOT_FAULT_POINTS)
def test_kill_9_while_writing_a_snapshot_loses_nothing(snapshotted: Ledger, point: str) -> None:
    snapshotted.snapshot_every = 0
    step(snapshotted, ("transfer", 0, 2, 3 * TAO), 99)  # batch 6: newer than any snapshot
    live = snapshotted.state()
    env = {**os.environ, "TAOFLOW_FAULT_POINT": point, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(snapshotted.root)], env=env, check=False
    )
    assert proc.returncode == -9
    assert [r.batch_no for r in index_records(snapshotted.root)[0]] == [2, 4]
    again, state = reopen(snapshotted)
    assert state == live
    assert again.last_snapshot_load.used == 4
    assert again.snapshot() is not None  # the next snapshot of batch 6 replaces the leftover
    assert [r.batch_no for r in index_records(snapshotted.root)[0]] == [2, 4, 6]
    third, state = reopen(snapshotted)
    assert third.last_snapshot_load.used == 6 and state == live


def test_verify_from_snapshot_replays_only_the_tail_with_the_same_answer(
    snapshotted: Ledger,
) -> None:
    full = snapshotted.verify()
    fast = snapshotted.verify(from_snapshot=True)
    assert full.ok and fast.ok, (full.problem, fast.problem)
    assert (full.rules_from_batch, fast.rules_from_batch) == (1, 5)
    assert (fast.batches, fast.rows, fast.head_hash) == (full.batches, full.rows, full.head_hash)
    assert fast.supply == full.supply == snapshotted.state().supply()


def test_verify_from_snapshot_never_trusts_a_damaged_snapshot(snapshotted: Ledger) -> None:
    for batch_no in (2, 4):
        path = snapshot_dir(snapshotted.root, batch_no) / "stakes.arrow"
        data = bytearray(path.read_bytes())
        data[-20] ^= 0x01
        path.write_bytes(bytes(data))
    report = snapshotted.verify(from_snapshot=True)
    assert report.ok and report.rules_from_batch == 1
    assert len(snapshotted.last_snapshot_load.skipped) == 2


def test_state_as_of_every_batch_equals_the_replay_up_to_it(snapshotted: Ledger) -> None:
    step(snapshotted, ("stake", 2, 0, 7 * TAO), 7)  # batch 6: a snapshot (6) and beyond
    step(snapshotted, ("transfer", 3, 0, 2 * TAO), 8)
    records = snapshotted.records()
    folded = LedgerState()
    for record in records:
        table = snapshotted.read_table(record).replace_schema_metadata(None)
        Ledger._apply_batch(folded, table, record.batch_no, check_signatures=True)
        as_of = snapshotted.state_as_of(record.batch_no)
        assert (as_of.balances, as_of.stakes, as_of.supply()) == (
            folded.balances,
            folded.stakes,
            folded.supply(),
        ), record.batch_no
    assert snapshotted.batch_of_epoch(SUBNET, 0) is None
    with pytest.raises(LedgerError, match="has no batch 99"):
        snapshotted.state_as_of(99)


def test_old_snapshots_keep_their_state_but_not_their_id_index(tmp_path: Path) -> None:
    ledger = network(tmp_path, snapshot_every=1)
    for number in range(3):
        step(ledger, ("transfer", number, 1, TAO), number)
    kept = [r.batch_no for r in index_records(ledger.root)[0]]
    assert kept == [1, 2, 3, 4, 5, 6, 7]
    with_index = [n for n in kept if (snapshot_dir(ledger.root, n) / "tx_index.arrow").exists()]
    assert with_index == [5, 6, 7]
    assert ledger.state_as_of(2).supply() == Ledger(ledger.root).state_as_of(2).supply()
