"""The ledger on disk: chain, verify, tamper detection, recovery, idempotency, crash points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_helpers import TAO, acct, epoch_batch, mint, signed

from taoflow.ledger.errors import BatchRejected, LedgerCorrupted, SupplyIdentityViolated
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.faults import FAULT_ENV, FAULT_POINTS
from taoflow.ledger.views import LedgerViews


def transfer(ledger: Ledger, tx_id: str, src: str, dst: str, amount: int) -> Tx:
    tx = Tx(tx_id, Kind.TRANSFER, coldkey=acct(src), dest=acct(dst), amount_rao=amount)
    return signed(ledger.state(), tx)


def three_batches(root: Path) -> Ledger:
    ledger = Ledger.open(root)
    ledger.commit([mint("a", "alice", 10 * TAO), mint("b", "bob", 5 * TAO)])
    ledger.commit([transfer(ledger, "t1", "alice", "bob", 7)])
    ledger.commit([transfer(ledger, "t2", "bob", "carol", 3)])
    return ledger


def test_chain_and_verify(tmp_path: Path) -> None:
    ledger = three_batches(tmp_path)
    records = ledger.records()
    assert [r.batch_no for r in records] == [1, 2, 3]
    assert records[1].parent_hash == records[0].batch_hash
    report = ledger.verify()
    assert report.ok and report.batches == 3 and report.rows == 4
    assert report.supply["issued_rao"] == 15 * TAO


def test_reopen_rebuilds_the_same_state(tmp_path: Path) -> None:
    ledger = three_batches(tmp_path)
    again = Ledger.open(tmp_path)
    assert again.state().balances == ledger.state().balances
    assert again.head_hash() == ledger.head_hash()


def test_rejected_batch_writes_nothing(tmp_path: Path) -> None:
    ledger = three_batches(tmp_path)
    head = ledger.head_hash()
    ok = transfer(ledger, "ok", "alice", "bob", 1)
    bad = transfer(ledger, "bad", "carol", "bob", 10**15)
    with pytest.raises(BatchRejected, match="insufficient"):
        ledger.commit([ok, bad])
    assert ledger.head_hash() == head
    assert len(list((tmp_path / "batches").iterdir())) == 3
    assert ledger.state().balance(acct("alice")) == 10 * TAO - 7


def test_unpaid_epoch_batch_is_refused(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    ledger.commit([mint("a", "alice", TAO)])
    config = '{"tempo_blocks":1}'
    create = Tx(
        "s",
        Kind.SUBNET_CREATE,
        subnet="sn",
        coldkey=acct("alice"),
        hotkey=acct("alice-hot"),
        amount_rao=1,
        payload=config,
    )
    ledger.commit([signed(ledger.state(), create)])
    epoch = epoch_batch(ledger.state(), "sn", block=1)[0]  # without its emission entries
    with pytest.raises(
        SupplyIdentityViolated, match=f"{epoch.amount_rao} rao announced but not paid"
    ):
        ledger.commit([epoch])
    assert len(ledger.records()) == 2


def test_retry_is_idempotent(tmp_path: Path) -> None:
    ledger = three_batches(tmp_path)
    first = ledger.read_table(ledger.records()[1])
    from taoflow.ledger.schema import table_to_txs

    result = ledger.commit(table_to_txs(first))
    assert result.batch_no is None and result.existed == 1
    assert ledger.state().balance(acct("bob")) == 5 * TAO + 7 - 3


def test_users_cannot_commit_system_entries(tmp_path: Path) -> None:
    ledger = three_batches(tmp_path)
    with pytest.raises(BatchRejected, match="network"):
        ledger.commit([mint("sneaky", "eve", TAO)], allow_system=False)


def _tamper_flip(root: Path) -> None:
    path = root / "batches" / "000000000002.arrow"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _tamper_remove(root: Path) -> None:
    (root / "batches" / "000000000002.arrow").unlink()


def _tamper_swap(root: Path) -> None:
    a, b = root / "batches" / "000000000002.arrow", root / "batches" / "000000000003.arrow"
    tmp = a.with_suffix(".x")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _tamper_truncate_last(root: Path) -> None:
    path = root / "batches" / "000000000003.arrow"
    path.write_bytes(path.read_bytes()[:100])


def _tamper_zero_last(root: Path) -> None:
    path = root / "batches" / "000000000003.arrow"
    path.write_bytes(b"\0" * path.stat().st_size)


def _tamper_duplicate(root: Path) -> None:
    src = root / "batches" / "000000000002.arrow"
    (root / "batches" / "000000000004.arrow").write_bytes(src.read_bytes())


@pytest.mark.parametrize(
    ("tamper", "bad_batch"),
    [
        (_tamper_flip, 2),
        (_tamper_remove, 2),
        (_tamper_swap, 2),
        (_tamper_truncate_last, 3),
        (_tamper_zero_last, 3),
        (_tamper_duplicate, 4),
    ],
    ids=["flipped-byte", "removed", "swapped", "truncated-last", "zero-filled-last", "duplicated"],
)
def test_verify_names_the_tampered_batch(tmp_path: Path, tamper: object, bad_batch: int) -> None:
    three_batches(tmp_path)
    tamper(tmp_path)  # type: ignore[operator]
    report = Ledger(tmp_path).verify()
    assert not report.ok
    assert report.first_bad_batch == bad_batch, report.problem


def test_edited_row_with_rewritten_file_hash_is_still_caught(tmp_path: Path) -> None:
    """Rewriting a batch with a changed amount (and a fresh valid Arrow file) breaks the chain."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    three_batches(tmp_path)
    path = tmp_path / "batches" / "000000000002.arrow"
    table = ipc.open_file(pa.memory_map(str(path))).read_all()
    amounts = table.column("amount_rao").to_pylist()
    edited = table.set_column(
        table.schema.get_field_index("amount_rao"),
        "amount_rao",
        pa.array([a + 1 for a in amounts], pa.int64()),
    )
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, edited.schema) as writer:
        writer.write_table(edited)
    report = Ledger(tmp_path).verify()
    assert not report.ok and report.first_bad_batch == 2


def test_recovery_sets_aside_unacknowledged_files_and_is_idempotent(tmp_path: Path) -> None:
    three_batches(tmp_path)
    batches = tmp_path / "batches"
    (batches / "000000000004.arrow").write_bytes(b"half")
    (batches / ".tmp-5-123").write_bytes(b"junk")
    with (tmp_path / "COMMITS").open("ab") as log:
        log.write(b'{"check":"torn')
    Ledger.open(tmp_path)
    after_once = sorted(p.name for p in batches.iterdir()), (tmp_path / "COMMITS").read_bytes()
    Ledger.open(tmp_path)
    after_twice = sorted(p.name for p in batches.iterdir()), (tmp_path / "COMMITS").read_bytes()
    assert after_once == after_twice
    assert after_once[0] == [f"{n:012d}.arrow" for n in (1, 2, 3)]
    assert Ledger(tmp_path).verify().ok
    # The half-written batch is moved aside, never deleted.
    kept = list((tmp_path / "quarantine").iterdir())
    assert [p.read_bytes() for p in kept] == [b"half"]


def test_missing_referenced_file_stops_the_writer(tmp_path: Path) -> None:
    three_batches(tmp_path)
    _tamper_remove(tmp_path)
    with pytest.raises(LedgerCorrupted) as info:
        Ledger.open(tmp_path)
    assert info.value.batch_no == 2


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from ledger_helpers import acct, signed
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.store import Ledger
ledger = Ledger.open(Path(sys.argv[1]))
tx = Tx("t-crash", Kind.TRANSFER, coldkey=acct("alice"), dest=acct("bob"), amount_rao=11)
ledger.commit([signed(ledger.state(), tx, nonce=2)])
print("acknowledged", flush=True)
"""
TESTS_DIR = str(Path(__file__).parent)


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_9_at_every_fault_point(tmp_path: Path, point: str) -> None:
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    three_batches(crashed)
    three_batches(clean)
    env = {**os.environ, FAULT_ENV: point}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(crashed), TESTS_DIR],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr
    reopened = Ledger.open(crashed)
    # A complete, renamed batch file that chains on the head is rolled forward (adopted), even
    # if its log line was never written: it may have been acknowledged to nobody, but it is
    # valid and its transaction ids make the client's retry a no-op.
    rolled_forward = point in ("after_rename", "after_dir_fsync", "after_commit_record")
    assert len(reopened.records()) == (4 if rolled_forward else 3)
    assert reopened.verify().ok
    # Finishing the work gives the same bytes as a run with no crash.
    finish = subprocess.run(
        [sys.executable, "-c", CHILD, str(crashed), TESTS_DIR],
        capture_output=True,
        text=True,
        check=True,
    )
    assert finish.returncode == 0
    subprocess.run(
        [sys.executable, "-c", CHILD, str(clean), TESTS_DIR], check=True, capture_output=True
    )
    assert (crashed / "COMMITS").read_bytes() == (clean / "COMMITS").read_bytes()
    for name in sorted(p.name for p in (clean / "batches").iterdir()):
        assert (crashed / "batches" / name).read_bytes() == (clean / "batches" / name).read_bytes()


def test_views_agree_with_the_fold(tmp_path: Path) -> None:
    ledger = three_batches(tmp_path)
    views = LedgerViews(ledger.table())
    state = ledger.state()
    assert {r["coldkey"]: r["balance_rao"] for r in views.balances()} == state.balances
    supply = views.supply()
    for key, value in state.supply().items():
        assert supply[key] == value
    as_of_1 = {r["coldkey"]: r["balance_rao"] for r in views.balances(as_of_batch=1)}
    assert as_of_1 == {acct("alice"): 10 * TAO, acct("bob"): 5 * TAO}
