"""Batch files: one Arrow IPC file per committed batch, written durably and read memory-mapped.

Durable write protocol: write ``.tmp-<batch>-<pid>``, fsync it, rename it to its final name,
fsync the directory. Only then may the commit log reference it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from taoflow.ledger.errors import LedgerFormatOutdated
from taoflow.ledger.schema import LEGACY_SCHEMA_VERSIONS, SCHEMA_VERSION, TX_SCHEMA
from taoflow.ledger.store.faults import fault_point

BATCH_DIGITS = 12
TMP_PREFIX = ".tmp-"


def batch_file_name(batch_no: int) -> str:
    return f"{batch_no:0{BATCH_DIGITS}d}.arrow"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_batch(
    directory: Path, *, batch_no: int, table: pa.Table, metadata: dict[str, str]
) -> Path:
    """Write ``table`` as batch ``batch_no`` durably; return its final path."""
    meta = {k.encode(): v.encode() for k, v in metadata.items()}
    meta[b"taoflow.schema_version"] = str(SCHEMA_VERSION).encode()
    schema = TX_SCHEMA.with_metadata(meta)
    final = directory / batch_file_name(batch_no)
    tmp = directory / f"{TMP_PREFIX}{batch_no}-{os.getpid()}"
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
        writer.write_table(table.cast(schema))
    fault_point("after_write")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fault_point("after_fsync")
    os.rename(tmp, final)
    fault_point("after_rename")
    fsync_dir(directory)
    fault_point("after_dir_fsync")
    return final


MIGRATE_HINT = "run `taoflow ledger migrate`"


def outdated_message(version: int) -> str:
    return (
        f"this ledger is in format {version}; this taoflow reads format {SCHEMA_VERSION}: "
        f"{MIGRATE_HINT} (it keeps the old ledger and proves the new one equal)"
    )


def batch_format(path: Path) -> int | None:
    """The format version a batch file declares (None if it declares none or is unreadable)."""
    try:
        with pa.memory_map(str(path), "r") as source:
            meta = ipc.open_file(source).schema.metadata or {}
        return int(meta.get(b"taoflow.schema_version", b""))
    except (OSError, ValueError, pa.ArrowException):
        return None


def read_batch(path: Path, *, version: int = SCHEMA_VERSION) -> pa.Table:
    """Memory-map a batch file (zero copy) and return its table, with its schema metadata.

    A file of a legacy format raises ``LedgerFormatOutdated`` (naming the migrate command);
    ``version`` lets the migration read those.
    """
    source = pa.memory_map(str(path), "r")
    reader = ipc.open_file(source)
    table = reader.read_all()
    found = (table.schema.metadata or {}).get(b"taoflow.schema_version", b"")
    if found != str(version).encode():
        if found.isdigit() and int(found) in LEGACY_SCHEMA_VERSIONS and version == SCHEMA_VERSION:
            raise LedgerFormatOutdated(outdated_message(int(found)))
        raise ValueError(f"{path.name}: unsupported schema version {found!r}")
    return table
