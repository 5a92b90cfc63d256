"""Epoch record files: one compressed Arrow IPC file per record table, content-addressed.

Layout under the ledger directory: ``records/<subnet>/<epoch>.<name>.<sha16>.arrow`` where
``sha16`` is the first 16 hex digits of the table's canonical hash (``table_sha256``), which the
epoch payload records in full (``ledger.epoch_records``).

Invariants:
- Record files are written durably (temporary file, fsync, rename, directory fsync) *before* the
  batch that names them, so a batch on disk never names a record that was not durable.
- A file is named by its content: a rejected or retried epoch never overwrites a record of a
  committed one (same name ⇒ same hash). A record file no batch names was never acknowledged
  (a crash between the records and the batch); it is left in place, harmless, and rewritten
  byte-for-byte by a retry.
- Reads check the canonical hash and row count of the table against the payload's reference;
  any difference is ``LedgerCorrupted`` (the caller names the batch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from taoflow.ledger.epoch_records import RecordRef, conform
from taoflow.ledger.names import check_subnet_name
from taoflow.ledger.store.segments import TMP_PREFIX, fsync_dir
from taoflow.ledger.table_hash import table_sha256

RECORDS_DIR = "records"
EPOCH_DIGITS = 10
NAME_HASH_CHARS = 16
COMPRESSION = "zstd"


def record_path(root: Path, *, subnet: str, epoch: int, ref: RecordRef) -> Path:
    """Where record ``ref`` of ``subnet``'s ``epoch`` lives under the ledger ``root``."""
    problem = check_subnet_name(subnet)
    if problem is not None:
        raise ValueError(problem)
    name = f"{epoch:0{EPOCH_DIGITS}d}.{ref.name}.{ref.sha256[:NAME_HASH_CHARS]}.arrow"
    return Path(root) / RECORDS_DIR / subnet / name


def _write_one(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    options = ipc.IpcWriteOptions(compression=COMPRESSION)
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema, options=options) as w:
        w.write_table(table)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_records(
    root: Path, *, subnet: str, epoch: int, tables: Mapping[str, pa.Table]
) -> dict[str, RecordRef]:
    """Write every table of ``tables`` durably (skipping a file that already verifies)."""
    refs: dict[str, RecordRef] = {}
    directories: set[Path] = set()
    for name, raw in sorted(tables.items()):
        table = conform(name, raw)
        ref = RecordRef(name=name, sha256=table_sha256(table), rows=table.num_rows)
        path = record_path(root, subnet=subnet, epoch=epoch, ref=ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        if read_problem(path, ref) is not None:
            _write_one(path, table)
            directories.add(path.parent)
        refs[name] = ref
    for directory in sorted(directories):
        fsync_dir(directory)
    return refs


def _read(path: Path) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        table = ipc.open_file(source).read_all()
    table.validate(full=True)  # a damaged file must fail here, not inside a later kernel
    return table


def _load_checked(path: Path, ref: RecordRef) -> pa.Table | str:
    """Record ``ref`` read from ``path`` and checked against its hash, or the problem."""
    try:
        table = _read(path)
    except FileNotFoundError:
        return f"epoch record {ref.name} ({path.name}) is missing"
    except (OSError, ValueError, pa.ArrowException):
        return f"epoch record {ref.name} ({path.name}) is unreadable"
    try:
        table = conform(ref.name, table)
    except (ValueError, pa.ArrowException):
        return f"epoch record {ref.name} ({path.name}) does not have its schema"
    if table_sha256(table) != ref.sha256 or table.num_rows != ref.rows:
        return f"epoch record {ref.name} ({path.name}) does not match its hash"
    return table


def read_problem(path: Path, ref: RecordRef) -> str | None:
    """Why the file at ``path`` is not record ``ref`` (None when it is)."""
    loaded = _load_checked(path, ref)
    return loaded if isinstance(loaded, str) else None


def read_record_as_stored(
    root: Path, *, subnet: str, epoch: int, ref: RecordRef
) -> tuple[pa.Table | None, str | None]:
    """Record ``ref`` as it is on disk, and why it is not the committed record (None if it is).

    For audits: a table that reads and has the record's schema is returned even when it does
    not match its hash, so a caller can say which rows differ; ``None`` when it cannot be read.
    """
    path = record_path(root, subnet=subnet, epoch=epoch, ref=ref)
    checked = _load_checked(path, ref)
    if not isinstance(checked, str):
        return checked, None
    try:
        return conform(ref.name, _read(path)), checked
    except (OSError, ValueError, pa.ArrowException):
        return None, checked


def read_record(root: Path, *, subnet: str, epoch: int, ref: RecordRef) -> pa.Table | str:
    """Record ``ref`` of ``subnet``'s ``epoch``, checked against its hash (or the problem)."""
    return _load_checked(record_path(root, subnet=subnet, epoch=epoch, ref=ref), ref)
