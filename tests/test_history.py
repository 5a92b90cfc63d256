"""Stored epochs: one forward pass rebuilds each committed epoch's inputs; a child process may
walk ahead of the caller and gives exactly the same epochs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from taoflow.ledger.store import Ledger
from taoflow.ledger.table_hash import table_sha256
from taoflow.tasks.audit import history
from taoflow.tasks.audit.history import (
    WALK_AHEAD_MIN_EPOCHS,
    HistoryError,
    StoredEpoch,
    parse_epoch_range,
    stored_epochs,
    stored_epochs_ahead,
)
from taoflow.tasks.simulate import SimulationSpec, simulate

SUBNET = "hist"
EPOCHS = WALK_AHEAD_MIN_EPOCHS + 2


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    root = tmp_path_factory.mktemp("history") / "ledger"
    simulate(root, SimulationSpec(subnet=SUBNET, epochs=EPOCHS, miners=6, validators=3, seed=5))
    return Ledger.open(root)


def fingerprint(stored: StoredEpoch) -> tuple[object, ...]:
    return (
        stored.epoch,
        stored.batch_hash,
        stored.ctx.seed_hex,
        stored.ctx.block,
        tuple(n.stake_rao for n in stored.ctx.neurons),
        tuple(sorted((name, table_sha256(t)) for name, t in stored.records.items())),
        table_sha256(stored.rows),
        table_sha256(stored.ctx.previous.bonds),
    )


def test_each_epochs_context_is_the_one_its_evaluation_saw(ledger: Ledger) -> None:
    for stored in stored_epochs(ledger, subnet=SUBNET, first=0, last=5):
        assert stored.ctx.epoch == stored.epoch
        assert stored.ctx.seed_hex == stored.payload["seed"]
        assert stored.ctx.block == stored.payload["block"]
        assert stored.ctx.parent_hash == stored.payload["parent_hash"]
        assert stored.record_hashes == {n: table_sha256(t) for n, t in stored.records.items()}
        assert not stored.record_problems and not stored.replanned


def test_a_walk_from_the_middle_equals_the_same_epochs_of_a_walk_from_the_start(
    ledger: Ledger,
) -> None:
    whole = [fingerprint(s) for s in stored_epochs(ledger, subnet=SUBNET, first=0, last=9)]
    tail = [fingerprint(s) for s in stored_epochs(ledger, subnet=SUBNET, first=6, last=9)]
    assert tail == whole[6:]


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Walk ahead in a child even if earlier tests left threads in this process (the child
    only reads the ledger); without this the walk would run in place."""
    monkeypatch.setattr(history.threading, "active_count", lambda: 1)


@pytest.mark.usefixtures("forking")
def test_walking_ahead_in_a_child_gives_the_same_epochs(ledger: Ledger) -> None:
    last = EPOCHS - 1
    alone = [fingerprint(s) for s in stored_epochs(ledger, subnet=SUBNET, first=0, last=last)]
    ahead = [fingerprint(s) for s in stored_epochs_ahead(ledger, subnet=SUBNET, first=0, last=last)]
    assert ahead == alone


def test_only_the_records_asked_for_are_read_but_the_next_epoch_still_has_its_bonds(
    ledger: Ledger,
) -> None:
    walk = stored_epochs(ledger, subnet=SUBNET, first=0, last=3, records=("weights",))
    epochs = list(walk)
    assert {tuple(sorted(s.records)) for s in epochs} == {("bonds", "uids", "weights")}
    full = list(stored_epochs(ledger, subnet=SUBNET, first=0, last=3))
    assert [fingerprint(s)[:5] for s in epochs] == [fingerprint(s)[:5] for s in full]


def test_a_threaded_process_walks_in_place(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(history.multiprocessing, "get_context", started.append)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()
    try:
        count = sum(1 for _ in stored_epochs_ahead(ledger, subnet=SUBNET, first=0, last=EPOCHS - 1))
    finally:
        stop.set()
        worker.join()
    assert count == EPOCHS and started == []  # no process was forked beside the thread


@pytest.mark.usefixtures("forking")
def test_a_damaged_batch_found_by_the_child_is_one_line(ledger: Ledger, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "ledger"
    shutil.copytree(ledger.root, root)
    copy = Ledger.open(root)
    victim = copy.records()[10]  # behind the newest snapshot: the parent does not read it
    path = root / "batches" / victim.file
    path.write_bytes(path.read_bytes()[:-7] + b"damaged")
    with pytest.raises(HistoryError, match=r"LedgerCorrupted: .*batch"):
        for _ in stored_epochs_ahead(copy, subnet=SUBNET, first=0, last=EPOCHS - 1):
            pass


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("3..1", "ends before it starts"),
        ("a..b", "epochs must be N or A..B"),
        ("-1", "epochs must be N or A..B"),
        ("0..100000", "covers more than"),
    ],
)
def test_bad_ranges_are_one_line(text: str, error: str) -> None:
    with pytest.raises(HistoryError, match=error):
        parse_epoch_range(text)


def test_ranges_parse() -> None:
    assert parse_epoch_range("7") == (7, 7)
    assert parse_epoch_range(" 2..5 ") == (2, 5)
