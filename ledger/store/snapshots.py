"""Snapshots: the state after batch n as Arrow files, so opening replays only the batches after n.

Layout under the ledger directory::

    snapshots/INDEX              one checksummed, signed JSON line per complete snapshot
    snapshots/<n>/<table>.arrow  the tables of ``ledger.snapshot_codec`` for the state after n

Write protocol (under the writer lock, after batch n's commit record is durable): write every
table into ``snapshots/.tmp-<n>-<pid>/``, fsync each file, rename the directory to ``<n>``,
fsync ``snapshots/``, then append the index line (fsync). The line names batch n, its
batch hash, the sha256 of each table file (checked before a byte is parsed) and carries the
network writer key's signature over all of it. A snapshot is derived data: writing one never
changes a batch, and a failure to write one never fails the commit that triggered it.

Decision table when opening (newest index line first; the first that passes every check is used,
and every one skipped is reported with why):

==========================================  ================================================
what is found                               action
==========================================  ================================================
index line damaged (checksum, JSON)         skip it: never trusted
names a batch the log does not hold, or     skip: the snapshot is not of this history
whose hash differs from the logged one
signature missing or not by the writer key  skip: anyone could have written it
a table missing, unreadable, or not         skip: damaged or edited after it was written
hashing to the line's hash
snapshot directory without an index line    ignored (a crash while writing it); the next
                                            snapshot of the same batch replaces it
none passes                                 replay from genesis (always correct, slower)
==========================================  ================================================

Opening from a snapshot and replaying the later batches gives the same state as replaying every
batch from genesis (tested on random histories).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from taoflow.ledger.keys import Keypair, verify_signature
from taoflow.ledger.schema import canonical_json
from taoflow.ledger.snapshot_codec import SNAPSHOT_SCHEMAS, state_from_tables, state_to_tables
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store.commit_log import CommitRecord
from taoflow.ledger.store.faults import fault_point
from taoflow.ledger.store.hashing import file_sha256
from taoflow.ledger.store.segments import BATCH_DIGITS, TMP_PREFIX, fsync_dir
from taoflow.ledger.tx_index import INDEX_SCHEMA as TX_INDEX_SCHEMA

SNAPSHOTS_DIR = "snapshots"
INDEX_FILE = "INDEX"
SNAPSHOT_DOMAIN = b"taoflow-snapshot-v1\x00"
SNAPSHOT_EVERY_BATCHES_DEFAULT = 16
"""A snapshot is written after every this many batches (``Ledger(snapshot_every=)``): opening
or answering "as of batch n" replays at most this many batches."""
SNAPSHOTS_KEPT = 3
"""Snapshots kept whole; older ones keep their state tables (for "as of" questions) but lose
their transaction index (the only table that grows with the number of user transactions)."""
INDEX_TABLE = "tx_index"
TABLE_NAMES = (*SNAPSHOT_SCHEMAS, INDEX_TABLE)


@dataclass(frozen=True)
class SnapshotRecord:
    """One index line: which batch the snapshot is of, and the hash of each of its tables."""

    batch_no: int
    head_hash: str
    tables: tuple[tuple[str, str], ...]
    signature: str = ""

    def body(self) -> dict[str, object]:
        return {"batch_no": self.batch_no, "head_hash": self.head_hash, "tables": dict(self.tables)}

    def message(self) -> bytes:
        return SNAPSHOT_DOMAIN + canonical_json(self.body()).encode()

    def to_line(self) -> bytes:
        body = {**self.body(), "signature": self.signature}
        check = hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]
        return (canonical_json({"check": check, "snapshot": body}) + "\n").encode()

    @staticmethod
    def from_line(line: bytes) -> SnapshotRecord | None:
        try:
            outer = json.loads(line)
            body = outer["snapshot"]
            if hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16] != outer["check"]:
                return None
            return SnapshotRecord(
                batch_no=int(body["batch_no"]),
                head_hash=str(body["head_hash"]),
                tables=tuple(sorted((str(k), str(v)) for k, v in body["tables"].items())),
                signature=str(body["signature"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass
class SnapshotLoad:
    """What opening from snapshots did: the one used (if any) and every one skipped, with why."""

    used: int | None = None
    skipped: list[str] = field(default_factory=list)


def snapshots_dir(root: Path) -> Path:
    return Path(root) / SNAPSHOTS_DIR


def snapshot_dir(root: Path, batch_no: int) -> Path:
    return snapshots_dir(root) / f"{batch_no:0{BATCH_DIGITS}d}"


def index_records(root: Path) -> tuple[list[SnapshotRecord], int]:
    """The index's valid lines in order, and how many lines were damaged."""
    try:
        data = (snapshots_dir(root) / INDEX_FILE).read_bytes()
    except FileNotFoundError:
        return [], 0
    records, damaged = [], 0
    for line in data.split(b"\n"):
        if not line:
            continue
        record = SnapshotRecord.from_line(line)
        if record is None:
            damaged += 1
        else:
            records.append(record)
    return records, damaged


def _write_table(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(
    root: Path,
    state: LedgerState,
    *,
    batch_no: int,
    head_hash: str,
    signer: Keypair | None,
) -> SnapshotRecord:
    """Write the snapshot of ``state`` (the state after ``batch_no``) and index it."""
    tables = state_to_tables(state)
    base = snapshots_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f"{TMP_PREFIX}{batch_no}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    digests: list[tuple[str, str]] = []
    for number, (name, table) in enumerate(tables.items()):
        _write_table(tmp / f"{name}.arrow", table)
        digests.append((name, file_sha256(tmp / f"{name}.arrow")))
        if number == 0:
            fault_point("snapshot_mid_tables")
    fsync_dir(tmp)
    final = snapshot_dir(root, batch_no)
    if final.exists():  # an unindexed leftover of a crash (an indexed one is never rewritten)
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(base)
    record = SnapshotRecord(
        batch_no=batch_no,
        head_hash=head_hash,
        tables=tuple(sorted(digests)),
    )
    if signer is not None:
        record = SnapshotRecord(
            **{**record.__dict__, "signature": signer.sign(record.message()).hex()}
        )
    fault_point("snapshot_before_index")
    fd = os.open(base / INDEX_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, record.to_line())
        os.fsync(fd)
    finally:
        os.close(fd)
    _prune(root)
    return record


def _prune(root: Path) -> None:
    """Drop the transaction index of all but the newest ``SNAPSHOTS_KEPT`` snapshots."""
    indexed = sorted({r.batch_no for r in index_records(root)[0]})
    for batch_no in indexed[:-SNAPSHOTS_KEPT]:
        (snapshot_dir(root, batch_no) / f"{INDEX_TABLE}.arrow").unlink(missing_ok=True)


def _read_table(path: Path) -> pa.Table:
    source = pa.memory_map(str(path), "r")
    return ipc.open_file(source).read_all()


def _problem(
    root: Path,
    record: SnapshotRecord,
    logged: list[CommitRecord],
    writer_key: str | None,
    *,
    with_index: bool,
) -> str | dict[str, pa.Table]:
    if not 1 <= record.batch_no <= len(logged):
        return "names a batch the commit log does not hold"
    if logged[record.batch_no - 1].batch_hash != record.head_hash:
        return "is not of this history (its batch hash differs from the log's)"
    if writer_key is not None:
        try:
            raw = bytes.fromhex(record.signature)
        except ValueError:
            raw = b""
        if not verify_signature(public_hex=writer_key, message=record.message(), signature=raw):
            return "is not signed by the network's writer key"
    if {name for name, _ in record.tables} != set(TABLE_NAMES):
        return "does not name every state table"
    tables: dict[str, pa.Table] = {}
    for name, digest in record.tables:
        if name == INDEX_TABLE and not with_index:
            tables[name] = TX_INDEX_SCHEMA.empty_table()
            continue
        path = snapshot_dir(root, record.batch_no) / f"{name}.arrow"
        try:
            if file_sha256(path) != digest:
                return f"table {name} does not match its hash"
            tables[name] = _read_table(path)
        except (OSError, ValueError, pa.ArrowException):
            return f"table {name} is missing or unreadable"
    return tables


def load_newest(
    root: Path,
    *,
    logged: list[CommitRecord],
    writer_key: str | None,
    at_most: int | None = None,
    with_index: bool = True,
) -> tuple[LedgerState | None, SnapshotLoad]:
    """The state of the newest snapshot that verifies (see the decision table), or None.

    ``at_most``: only snapshots of that batch or before. ``with_index=False`` (read-only
    "as of" questions) leaves the transaction index empty and does not need its file.
    """
    load = SnapshotLoad()
    records, damaged = index_records(root)
    if damaged:
        load.skipped.append(f"{damaged} damaged snapshot index line(s) ignored")
    newest_first = sorted(enumerate(records), key=lambda p: (p[1].batch_no, p[0]), reverse=True)
    for _, record in newest_first:
        if at_most is not None and record.batch_no > at_most:
            continue
        found = _problem(root, record, logged, writer_key, with_index=with_index)
        if isinstance(found, str):
            load.skipped.append(f"snapshot of batch {record.batch_no} {found}: not used")
            continue
        try:
            state = state_from_tables(found)
        except (ValueError, KeyError, TypeError) as exc:
            load.skipped.append(f"snapshot of batch {record.batch_no} does not load ({exc})")
            continue
        load.used = record.batch_no
        return state, load
    return None, load
