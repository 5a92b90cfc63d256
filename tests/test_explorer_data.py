"""The explorer's read model (``ExplorerData``) over copies of the demo network: what it loads,
how it catches up, a replaced ledger, and a damaged epoch record.

Every test works on its own copy of ``demo_home`` under ``tmp_path``; batch reads are counted
by wrapping the read model's ``Ledger.read_table``, the clock by replacing the module's ``time``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final

import pytest
from explorer_helpers import SUBNET, copy_home, transfer
from fastapi.testclient import TestClient
from markupsafe import escape

from taoflow.dashboards.explorer import data as explorer_data
from taoflow.dashboards.explorer.app import ExplorerConfig, create_app
from taoflow.dashboards.explorer.data import REFRESH_INTERVAL_S, ExplorerData, LoadProblem, NoLedger
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.commit_log import CommitRecord

TRANSFER_RAO: Final = 2_000_000_007
OTHER_TRANSFER_RAO: Final = 3_000_000_011
CLOCK_START_S: Final = 1_000.0


def count(data: ExplorerData, sql: str) -> int:
    (row,) = data.query(sql)
    return int(next(iter(row.values())))


def tx_ids(data: ExplorerData) -> set[str]:
    return {row["tx_id"] for row in data.query("SELECT tx_id FROM tx")}


def uids_rows(ledger: Ledger) -> dict[int, int]:
    """Rows of every committed epoch's ``uids`` record, by epoch."""
    last = ledger.state().last_epoch[SUBNET]
    return {
        epoch: ledger.epoch_records(SUBNET, epoch, names=("uids",))["uids"].num_rows
        for epoch in range(last + 1)
    }


def history_rows(data: ExplorerData) -> dict[int, int]:
    rows = data.query("SELECT epoch, COUNT(*) AS n FROM uids_history GROUP BY epoch")
    return {int(r["epoch"]): int(r["n"]) for r in rows}


def count_reads(data: ExplorerData, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch numbers ``data`` reads from now on (its ``Ledger.read_table`` wrapped)."""
    reads: list[int] = []
    read_table: Callable[[CommitRecord], Any] = data.ledger.read_table

    def counted(record: CommitRecord) -> Any:
        reads.append(record.batch_no)
        return read_table(record)

    monkeypatch.setattr(data.ledger, "read_table", counted)
    return reads


@pytest.fixture
def home(demo_home: Path, tmp_path: Path) -> Path:
    return copy_home(demo_home, tmp_path / "home")


def test_loads_every_committed_row_and_every_uids_record(home: Path) -> None:
    data = ExplorerData(home)
    ledger = Ledger(home / "ledger")
    table = ledger.table()
    assert count(data, "SELECT COUNT(*) FROM tx") == table.num_rows
    assert count(data, "SELECT SUM(amount_rao) FROM tx") == sum(
        table.column("amount_rao").to_pylist()
    )
    loaded = data.query("SELECT tx_id, batch_no, row_no FROM tx ORDER BY batch_no, row_no")
    assert [(r["tx_id"], r["batch_no"], r["row_no"]) for r in loaded] == list(
        zip(
            table.column("tx_id").to_pylist(),
            table.column("batch_no").to_pylist(),
            table.column("row_no").to_pylist(),
            strict=True,
        )
    )
    expected = uids_rows(ledger)
    assert history_rows(data) == expected
    assert count(data, "SELECT COUNT(*) FROM uids_history") == sum(expected.values())
    records = ledger.records()
    head = data.head()
    assert (head.batches, head.head_hash, head.epochs) == (
        len(records),
        records[-1].batch_hash,
        len(expected),
    )
    assert data.problems == []


def test_refresh_reads_only_the_batches_committed_since(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ExplorerData(home)
    rows_before = count(data, "SELECT COUNT(*) FROM tx")
    batches = data.head().batches
    reads = count_reads(data, monkeypatch)
    assert data.refresh(force=True).batches == batches
    assert reads == []
    tx_id = transfer(home, source="owner", dest="miner-0", amount_rao=TRANSFER_RAO)
    head = data.refresh(force=True)
    assert reads == [batches + 1]
    assert (head.batches, head.head_hash) == (
        batches + 1,
        Ledger(home / "ledger").records()[-1].batch_hash,
    )
    assert count(data, "SELECT COUNT(*) FROM tx") == rows_before + 1
    (row,) = data.query(
        "SELECT kind, amount_rao, batch_no FROM tx WHERE tx_id = $id", {"id": tx_id}
    )
    assert row == {"kind": "transfer", "amount_rao": TRANSFER_RAO, "batch_no": batches + 1}
    data.refresh(force=True)
    assert reads == [batches + 1]


def test_refresh_looks_at_the_log_at_most_once_per_interval(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now_s = [CLOCK_START_S]
    monkeypatch.setattr(explorer_data, "time", SimpleNamespace(monotonic=lambda: now_s[0]))
    data = ExplorerData(home)
    batches = data.head().batches
    transfer(home, source="owner", dest="miner-0", amount_rao=TRANSFER_RAO)
    now_s[0] += REFRESH_INTERVAL_S / 2
    assert data.refresh().batches == batches  # within the interval: the log is not read
    now_s[0] += REFRESH_INTERVAL_S / 2
    assert data.refresh().batches == batches + 1
    assert data.head().refreshed_at_s == now_s[0]


def test_a_replaced_ledger_is_read_again_from_genesis(
    home: Path, tmp_path: Path, demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = copy_home(demo_home, tmp_path / "other")
    mine = transfer(home, source="owner", dest="miner-0", amount_rao=TRANSFER_RAO)
    theirs = transfer(other, source="owner", dest="miner-1", amount_rao=OTHER_TRANSFER_RAO)
    data = ExplorerData(home)
    batches = data.head().batches
    their_records = Ledger(other / "ledger").records()
    assert len(their_records) == batches  # same length, another head
    assert their_records[-1].batch_hash != data.head().head_hash
    assert mine in tx_ids(data)
    reads = count_reads(data, monkeypatch)

    shutil.rmtree(home / "ledger")
    shutil.copytree(other / "ledger", home / "ledger")
    head = data.refresh(force=True)
    assert reads == list(range(1, batches + 1))
    assert (head.batches, head.head_hash) == (batches, their_records[-1].batch_hash)
    ids = tx_ids(data)
    assert theirs in ids and mine not in ids
    assert len(ids) == Ledger(other / "ledger").table().num_rows
    assert history_rows(data) == uids_rows(Ledger(other / "ledger"))

    reads.clear()  # a shorter ledger (the demo's own) is read again too
    shutil.rmtree(home / "ledger")
    shutil.copytree(demo_home / "ledger", home / "ledger")
    head = data.refresh(force=True)
    demo_records = Ledger(demo_home / "ledger").records()
    assert reads == list(range(1, len(demo_records) + 1))
    assert (head.batches, head.head_hash) == (len(demo_records), demo_records[-1].batch_hash)
    assert theirs not in tx_ids(data)
    assert count(data, "SELECT COUNT(*) FROM tx") == Ledger(demo_home / "ledger").table().num_rows


def _damage_uids_record(home: Path, epoch: int) -> str:
    """Flip one byte in the middle of ``epoch``'s uids record; the file's name."""
    (path,) = (home / "ledger" / "records" / SUBNET).glob(f"{epoch:010d}.uids.*.arrow")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path.name


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_damaged_uids_record_is_a_listed_problem_and_the_pages_answer(
    home: Path, which: str
) -> None:
    ledger = Ledger(home / "ledger")
    expected = uids_rows(ledger)
    last_epoch = max(expected)
    assert last_epoch > 0
    damaged_epoch = 0 if which == "first" else last_epoch
    name = _damage_uids_record(home, damaged_epoch)
    data = ExplorerData(home)
    problem = f"epoch record uids ({name}) does not match its hash"
    assert data.problems == [LoadProblem(subnet=SUBNET, epoch=damaged_epoch, problem=problem)]
    assert history_rows(data) == {e: n for e, n in expected.items() if e != damaged_epoch}
    assert count(data, "SELECT COUNT(*) FROM tx") == ledger.table().num_rows

    client = TestClient(create_app(ExplorerConfig(home=home)))
    network = client.get("/api/network")
    assert network.status_code == 200
    assert network.json()["problems"] == [
        {"subnet": SUBNET, "epoch": damaged_epoch, "problem": problem}
    ]
    assert problem in client.get("/").text.replace("&#39;", "'")
    for url in ("/ledger", "/api/ledger", "/governance", f"/ledger?as_of_epoch=0&subnet={SUBNET}"):
        assert client.get(url).status_code == 200, url
    hotkey = ledger.state().neurons[SUBNET][0].hotkey
    for url in (f"/subnet/{SUBNET}", f"/subnet/{SUBNET}/neuron/{hotkey}"):
        for path in (url, "/api" + url):
            response = client.get(path)
            if which == "first":  # the last epoch is intact: the page is whole
                assert response.status_code == 200, path
            else:  # the metagraph needs the last epoch's record: one line naming the damage
                assert response.status_code == 500, path
                line = f"the ledger is damaged: epoch {last_epoch} of '{SUBNET}': {problem}"
                if path.startswith("/api/"):
                    assert response.json() == {"error": line}
                else:
                    assert str(escape(line)) in response.text
                    assert "Traceback" not in response.text


def test_a_home_without_a_ledger_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoLedger) as caught:
        ExplorerData(tmp_path)
    assert str(caught.value) == f"no ledger at {tmp_path / 'ledger'}: run `taoflow demo` first"
