"""The commit log: one checksummed JSON line per committed batch, appended and fsynced.

The log is an *index* of the batch files, not the only record of them: every batch file carries
its own batch number, parent hash, rows hash, batch hash and writer signature, so a damaged or
missing log can be rebuilt from the files (``ledger.store.recovery``).

A batch is acknowledged only once its line is durable. Fault model: an append is one ``write``
of a whole line ending in a newline, so a crash can leave at most one *torn tail*: bytes after
the last newline. That line was never acknowledged and writers cut it. A complete line (one that
ends in a newline) whose checksum or batch number is wrong is *damage*, never a torn write:
readers and writers stop on it and ``taoflow ledger repair`` rebuilds the log from the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from taoflow.ledger.errors import LedgerCorrupted
from taoflow.ledger.schema import canonical_json
from taoflow.ledger.store.segments import fsync_dir

REPAIR_HINT = "run `taoflow ledger repair`"


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
        """The record, or None if the line is damaged (unparseable or its checksum is wrong).

        A line this module wrote is ``{"check":"<16 hex>","record":<canonical body>}``: the
        checksum is verified on the body's own bytes (no re-encoding); a line in any other
        layout is checked by re-encoding its body canonically.
        """
        try:
            outer = json.loads(line)
            body = outer["record"]
            raw = _raw_body(line)
            text = raw if raw is not None else canonical_json(body).encode()
            if hashlib.sha256(text).hexdigest()[:16] != outer["check"]:
                return None
            body["epochs"] = tuple(body.get("epochs", ()))
            return CommitRecord(**body)
        except (ValueError, KeyError, TypeError):
            return None


_LINE_HEAD = b'{"check":"'
_CHECK_HEX = 16
_RECORD_KEY = b'","record":'


def _raw_body(line: bytes) -> bytes | None:
    """The bytes of the record body of a line in the layout ``to_line`` writes (else None)."""
    head = len(_LINE_HEAD) + _CHECK_HEX
    if not (
        line.startswith(_LINE_HEAD)
        and line[head : head + len(_RECORD_KEY)] == _RECORD_KEY
        and line.endswith(b"}")
    ):
        return None
    return line[head + len(_RECORD_KEY) : -1]


@dataclass(frozen=True)
class LogScan:
    """What the log holds: its valid records, a torn tail, the first damaged line."""

    exists: bool
    records: list[CommitRecord]
    """The records before the first damaged line, in order."""
    valid_bytes: int
    """Length of the log up to the end of the last complete line (where a torn tail starts)."""
    torn_tail: bool
    damaged_line: int | None = None
    """1-based number of the first complete line that is damaged or out of order."""

    def check(self) -> list[CommitRecord]:
        """The records, or ``LedgerCorrupted`` naming the damaged line and the repair command."""
        if self.damaged_line is not None:
            batch_no = len(self.records) + 1
            raise LedgerCorrupted(
                f"ledger commit log line {self.damaged_line} (batch {batch_no}) is damaged: "
                f"{REPAIR_HINT}",
                batch_no=batch_no,
            )
        return self.records


def scan(path: Path) -> LogScan:
    """Read the log without changing it (never raises for damage: see ``LogScan.check``)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LogScan(exists=False, records=[], valid_bytes=0, torn_tail=False)
    return scan_bytes(data)


def scan_bytes(
    data: bytes, *, start: int = 0, records: list[CommitRecord] | None = None
) -> LogScan:
    """Parse the log ``data`` from byte ``start`` (where ``records`` end: a line boundary)."""
    records = [] if records is None else records
    complete_end = data.rfind(b"\n") + 1
    offset = start
    first_line = len(records) + 1
    for index, line in enumerate(
        data[start:complete_end].split(b"\n")[:-1] if complete_end > start else []
    ):
        record = CommitRecord.from_line(line)
        if record is None or record.batch_no != len(records) + 1:
            return LogScan(
                True, records, complete_end, complete_end < len(data), first_line + index
            )
        records.append(record)
        offset += len(line) + 1
    return LogScan(exists=True, records=records, valid_bytes=offset, torn_tail=offset < len(data))


class LogReader:
    """Reads one log repeatedly, parsing only the lines appended since the last read.

    The bytes already parsed are compared with the file's (one ``memcmp``), so an edited,
    truncated or replaced log is parsed again in full: the answer is always that of ``scan``.
    Keeps a long-lived process's reads O(new lines) instead of O(history).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = b""
        self._last: LogScan | None = None
        self._lock = threading.Lock()

    def scan(self) -> LogScan:
        with self._lock:
            return self._scan()

    def _scan(self) -> LogScan:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._data, self._last = b"", None
            return LogScan(exists=False, records=[], valid_bytes=0, torn_tail=False)
        last = self._last
        if (
            last is not None
            and last.damaged_line is None
            and data[: last.valid_bytes] == self._data[: last.valid_bytes]
        ):
            result = scan_bytes(data, start=last.valid_bytes, records=list(last.records))
        else:
            result = scan_bytes(data)
        self._data, self._last = data, result
        return result


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


def write_all(path: Path, records: list[CommitRecord]) -> None:
    """Replace the log with ``records`` atomically (temporary file, fsync, rename, dir fsync)."""
    tmp = path.with_name(f".{path.name}.rebuild-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"".join(record.to_line() for record in records))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(path.parent)
