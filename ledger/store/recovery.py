"""Recovery: roll forward, never delete what may have been acknowledged.

The batch files are the record; the commit log is their index. A batch file names its number,
its parent's hash, its rows' hash, its own chained hash and carries the writer's signature, so
whether a file is a valid successor of the head can be decided from the file alone
(``batch_check.inspect_batch``).

Decision table. ``recover`` runs on every writer open and commit, under the writer lock;
``repair`` (``taoflow ledger repair``) runs it explicitly and also rebuilds a damaged or missing
log. Both are idempotent: running them twice equals running them once.

================================  ===========================================================
what is found                     action
================================  ===========================================================
``.tmp-*`` file                   delete: never renamed, so never acknowledged (provable)
torn log tail (no final newline)  cut it: an append is one write of a whole line, so bytes
                                  after the last newline were never acknowledged
logged file present               keep (readers check its bytes against the log)
logged file missing               stop: LedgerCorrupted naming the batch (nothing changed)
next file, self-consistent,       adopt: append its log line (a crash after the rename, or a
chains on the head, signed        rolled-back log; its transaction ids make a retry safe)
next file that does not verify    set aside (moved to ``quarantine/``, never deleted) with a
                                  report line, and every higher-numbered file with it
damaged complete log line         writers stop (corruption, not a torn write); ``repair``
                                  rebuilds the log from the files
missing log, batch files exist    writers stop; ``repair`` rebuilds the log from the files
                                  (never a new genesis)
valid log line ≠ its signed file  writers stop; ``repair`` trusts the signed file (the log
                                  carries no signature) and rebuilds the line
valid log line, file unverifiable stop in both: acknowledged data is damaged; nothing changes
================================  ===========================================================

Every action is one line of the returned report and of ``RECOVERY.log`` beside the log; a
replaced log is moved to ``quarantine/`` first.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from taoflow.ledger.errors import LedgerCorrupted
from taoflow.ledger.store import commit_log
from taoflow.ledger.store.batch_check import BatchFacts, inspect_batch, network_writer_key
from taoflow.ledger.store.commit_log import REPAIR_HINT, CommitRecord
from taoflow.ledger.store.hashing import GENESIS_PARENT, file_sha256
from taoflow.ledger.store.segments import (
    BATCH_DIGITS,
    TMP_PREFIX,
    batch_file_name,
    fsync_dir,
    read_batch,
)

QUARANTINE_DIR = "quarantine"
REPORT_FILE = "RECOVERY.log"
BATCH_SUFFIX = ".arrow"


@dataclass
class RecoveryReport:
    """What recovery did, one line per action (empty when the ledger needed nothing)."""

    actions: list[str] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    log_rebuilt: bool = False


@dataclass(frozen=True)
class Layout:
    """The paths of one ledger directory."""

    root: Path

    @property
    def batches(self) -> Path:
        return self.root / "batches"

    @property
    def log(self) -> Path:
        return self.root / "COMMITS"


def numbered_files(batches: Path) -> dict[int, Path]:
    """Batch files by number (names of exactly ``BATCH_DIGITS`` digits + ``.arrow``)."""
    found: dict[int, Path] = {}
    if not batches.exists():
        return found
    for path in batches.iterdir():
        stem = path.name.removesuffix(BATCH_SUFFIX)
        if path.name.endswith(BATCH_SUFFIX) and len(stem) == BATCH_DIGITS and stem.isdigit():
            found[int(stem)] = path
    return found


def record_of(facts: BatchFacts) -> CommitRecord:
    return CommitRecord(
        batch_no=facts.batch_no,
        file=batch_file_name(facts.batch_no),
        rows=facts.rows,
        parent_hash=facts.parent_hash,
        rows_hash=facts.rows_hash,
        batch_hash=facts.batch_hash,
        file_sha256=facts.file_sha256,
        epochs=facts.epochs,
    )


def _note(layout: Layout, report: RecoveryReport, line: str) -> None:
    report.actions.append(line)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with (layout.root / REPORT_FILE).open("a", encoding="utf-8") as handle:
        handle.write(f"{stamp} {line}\n")
        handle.flush()
        os.fsync(handle.fileno())


def set_aside(layout: Layout, path: Path, report: RecoveryReport, *, why: str) -> None:
    """Move ``path`` to ``quarantine/`` (named by its content hash); never delete it."""
    quarantine = layout.root / QUARANTINE_DIR
    quarantine.mkdir(exist_ok=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    target = quarantine / f"{path.name}.{digest}"
    if target.exists():  # an identical copy is already kept: the original adds nothing
        path.unlink()
    else:
        os.rename(path, target)
    fsync_dir(path.parent)
    fsync_dir(quarantine)
    report.set_aside.append(path.name)
    _note(layout, report, f"set aside {path.name} → {QUARANTINE_DIR}/{target.name}: {why}")


def _drop_tmp_files(layout: Layout, report: RecoveryReport) -> None:
    removed = [p for p in layout.batches.iterdir() if p.name.startswith(TMP_PREFIX)]
    for path in removed:
        path.unlink()
        _note(layout, report, f"deleted {path.name}: half-written, never acknowledged")
    if removed:
        fsync_dir(layout.batches)


def _writer_key_of(layout: Layout, records: list[CommitRecord]) -> str | None:
    """The network's writer key, from logged batch 1 (None while there is none or no key)."""
    if not records:
        return None
    path = layout.batches / records[0].file
    if file_sha256(path) != records[0].file_sha256:
        raise LedgerCorrupted(
            f"ledger batch 1 ({records[0].file}) does not match its commit record: {REPAIR_HINT}",
            batch_no=1,
        )
    return network_writer_key(read_batch(path)) or None


def _roll_forward(
    layout: Layout, records: list[CommitRecord], report: RecoveryReport
) -> list[CommitRecord]:
    """Adopt every self-consistent successor of the head; set aside the first that is not."""
    files = numbered_files(layout.batches)
    number = len(records) + 1
    if not any(n >= number for n in files):
        return records
    writer_key = _writer_key_of(layout, records)
    head = records[-1].batch_hash if records else GENESIS_PARENT
    while number in files:
        facts = inspect_batch(
            files[number], batch_no=number, parent_hash=head, writer_key=writer_key
        )
        if isinstance(facts, str):
            break
        record = record_of(facts)
        commit_log.append(layout.log, record)
        records.append(record)
        report.adopted.append(number)
        _note(layout, report, f"adopted batch {number}: complete, chains on the head, verifies")
        writer_key = facts.writer_key
        head = facts.batch_hash
        number += 1
    for extra in sorted(n for n in files if n >= number):
        why = (
            "not a valid successor of the head"
            if extra > number
            else str(
                inspect_batch(files[extra], batch_no=extra, parent_hash=head, writer_key=writer_key)
            )
        )
        set_aside(layout, files[extra], report, why=why)
    return records


def recover(
    root: Path, *, reader: commit_log.LogReader | None = None
) -> tuple[list[CommitRecord], RecoveryReport]:
    """Writer recovery (see the decision table). Call with the writer lock held.

    ``reader``: a long-lived reader of this log (parses only what was appended since).
    """
    layout = Layout(Path(root))
    report = RecoveryReport()
    layout.batches.mkdir(parents=True, exist_ok=True)
    _drop_tmp_files(layout, report)
    scan = commit_log.scan(layout.log) if reader is None else reader.scan()
    records = scan.check()
    if not scan.exists and numbered_files(layout.batches):
        raise LedgerCorrupted(
            f"the ledger commit log is missing but batch files exist: {REPAIR_HINT}", batch_no=1
        )
    if scan.torn_tail:
        commit_log.truncate(layout.log, valid_bytes=scan.valid_bytes)
        _note(layout, report, "cut a torn commit-log tail: an append that never completed")
    for record in records:
        if not (layout.batches / record.file).exists():
            raise LedgerCorrupted(
                f"ledger batch {record.batch_no} ({record.file}) is missing: {REPAIR_HINT}",
                batch_no=record.batch_no,
            )
    return _roll_forward(layout, list(records), report), report


def logged_lines(path: Path) -> dict[int, CommitRecord]:
    """Every complete log line that passes its checksum, by batch number (damage skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    found: dict[int, CommitRecord] = {}
    for line in data[: data.rfind(b"\n") + 1].split(b"\n")[:-1]:
        record = CommitRecord.from_line(line)
        if record is not None:
            found.setdefault(record.batch_no, record)
    return found


def _chain_from_files(
    layout: Layout, logged: dict[int, CommitRecord], report: RecoveryReport
) -> list[CommitRecord]:
    """The longest chain of self-consistent files from batch 1, checked against the log."""
    files = numbered_files(layout.batches)
    chain: list[CommitRecord] = []
    head, writer_key = GENESIS_PARENT, None
    number = 1
    while number in files:
        facts = inspect_batch(
            files[number], batch_no=number, parent_hash=head, writer_key=writer_key
        )
        line = logged.get(number)
        if isinstance(facts, str):
            if line is not None:
                raise LedgerCorrupted(
                    f"ledger batch {number} was acknowledged but its file does not verify "
                    f"({facts}); nothing was changed",
                    batch_no=number,
                )
            break
        record = record_of(facts)
        if line is not None and line != record and facts.writer_key is None:
            raise LedgerCorrupted(
                f"ledger batch {number} does not match its acknowledged commit record and is "
                "not signed, so neither can be trusted; nothing was changed",
                batch_no=number,
            )
        if line is not None and line != record:
            _note(layout, report, f"log line of batch {number} disagreed with its signed file")
        chain.append(record)
        head, writer_key = facts.batch_hash, facts.writer_key
        number += 1
    lost = sorted(n for n in logged if n >= number)
    if lost:
        raise LedgerCorrupted(
            f"ledger batch {lost[0]} was acknowledged but its file is missing or does not "
            "chain; nothing was changed",
            batch_no=lost[0],
        )
    for extra in sorted(n for n in files if n >= number):
        set_aside(layout, files[extra], report, why="not a valid successor of the rebuilt chain")
    return chain


def repair(root: Path) -> tuple[list[CommitRecord], RecoveryReport]:
    """Rebuild the log from the batch files (see the decision table). Hold the writer lock."""
    layout = Layout(Path(root))
    report = RecoveryReport()
    layout.batches.mkdir(parents=True, exist_ok=True)
    _drop_tmp_files(layout, report)
    scan = commit_log.scan(layout.log)
    chain = _chain_from_files(layout, logged_lines(layout.log), report)
    clean = scan.exists and scan.damaged_line is None and not scan.torn_tail
    if clean and scan.records == chain:
        return chain, report
    if scan.exists:
        quarantine = layout.root / QUARANTINE_DIR
        quarantine.mkdir(exist_ok=True)
        data = layout.log.read_bytes()
        keep = quarantine / f"COMMITS.{hashlib.sha256(data).hexdigest()[:16]}"
        if not keep.exists():
            keep.write_bytes(data)
            fsync_dir(quarantine)
    commit_log.write_all(layout.log, chain)
    report.log_rebuilt = True
    adopted = [r.batch_no for r in chain if r not in scan.records]
    report.adopted.extend(adopted)
    _note(
        layout,
        report,
        f"rebuilt the commit log from {len(chain)} batch files"
        + (f" (adopted {', '.join(map(str, adopted))})" if adopted else "")
        + (f"; the old log is kept in {QUARANTINE_DIR}/" if scan.exists else ""),
    )
    return chain, report
