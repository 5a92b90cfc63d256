"""The commit log: one checksummed JSON line per committed batch, appended and fsynced.

A batch is acknowledged only once its line is durable. Fault model: a crash can leave at most one
torn line at the end (no newline, or a checksum that does not match); that batch was never
acknowledged and recovery cuts the tail. A bad line anywhere else is corruption.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ledger.errors import LedgerCorrupted
from ledger.schema import canonical_json


@dataclass(frozen=True)
class CommitRecord:
    """What the log says about one committed batch."""

    batch_no: int
    file: str
    rows: int
    parent_hash: str
    rows_hash: str
    batch_hash: str
    file_sha256: str
    epochs: tuple[str, ...] = ()

    def to_line(self) -> bytes:
        body = asdict(self)
        body["epochs"] = list(self.epochs)
        text = canonical_json(body)
        check = hashlib.sha256(text.encode()).hexdigest()[:16]
        return (canonical_json({"check": check, "record": body}) + "\n").encode()

    @staticmethod
    def from_line(line: bytes) -> CommitRecord | None:
        """The record, or None if the line is torn or its checksum does not match."""
        try:
            outer = json.loads(line)
            body = outer["record"]
            if hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16] != outer["check"]:
                return None
            body["epochs"] = tuple(body.get("epochs", ()))
            return CommitRecord(**body)
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class LogScan:
    """The valid records, and the byte offset where a torn tail starts (if any)."""

    records: list[CommitRecord]
    valid_bytes: int
    torn_tail: bool


def scan(path: Path) -> LogScan:
    """Read the log; raise ``LedgerCorrupted`` on a bad line that is not the last."""
    if not path.exists():
        return LogScan(records=[], valid_bytes=0, torn_tail=False)
    data = path.read_bytes()
    records: list[CommitRecord] = []
    offset = 0
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        is_last = index == len(lines) - 1
        if is_last and line == b"":
            break
        record = None if is_last else CommitRecord.from_line(line)
        if record is None or record.batch_no != len(records) + 1:
            if is_last or all(rest == b"" for rest in lines[index + 1 :]):
                return LogScan(records=records, valid_bytes=offset, torn_tail=True)
            raise LedgerCorrupted(
                f"commit log line {index + 1} is damaged", batch_no=len(records) + 1
            )
        records.append(record)
        offset += len(line) + 1
    return LogScan(records=records, valid_bytes=offset, torn_tail=False)


def append(path: Path, record: CommitRecord) -> None:
    """Append one record and fsync it: after this returns the batch is acknowledged."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, record.to_line())
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate(path: Path, *, valid_bytes: int) -> None:
    """Cut a torn tail off the log (recovery)."""
    with path.open("r+b") as handle:
        handle.truncate(valid_bytes)
        handle.flush()
        os.fsync(handle.fileno())
