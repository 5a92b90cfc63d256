"""The ledger on disk: append-only, hash-chained Arrow batches with a checksummed commit log.

Layout of ``root``::

    COMMITS            one checksummed JSON line per committed batch (commit_log.py)
    LOCK               the writer lock (flock)
    batches/<n>.arrow  batch n: Arrow IPC file; its schema metadata holds batch_no, parent hash,
                       rows hash and batch hash

Commit protocol (one writer at a time, under ``LOCK``): recover; catch the in-memory state up with
batches committed by other writers; apply the transactions to a copy of the state (all or
nothing: one rejection rejects the batch); check the supply identity and that every announced
epoch is fully paid; write the batch file durably; append its commit record (fsync). The batch is
acknowledged when the record is durable.

Recovery decision table (run on every writer open, under the lock; running it twice equals once):

=======================  ==========  =================  ===========================================
file on disk             referenced  hash               action
=======================  ==========  =================  ===========================================
torn last log line       —           —                  cut the line (never acknowledged)
present                  yes         matches the log    keep
present                  yes         does not match     raise LedgerCorrupted naming the batch
missing                  yes         —                  raise LedgerCorrupted naming the batch
present (final name)     no          any                delete: written, never acknowledged
``.tmp-*``               no          any                delete: half-written
=======================  ==========  =================  ===========================================

Corruption is never repaired silently: acknowledged data that does not verify stops the writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ledger.errors import BatchRejected, LedgerCorrupted
from ledger.schema import Kind, Tx, table_to_txs, txs_to_table
from ledger.state import Applied, Exists, LedgerState, Rejected
from ledger.store import commit_log
from ledger.store.commit_log import CommitRecord
from ledger.store.faults import fault_point
from ledger.store.hashing import GENESIS_PARENT, batch_hash, file_sha256, rows_hash
from ledger.store.lock import writer_lock
from ledger.store.segments import TMP_PREFIX, batch_file_name, fsync_dir, read_batch, write_batch

LOCK_TIMEOUT_S = 30.0
TXS_PER_BATCH_MAX = 1_000_000


@dataclass(frozen=True)
class CommitResult:
    """What a commit did: the new batch (None if every transaction already existed)."""

    batch_no: int | None
    batch_hash: str | None
    applied: int
    existed: int


@dataclass
class VerifyReport:
    """Result of ``Ledger.verify``."""

    ok: bool
    batches: int
    rows: int
    head_hash: str
    first_bad_batch: int | None = None
    problem: str | None = None
    supply: dict[str, int] = field(default_factory=dict)


class Ledger:
    """Reader and (locked) writer of one ledger directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.batches_dir = self.root / "batches"
        self.log_path = self.root / "COMMITS"
        self.lock_path = self.root / "LOCK"
        self._state = LedgerState()
        self._state_batches = 0
        self._head_hash = GENESIS_PARENT

    # ---- opening and recovery --------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> Ledger:
        """Open (creating if needed) and recover the ledger at ``root``."""
        ledger = cls(root)
        ledger.batches_dir.mkdir(parents=True, exist_ok=True)
        with writer_lock(ledger.lock_path, timeout_s=lock_timeout_s):
            ledger.recover()
        return ledger

    def recover(self) -> None:
        """Apply the decision table of the module docstring. Call with the writer lock held."""
        scan = commit_log.scan(self.log_path)
        if scan.torn_tail:
            commit_log.truncate(self.log_path, valid_bytes=scan.valid_bytes)
        referenced = {record.file for record in scan.records}
        for record in scan.records:
            path = self.batches_dir / record.file
            if not path.exists():
                raise LedgerCorrupted(
                    f"batch {record.batch_no} ({record.file}) is missing", batch_no=record.batch_no
                )
        removed = False
        for path in sorted(self.batches_dir.iterdir()):
            if path.name.startswith(TMP_PREFIX) or path.name not in referenced:
                path.unlink()
                removed = True
        if removed:
            fsync_dir(self.batches_dir)

    # ---- reading ---------------------------------------------------------------------------

    def records(self) -> list[CommitRecord]:
        """Committed batches, in order (readers ignore a torn tail without changing anything)."""
        return commit_log.scan(self.log_path).records

    def head_hash(self) -> str:
        records = self.records()
        return records[-1].batch_hash if records else GENESIS_PARENT

    def read_table(self, record: CommitRecord) -> pa.Table:
        return read_batch(self.batches_dir / record.file)

    def table(self) -> pa.Table:
        """Every committed row, with ``batch_no`` and ``row_no`` columns (memory-mapped)."""
        tables = []
        for record in self.records():
            t = self.read_table(record).replace_schema_metadata(None)
            t = t.append_column("batch_no", pa.array([record.batch_no] * t.num_rows, pa.int64()))
            t = t.append_column("row_no", pa.array(range(t.num_rows), pa.int64()))
            tables.append(t)
        if not tables:
            from ledger.schema import TX_SCHEMA

            empty = TX_SCHEMA.empty_table().replace_schema_metadata(None)
            empty = empty.append_column("batch_no", pa.array([], pa.int64()))
            return empty.append_column("row_no", pa.array([], pa.int64()))
        return pa.concat_tables(tables)

    def state(self) -> LedgerState:
        """The current state, caught up with every committed batch."""
        records = self.records()
        for record in records[self._state_batches :]:
            if record.parent_hash != self._head_hash:
                raise LedgerCorrupted(
                    f"batch {record.batch_no} does not chain on its parent",
                    batch_no=record.batch_no,
                )
            if file_sha256(self.batches_dir / record.file) != record.file_sha256:
                raise LedgerCorrupted(
                    f"batch {record.batch_no} ({record.file}) does not match its commit record",
                    batch_no=record.batch_no,
                )
            # Signatures were checked at commit time and the bytes are hash-chained; ``verify``
            # re-checks them from genesis.
            self._apply_batch(
                self._state,
                table_to_txs(self.read_table(record)),
                record.batch_no,
                check_signatures=False,
            )
            self._state_batches = record.batch_no
            self._head_hash = record.batch_hash
        return self._state

    @staticmethod
    def _apply_batch(
        state: LedgerState, txs: Sequence[Tx], batch_no: int | None, *, check_signatures: bool
    ) -> int:
        applied = 0
        for tx in txs:
            outcome = state.apply(tx, check_signatures=check_signatures)
            if isinstance(outcome, Rejected):
                if batch_no is None:
                    raise BatchRejected(tx.tx_id, outcome.reason)
                raise LedgerCorrupted(
                    f"batch {batch_no}: {tx.tx_id!r} breaks the rules: {outcome.reason}",
                    batch_no=batch_no,
                )
            applied += isinstance(outcome, Applied)
        state.check_supply()
        state.check_epochs_complete()
        return applied

    # ---- writing ---------------------------------------------------------------------------

    def commit(
        self,
        txs: Sequence[Tx],
        *,
        allow_system: bool = True,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> CommitResult:
        """Commit ``txs`` as one batch, all or nothing (see the module docstring)."""
        if len(txs) > TXS_PER_BATCH_MAX:
            raise ValueError(f"a batch holds at most {TXS_PER_BATCH_MAX} transactions")
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        with writer_lock(self.lock_path, timeout_s=lock_timeout_s):
            self.recover()
            state = self.state()
            try:
                return self._commit_locked(state, txs, allow_system=allow_system)
            except BaseException:
                # The batch was applied to the live state before it was known to be
                # acceptable; forget that state so the next read replays it from disk.
                self._forget_state()
                raise

    def _forget_state(self) -> None:
        self._state = LedgerState()
        self._state_batches = 0
        self._head_hash = GENESIS_PARENT

    def _commit_locked(
        self, state: LedgerState, txs: Sequence[Tx], *, allow_system: bool
    ) -> CommitResult:
        """Apply ``txs`` to ``state`` (in place), then write and record the batch.

        Applying in place keeps a commit O(batch) instead of copying the whole state; any
        failure makes the caller drop the in-memory state (see ``commit``).
        """
        fresh: list[Tx] = []
        existed = 0
        for tx in txs:
            outcome = state.apply(tx, allow_system=allow_system)
            if isinstance(outcome, Rejected):
                raise BatchRejected(tx.tx_id, outcome.reason)
            if isinstance(outcome, Exists):
                existed += 1
            else:
                fresh.append(tx)
        if not fresh:
            return CommitResult(batch_no=None, batch_hash=None, applied=0, existed=existed)
        state.check_supply()
        state.check_epochs_complete()
        batch_no = self._state_batches + 1
        table = txs_to_table(fresh)
        r_hash = rows_hash(table)
        b_hash = batch_hash(batch_no=batch_no, parent_hash=self._head_hash, rows_sha256=r_hash)
        epochs = tuple(sorted({f"{t.subnet}/{t.epoch}" for t in fresh if t.kind == Kind.EPOCH}))
        fault_point("before_write")
        path = write_batch(
            self.batches_dir,
            batch_no=batch_no,
            table=table,
            metadata={
                "taoflow.batch_no": str(batch_no),
                "taoflow.parent_hash": self._head_hash,
                "taoflow.rows_hash": r_hash,
                "taoflow.batch_hash": b_hash,
            },
        )
        record = CommitRecord(
            batch_no=batch_no,
            file=batch_file_name(batch_no),
            rows=table.num_rows,
            parent_hash=self._head_hash,
            rows_hash=r_hash,
            batch_hash=b_hash,
            file_sha256=file_sha256(path),
            epochs=epochs,
        )
        commit_log.append(self.log_path, record)
        fault_point("after_commit_record")
        self._state = state
        self._state_batches = batch_no
        self._head_hash = b_hash
        return CommitResult(
            batch_no=batch_no, batch_hash=b_hash, applied=len(fresh), existed=existed
        )

    # ---- verification ----------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Re-hash every batch and replay the rules from genesis; name the first bad batch."""
        try:
            records = self.records()
        except LedgerCorrupted as exc:
            return VerifyReport(False, 0, 0, "", first_bad_batch=exc.batch_no, problem=str(exc))
        state = LedgerState()
        parent = GENESIS_PARENT
        rows = 0
        listed = {r.file for r in records}
        for record in records:
            path = self.batches_dir / record.file
            problem = self._verify_one(record, path, parent)
            if problem is None:
                try:
                    table = read_batch(path)
                    meta = table.schema.metadata or {}
                    if meta.get(b"taoflow.parent_hash", b"").decode() != parent:
                        problem = "parent hash in the file does not match the chain"
                    elif rows_hash(table.replace_schema_metadata(None)) != record.rows_hash:
                        problem = "rows do not match their hash"
                    else:
                        self._apply_batch(
                            state, table_to_txs(table), record.batch_no, check_signatures=True
                        )
                        rows += table.num_rows
                except LedgerCorrupted as exc:
                    problem = str(exc)
                except Exception as exc:
                    problem = f"unreadable: {exc}"
            if problem is not None:
                return VerifyReport(
                    False,
                    record.batch_no - 1,
                    rows,
                    parent,
                    first_bad_batch=record.batch_no,
                    problem=f"batch {record.batch_no} ({record.file}): {problem}",
                )
            parent = record.batch_hash
        extra = (
            sorted(p.name for p in self.batches_dir.glob("*.arrow") if p.name not in listed)
            if self.batches_dir.exists()
            else []
        )
        if extra:
            return VerifyReport(
                False,
                len(records),
                rows,
                parent,
                first_bad_batch=len(records) + 1,
                problem=f"unreferenced batch file(s): {', '.join(extra)}",
            )
        return VerifyReport(True, len(records), rows, parent, supply=state.supply())

    @staticmethod
    def _verify_one(record: CommitRecord, path: Path, parent: str) -> str | None:
        if record.parent_hash != parent:
            return "commit record does not chain on its parent"
        expected = batch_hash(
            batch_no=record.batch_no, parent_hash=parent, rows_sha256=record.rows_hash
        )
        if record.batch_hash != expected:
            return "batch hash does not match its parent and rows"
        if not path.exists():
            return "file is missing"
        if file_sha256(path) != record.file_sha256:
            return "file bytes do not match the commit record"
        return None


def ledger_dir(home: Path) -> Path:
    """Where a taoflow home keeps its ledger."""
    return Path(home) / "ledger"


__all__ = ["CommitResult", "Ledger", "VerifyReport", "ledger_dir"]
