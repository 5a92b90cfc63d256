"""Chaos on the ledger directory: log damage, rollback and loss, re-hashed forgeries, edited rows.

Every case asserts that nothing acknowledged is lost (the balances after recovery or repair are
exactly those before the damage), the exact error a user sees, and that nothing is deleted
(files that do not verify are moved to ``quarantine/``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from ledger_helpers import TAO, acct, mint, signed

from taoflow.ledger.errors import LedgerCorrupted, LedgerError
from taoflow.ledger.keys import Keypair
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.commit_log import CommitRecord, LogReader, scan
from taoflow.ledger.store.hashing import batch_hash, file_sha256, rows_hash
from taoflow.ledger.store.writer_key import load_or_create_writer_key
from taoflow.ledger.views import LedgerViews

BATCHES = 4


def network_entry(writer: Keypair) -> Tx:
    params = NetworkParams.create(name="chaos", writer_key=writer.public_hex, tx_fee_rao=0)
    return Tx("genesis/network", Kind.NETWORK, payload=canonical_json(params.to_payload()))


def transfer(ledger: Ledger, tx_id: str, src: str, dst: str, amount_rao: int) -> Tx:
    tx = Tx(tx_id, Kind.TRANSFER, coldkey=acct(src), dest=acct(dst), amount_rao=amount_rao)
    return signed(ledger.state(), tx)


def build(home: Path) -> Ledger:
    """A signed network: genesis (network entry + mints) and three transfers, one per batch."""
    writer = load_or_create_writer_key(home / "keys" / "writer.key")
    ledger = Ledger.open(home / "ledger")
    ledger.commit(
        [network_entry(writer), mint("m/alice", "alice", 10 * TAO), mint("m/bob", "bob", TAO)]
    )
    for n, (src, dst) in enumerate([("alice", "bob"), ("bob", "carol"), ("alice", "carol")]):
        ledger.commit([transfer(ledger, f"t{n}", src, dst, (n + 1) * TAO // 10)])
    return ledger


def balances(home: Path) -> dict[str, int]:
    return dict(Ledger.open(home / "ledger").state().balances)


def log_lines(home: Path) -> list[bytes]:
    return (home / "ledger" / "COMMITS").read_bytes().splitlines(keepends=True)


def write_log(home: Path, lines: list[bytes]) -> None:
    (home / "ledger" / "COMMITS").write_bytes(b"".join(lines))


def damage_line(home: Path, index: int) -> None:
    """Flip one character inside a log line; the line still ends in a newline."""
    lines = log_lines(home)
    line = bytearray(lines[index])
    at = line.index(b'"rows_hash":"') + len(b'"rows_hash":"')
    line[at] = ord("0") if line[at] != ord("0") else ord("1")
    lines[index] = bytes(line)
    write_log(home, lines)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    build(tmp_path)
    return tmp_path


@pytest.mark.parametrize("index", [BATCHES - 1, 1], ids=["last-line", "middle-line"])
def test_damaged_log_line_is_corruption_then_repair_loses_nothing(home: Path, index: int) -> None:
    before = balances(home)
    files_before = sorted(p.name for p in (home / "ledger" / "batches").iterdir())
    damage_line(home, index)
    with pytest.raises(LedgerCorrupted) as info:
        Ledger.open(home / "ledger")
    assert str(info.value) == (
        f"ledger commit log line {index + 1} (batch {index + 1}) is damaged: "
        "run `taoflow ledger repair`"
    )
    assert sorted(p.name for p in (home / "ledger" / "batches").iterdir()) == files_before
    report = Ledger(home / "ledger").repair()
    assert report.log_rebuilt
    assert balances(home) == before
    assert len(Ledger(home / "ledger").records()) == BATCHES
    assert Ledger(home / "ledger").verify().ok
    again = Ledger(home / "ledger").repair()
    assert again.actions == [] and not again.log_rebuilt


def test_one_file_past_the_log_is_a_commit_in_flight_for_readers(home: Path) -> None:
    before = balances(home)
    write_log(home, log_lines(home)[:-1])
    assert len(Ledger(home / "ledger").records()) == BATCHES - 1
    assert balances(home) == before  # the next writer adopts it


def test_torn_tail_without_newline_is_cut_and_nothing_else_changes(home: Path) -> None:
    before = balances(home)
    with (home / "ledger" / "COMMITS").open("ab") as log:
        log.write(b'{"check":"0123","record":{"batch_no":5')
    ledger = Ledger.open(home / "ledger")
    assert ledger.last_recovery.actions == [
        "cut a torn commit-log tail: an append that never completed"
    ]
    assert balances(home) == before and ledger.verify().ok


def test_rolled_back_log_is_rolled_forward_by_any_writer(home: Path) -> None:
    before = balances(home)
    write_log(home, log_lines(home)[:-2])
    # Readers never change anything, and never answer from the shorter history.
    with pytest.raises(LedgerCorrupted, match="commit log is behind its batch files"):
        Ledger(home / "ledger").records()
    assert len(log_lines(home)) == BATCHES - 2
    ledger = Ledger.open(home / "ledger")
    assert ledger.last_recovery.adopted == [BATCHES - 1, BATCHES]
    assert balances(home) == before
    assert ledger.verify().ok


def test_deleted_log_is_rebuilt_by_repair_never_replaced_by_a_new_genesis(home: Path) -> None:
    before = balances(home)
    (home / "ledger" / "COMMITS").unlink()
    expected = "the ledger commit log is missing but batch files exist: run `taoflow ledger repair`"
    with pytest.raises(LedgerCorrupted, match="missing but batch files exist") as info:
        Ledger(home / "ledger").records()
    assert str(info.value) == expected
    with pytest.raises(LedgerCorrupted):
        Ledger.open(home / "ledger")  # a writer (epoch run, demo) stops instead of starting over
    assert len(list((home / "ledger" / "batches").iterdir())) == BATCHES
    report = Ledger(home / "ledger").repair()
    assert report.adopted == [1, 2, 3, 4]
    assert balances(home) == before


def _rewrite(path: Path, table: pa.Table, metadata: dict[bytes, bytes]) -> None:
    schema = table.schema.with_metadata(metadata)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, schema) as writer:
        writer.write_table(table.cast(schema))


def forge_amount_and_rehash(home: Path, *, batch_no: int) -> None:
    """Edit an amount, then recompute every hash after it and every log line and checksum."""
    root = home / "ledger"
    lines = [CommitRecord.from_line(line) for line in log_lines(home)]
    parent = lines[batch_no - 1].parent_hash  # type: ignore[union-attr]
    new_lines = [r.to_line() for r in lines[: batch_no - 1]]  # type: ignore[union-attr]
    for record in lines[batch_no - 1 :]:
        assert record is not None
        path = root / "batches" / record.file
        table = ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
        meta = dict(table.schema.metadata or {})
        table = table.replace_schema_metadata(None)
        if record.batch_no == batch_no:
            amounts = table.column("amount_rao").to_pylist()
            table = table.set_column(
                table.schema.get_field_index("amount_rao"),
                "amount_rao",
                pa.array([a // 2 for a in amounts], pa.int64()),
            )
        r_hash = rows_hash(table)
        b_hash = batch_hash(batch_no=record.batch_no, parent_hash=parent, rows_sha256=r_hash)
        meta.update(
            {
                b"taoflow.parent_hash": parent.encode(),
                b"taoflow.rows_hash": r_hash.encode(),
                b"taoflow.batch_hash": b_hash.encode(),
            }
        )
        _rewrite(path, table, meta)
        forged = CommitRecord(
            **{
                **record.__dict__,
                "parent_hash": parent,
                "rows_hash": r_hash,
                "batch_hash": b_hash,
                "file_sha256": file_sha256(path),
            }
        )
        new_lines.append(forged.to_line())
        parent = b_hash
    write_log(home, new_lines)


def test_rehashed_forgery_fails_verify_on_the_writer_signature(home: Path) -> None:
    forge_amount_and_rehash(home, batch_no=3)
    report = Ledger(home / "ledger").verify()
    assert not report.ok and report.first_bad_batch == 3
    assert report.problem == (
        "batch 3 (000000000003.arrow): writer signature does not verify under the "
        "network's writer key"
    )


def test_forgery_resigned_with_another_writer_key_fails_against_the_homes_key(
    home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An attacker who rebuilds the whole chain under a key of their own is caught by the home's
    writer key (kept outside the ledger directory)."""
    other = tmp_path_factory.mktemp("attacker")
    build(other)
    # The attacker's complete, self-consistent ledger replaces ours.
    for path in (home / "ledger" / "batches").iterdir():
        path.unlink()
    for path in (other / "ledger" / "batches").iterdir():
        (home / "ledger" / "batches" / path.name).write_bytes(path.read_bytes())
    (home / "ledger" / "COMMITS").write_bytes((other / "ledger" / "COMMITS").read_bytes())
    report = Ledger(home / "ledger").verify()
    assert not report.ok
    assert report.problem is not None and "not by this home's key" in report.problem


def test_unsigned_successor_is_set_aside_not_adopted(home: Path) -> None:
    """A valid-looking batch 5 dropped in by someone without the writer key is quarantined."""
    root = home / "ledger"
    last = CommitRecord.from_line(log_lines(home)[-1])
    assert last is not None
    table = ipc.open_file(pa.BufferReader((root / "batches" / last.file).read_bytes())).read_all()
    meta = dict(table.schema.metadata or {})
    meta.pop(b"taoflow.writer_signature")
    table = table.replace_schema_metadata(None)
    r_hash = rows_hash(table)
    b_hash = batch_hash(batch_no=BATCHES + 1, parent_hash=last.batch_hash, rows_sha256=r_hash)
    meta.update(
        {
            b"taoflow.batch_no": str(BATCHES + 1).encode(),
            b"taoflow.parent_hash": last.batch_hash.encode(),
            b"taoflow.batch_hash": b_hash.encode(),
        }
    )
    stray = root / "batches" / f"{BATCHES + 1:012d}.arrow"
    _rewrite(stray, table, meta)
    ledger = Ledger.open(root)
    assert len(ledger.records()) == BATCHES
    assert not stray.exists()
    assert ledger.last_recovery.set_aside == [stray.name]
    assert ledger.last_recovery.actions[-1].endswith("is not signed by the network's writer key")
    assert [p.name.split(".")[0] for p in (root / "quarantine").iterdir()] == [stray.stem]


def test_commit_without_the_writer_key_is_refused(home: Path) -> None:
    (home / "keys" / "writer.key").rename(home / "elsewhere.key")
    ledger = Ledger.open(home / "ledger")
    with pytest.raises(LedgerError, match="signed by writer key") as info:
        ledger.commit([transfer(ledger, "t-late", "alice", "bob", 1)])
    assert "does not exist" in str(info.value)
    assert len(Ledger(home / "ledger").records()) == BATCHES


def test_world_readable_writer_key_is_refused(home: Path) -> None:
    key = home / "keys" / "writer.key"
    key.chmod(0o644)
    ledger = Ledger.open(home / "ledger")
    with pytest.raises(LedgerError) as info:
        ledger.commit([transfer(ledger, "t-late", "alice", "bob", 1)])
    assert f"run `chmod 600 {key}`" in str(info.value)


def edit_row_in_place(home: Path) -> None:
    """Edit one amount with pyarrow; leave every hash and the log alone."""
    path = home / "ledger" / "batches" / "000000000002.arrow"
    table = ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
    meta = dict(table.schema.metadata or {})
    amounts = table.column("amount_rao").to_pylist()
    table = table.set_column(
        table.schema.get_field_index("amount_rao"),
        "amount_rao",
        pa.array([a * 1000 for a in amounts], pa.int64()),
    )
    _rewrite(path, table.replace_schema_metadata(None), meta)


def test_reads_refuse_an_edited_row(home: Path) -> None:
    edit_row_in_place(home)
    with pytest.raises(LedgerCorrupted) as info:
        LedgerViews(Ledger(home / "ledger").table())
    assert info.value.batch_no == 2
    assert str(info.value) == (
        "ledger batch 2 (000000000002.arrow) does not match its commit record: "
        "run `taoflow ledger repair`"
    )


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "damage",
    ["edited-row", "truncated", "log-deleted"],
)
def test_every_read_command_reports_damage_in_one_line(home: Path, damage: str) -> None:
    if damage == "edited-row":
        edit_row_in_place(home)
    elif damage == "truncated":
        path = home / "ledger" / "batches" / "000000000002.arrow"
        path.write_bytes(path.read_bytes()[:200])
    else:
        (home / "ledger" / "COMMITS").unlink()
    for command in (["ledger", "balance"], ["ledger", "supply"]):
        result = _cli(home, *command)
        assert result.returncode == 1, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "`taoflow ledger repair`" in lines[0]
        assert "Traceback" not in result.stderr and result.stdout == ""
        if damage != "log-deleted":
            assert "ledger batch 2 (000000000002.arrow)" in lines[0]


def test_repair_command_reports_and_is_idempotent(home: Path) -> None:
    before = balances(home)
    write_log(home, log_lines(home)[:1])
    first = _cli(home, "ledger", "repair", "--json")
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["adopted"] == [2, 3, 4] and body["batches"] == BATCHES
    second = _cli(home, "ledger", "repair")
    assert second.returncode == 0
    assert second.stdout.startswith("nothing to repair: 4 batches")
    assert balances(home) == before


def test_cross_check_names_an_epoch_whose_published_hash_differs(tmp_path: Path) -> None:
    """MLflow keeps the hash published at commit time; a rewritten ledger no longer matches it.
    Backfilled runs (hash copied from the ledger) are not counted as evidence."""
    import mlflow

    from taoflow.crosscheck import compare, published_in_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("sn", artifact_location=str(tmp_path / "runs"))
    for epoch, batch_hash_hex, backfilled in ((0, "a" * 64, "false"), (1, "b" * 64, "true")):
        run = client.create_run(experiment)
        client.log_param(run.info.run_id, "subnet", "sn")
        client.log_param(run.info.run_id, "epoch", str(epoch))
        client.set_tag(run.info.run_id, "taoflow.ledger_batch_hash", batch_hash_hex)
        client.set_tag(run.info.run_id, "taoflow.backfilled", backfilled)
    published = published_in_mlflow(uri)
    assert published == {("sn", 0): {"a" * 64}}
    assert compare({("sn", 0): "a" * 64}, published, "MLflow").mismatches == []
    forged = compare({("sn", 0): "c" * 64}, published, "MLflow")
    assert forged.mismatches == [
        f"sn epoch 0: published batch {'a' * 16}…, the ledger holds {'c' * 16}…"
    ]


def test_long_lived_process_keeps_one_ledger_and_notices_a_replaced_history(
    home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``Ledger.shared`` catches up incrementally, and rebuilds its state when the log no longer
    holds the batch it had reached (a ledger replaced under a running worker)."""
    root = home / "ledger"
    shared = Ledger.shared(root)
    assert Ledger.shared(root) is shared
    shared.commit([transfer(shared, "t-more", "alice", "bob", 5)])
    assert shared.state().balances == Ledger.open(root).state().balances

    other = tmp_path_factory.mktemp("other")
    build(other)
    ledger_b = Ledger.open(other / "ledger")
    ledger_b.commit([transfer(ledger_b, "t-other", "bob", "dave", 7)])
    for path in (root / "batches").iterdir():
        path.unlink()
    for path in (other / "ledger" / "batches").iterdir():
        (root / "batches" / path.name).write_bytes(path.read_bytes())
    (root / "COMMITS").write_bytes((other / "ledger" / "COMMITS").read_bytes())
    assert shared.state().balances == Ledger(other / "ledger").state().balances
    assert acct("dave") in shared.state().balances


def test_the_incremental_log_reader_answers_exactly_what_a_full_scan_does(home: Path) -> None:
    log = home / "ledger" / "COMMITS"
    reader = LogReader(log)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2]))
    assert reader.scan() == scan(log)
    for count in range(3, len(lines) + 1):  # appended lines are parsed incrementally
        log.write_bytes(b"".join(lines[:count]))
        assert reader.scan() == scan(log)
    log.write_bytes(log.read_bytes() + lines[-1][:10])  # a torn tail
    assert reader.scan() == scan(log) and reader.scan().torn_tail
    edited = bytearray(b"".join(lines))
    edited[len(lines[0]) + 5] ^= 0x01  # a flipped byte in an already-parsed line
    log.write_bytes(bytes(edited))
    assert reader.scan() == scan(log) and reader.scan().damaged_line == 2
    log.write_bytes(b"".join(lines[:1]))  # truncated
    assert reader.scan() == scan(log) and len(reader.scan().records) == 1
