"""The ledger on disk: append-only, hash-chained, signed Arrow batches with a commit log.

Layout of ``root`` (the home's ``ledger/``; the writer key lives outside it, in the home's
``keys/writer.key``)::

    COMMITS            one checksummed JSON line per committed batch: the index (commit_log.py)
    LOCK               the writer lock (flock)
    RECOVERY.log       one line per recovery action (recovery.py)
    quarantine/        files recovery set aside (never deleted)
    batches/<n>.arrow  batch n: Arrow IPC file; its schema metadata holds batch_no, parent hash,
                       rows hash, batch hash, the writer's signature of the batch hash and the
                       co-signatures of the epoch's hosted validators

Commit protocol (one writer at a time, under ``LOCK``): recover (``recovery.recover``: roll
forward, never delete what may have been acknowledged); catch the in-memory state up with
batches committed by other writers; apply the transactions to the state (all or nothing: one
rejection rejects the batch); check the supply identity and that every announced epoch is fully
paid; sign the batch hash with the network's writer key (named by the network entry of batch 1)
and add the co-signatures; write the batch file durably; append its commit record (fsync). The
batch is acknowledged when the record is durable.

Reads verify what they read: every file's bytes are hashed against its log line (cached per
file identity within a process) and any damage becomes ``LedgerCorrupted`` naming the batch and
``taoflow ledger repair``. ``verify`` re-checks everything from genesis: chain, rows, writer and
co-signatures, the rules; it reports the stake share of validators that co-signed each subnet's
latest epoch (finality).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.epoch_payment import EMISSION_NAMES, pay_columns
from taoflow.ledger.epoch_records import RECORDS_KEY, RecordRef, check_refs, record_refs
from taoflow.ledger.errors import BatchRejected, LedgerCorrupted, LedgerError, LedgerFormatOutdated
from taoflow.ledger.keys import Keypair
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.schema import (
    EMISSION_KINDS,
    LEGACY_SCHEMA_VERSIONS,
    Kind,
    Tx,
    canonical_json,
    table_to_txs,
    txs_to_table,
)
from taoflow.ledger.signature_batch import signature_problems_table
from taoflow.ledger.state import Exists, LedgerState, Rejected
from taoflow.ledger.store import commit_log, recovery, snapshots
from taoflow.ledger.store import records as record_files
from taoflow.ledger.store.batch_check import (
    META_COSIGNATURES,
    META_WRITER_SIGNATURE,
    BatchFacts,
    inspect_batch,
    network_writer_key,
)
from taoflow.ledger.store.commit_log import REPAIR_HINT, CommitRecord
from taoflow.ledger.store.faults import fault_point
from taoflow.ledger.store.hashing import (
    GENESIS_PARENT,
    batch_hash,
    cosign_message,
    file_sha256,
    rows_hash,
    writer_message,
)
from taoflow.ledger.store.lock import writer_lock
from taoflow.ledger.store.recovery import RecoveryReport
from taoflow.ledger.store.segments import (
    batch_file_name,
    batch_format,
    outdated_message,
    read_batch,
    write_batch,
)
from taoflow.ledger.store.snapshots import (
    SNAPSHOT_EVERY_BATCHES_DEFAULT,
    SnapshotLoad,
    SnapshotRecord,
)
from taoflow.ledger.store.writer_key import WriterKeyError, load_writer_key

LOCK_TIMEOUT_S = 30.0
TXS_PER_BATCH_MAX = 1_000_000
PPM = 1_000_000
SNAPSHOT_EVERY_ROWS = 100_000
"""A commit also writes a snapshot once this many rows were committed since the last one, so
big batches (100k-row epochs) do not leave a long tail to replay."""
COLUMN_PAY_MIN_ROWS = 64
"""Emission runs at least this long are checked column-wise at commit (shorter: row by row)."""
UNLOGGED_FILES_IN_FLIGHT_MAX = 1
"""Batch files past the log a reader accepts as a commit in flight (one writer at a time)."""
SHARED_LEDGERS_MAX = 16
"""Ledger directories one process keeps open through ``Ledger.shared``."""
SNAPSHOT_EVERY_ENV = "TAOFLOW_SNAPSHOT_EVERY_BATCHES"
"""Overrides ``SNAPSHOT_EVERY_BATCHES_DEFAULT`` (0: never snapshot automatically)."""
WRITER_KEY_RELATIVE = Path("keys") / "writer.key"
"""Where a home keeps its writer key, relative to the home (the ledger is ``<home>/ledger``)."""


_LOG = logging.getLogger("taoflow.ledger")
_EPOCH_NAMES = pa.array([Kind.EPOCH.value])
_SHARED: dict[Path, Ledger] = {}
_SHARED_LOCK = threading.Lock()


def snapshot_every_batches() -> int:
    """How often commits write a snapshot: ``$TAOFLOW_SNAPSHOT_EVERY_BATCHES`` or the default."""
    text = os.environ.get(SNAPSHOT_EVERY_ENV, "").strip()
    if not text:
        return SNAPSHOT_EVERY_BATCHES_DEFAULT
    if not text.isdigit():
        raise LedgerError(f"{SNAPSHOT_EVERY_ENV} must be a whole number of batches, not {text!r}")
    return int(text)


def default_writer_key_path(root: Path) -> Path:
    """The writer key of the home that holds the ledger directory ``root``."""
    return Path(root).resolve().parent / WRITER_KEY_RELATIVE


@dataclass(frozen=True)
class CommitResult:
    """What a commit did: the new batch (None if every transaction already existed)."""

    batch_no: int | None
    batch_hash: str | None
    applied: int
    existed: int


@dataclass(frozen=True)
class Finality:
    """How much of a subnet's validator stake co-signed its latest epoch batch."""

    subnet: str
    epoch: int
    batch_no: int
    signed_stake_rao: int
    validator_stake_rao: int
    signers: int
    validators: int

    @property
    def signed_ppm(self) -> int:
        if self.validator_stake_rao == 0:
            return 0
        return self.signed_stake_rao * PPM // self.validator_stake_rao


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
    writer_key: str | None = None
    finality: dict[str, Finality] = field(default_factory=dict)
    rules_from_batch: int = 1
    """The first batch whose rules were replayed (after the snapshot used, or 1)."""


def _corrupted(record: CommitRecord, what: str) -> LedgerCorrupted:
    return LedgerCorrupted(
        f"ledger batch {record.batch_no} ({record.file}) {what}: {REPAIR_HINT}",
        batch_no=record.batch_no,
    )


class Ledger:
    """Reader and (locked) writer of one ledger directory."""

    def __init__(
        self,
        root: Path,
        *,
        writer_key_path: Path | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.snapshot_every = snapshot_every_batches() if snapshot_every is None else snapshot_every
        self.last_snapshot_load = SnapshotLoad()
        self._rows_since_snapshot = 0
        self.batches_dir = self.root / "batches"
        self.log_path = self.root / "COMMITS"
        self._log_reader = commit_log.LogReader(self.log_path)
        self.lock_path = self.root / "LOCK"
        self.writer_key_path = writer_key_path or default_writer_key_path(self.root)
        self.last_recovery = RecoveryReport()
        self._verified: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._writer_key: str | None = None
        self._thread_lock = threading.RLock()
        self._state = LedgerState()
        self._state_batches = 0
        self._head_hash = GENESIS_PARENT
        self._format_checked = False

    # ---- opening and recovery --------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        *,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        writer_key_path: Path | None = None,
        snapshot_every: int | None = None,
    ) -> Ledger:
        """Open (creating if needed) and recover the ledger at ``root``."""
        ledger = cls(root, writer_key_path=writer_key_path, snapshot_every=snapshot_every)
        ledger.batches_dir.mkdir(parents=True, exist_ok=True)
        ledger.check_format()
        with writer_lock(ledger.lock_path, timeout_s=lock_timeout_s):
            ledger.recover()
        return ledger

    def check_format(self) -> None:
        """Refuse a ledger of an older format (``LedgerFormatOutdated`` naming migrate)."""
        if self._format_checked:
            return
        first = self.batches_dir / batch_file_name(1)
        if first.exists():
            version = batch_format(first)
            if version in LEGACY_SCHEMA_VERSIONS:
                raise LedgerFormatOutdated(outdated_message(version))
            self._format_checked = True

    @classmethod
    def shared(cls, root: Path) -> Ledger:
        """This process's one open ``Ledger`` for ``root`` (opened and recovered the first time).

        A long-lived process (the flow worker, ``serve``) keeps one state and catches up with
        new batches instead of replaying the whole history for every stage of every epoch.
        Thread-safe; at most ``SHARED_LEDGERS_MAX`` directories are kept (oldest dropped).
        """
        key = Path(root).resolve()
        with _SHARED_LOCK:
            ledger = _SHARED.get(key)
            if ledger is None or not ledger.log_path.exists():
                while len(_SHARED) >= SHARED_LEDGERS_MAX:
                    _SHARED.pop(next(iter(_SHARED)))
                ledger = _SHARED[key] = cls.open(key)
            return ledger

    def recover(self) -> RecoveryReport:
        """Roll forward (``recovery.recover``). Call with the writer lock held."""
        self.check_format()
        _, self.last_recovery = recovery.recover(self.root, reader=self._log_reader)
        return self.last_recovery

    def repair(self, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> RecoveryReport:
        """Rebuild the commit log from the batch files (``recovery.repair``); idempotent."""
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        with writer_lock(self.lock_path, timeout_s=lock_timeout_s):
            _, report = recovery.repair(self.root)
            _, rolled = recovery.recover(self.root)
        report.actions.extend(rolled.actions)
        self._forget_state()
        return report

    # ---- reading ---------------------------------------------------------------------------

    def records(self) -> list[CommitRecord]:
        """Committed batches, in order (a torn tail is ignored; damage raises, naming repair)."""
        self.check_format()
        scan = self._log_reader.scan()
        records = list(scan.check())
        if not scan.exists and recovery.numbered_files(self.batches_dir):
            raise LedgerCorrupted(
                f"the ledger commit log is missing but batch files exist: {REPAIR_HINT}",
                batch_no=1,
            )
        # One file past the log is a commit in flight (or a crash the next writer adopts); two
        # cannot happen under the writer lock, so the log was rolled back: say so, do not
        # answer from a shorter history.
        behind = len(records) + UNLOGGED_FILES_IN_FLIGHT_MAX + 1
        if (self.batches_dir / batch_file_name(behind)).exists():
            raise LedgerCorrupted(
                f"the ledger commit log is behind its batch files (batch {behind} and more are "
                f"not in it): {REPAIR_HINT}",
                batch_no=len(records) + 1,
            )
        return records

    def head_hash(self) -> str:
        records = self.records()
        return records[-1].batch_hash if records else GENESIS_PARENT

    def _check_file(self, record: CommitRecord) -> Path:
        """The batch file of ``record`` after checking its bytes against the log (cached)."""
        path = self.batches_dir / record.file
        try:
            st = path.stat()
        except FileNotFoundError:
            raise _corrupted(record, "is missing") from None
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._verified.get(record.file) != (identity, record.file_sha256):
            if file_sha256(path) != record.file_sha256:
                raise _corrupted(record, "does not match its commit record")
            self._verified[record.file] = (identity, record.file_sha256)
        return path

    def read_table(self, record: CommitRecord) -> pa.Table:
        """The rows of a committed batch, checked against the log."""
        path = self._check_file(record)
        try:
            return read_batch(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise _corrupted(record, f"is unreadable ({str(exc).splitlines()[0]})") from None

    def table(self) -> pa.Table:
        """Every committed row, with ``batch_no`` and ``row_no`` columns (memory-mapped)."""
        tables = []
        parent = GENESIS_PARENT
        for record in self.records():
            if record.parent_hash != parent:
                raise _corrupted(record, "does not chain on its parent")
            parent = record.batch_hash
            t = self.read_table(record).replace_schema_metadata(None)
            t = t.append_column("batch_no", pa.array([record.batch_no] * t.num_rows, pa.int64()))
            t = t.append_column("row_no", pa.array(range(t.num_rows), pa.int64()))
            tables.append(t)
        if not tables:
            from taoflow.ledger.schema import TX_SCHEMA

            empty = TX_SCHEMA.empty_table().replace_schema_metadata(None)
            empty = empty.append_column("batch_no", pa.array([], pa.int64()))
            return empty.append_column("row_no", pa.array([], pa.int64()))
        return pa.concat_tables(tables)

    def state(self) -> LedgerState:
        """The current state, caught up with every committed batch (incrementally).

        If the log no longer holds the batch this state was built up to (a repaired or
        replaced ledger under a long-lived process), the state is rebuilt from genesis.
        """
        with self._thread_lock:
            records = self.records()
            known = self._state_batches
            if known and (len(records) < known or records[known - 1].batch_hash != self._head_hash):
                self._forget_state()
            if self._state_batches == 0 and records:
                self._load_snapshot(records)
            for record in records[self._state_batches :]:
                if record.parent_hash != self._head_hash:
                    raise _corrupted(record, "does not chain on its parent")
                # Signatures were checked at commit time and the bytes are hash-chained;
                # ``verify`` re-checks them from genesis.
                self._apply_batch(
                    self._state,
                    self.read_table(record).replace_schema_metadata(None),
                    record.batch_no,
                    check_signatures=False,
                )
                self._state_batches = record.batch_no
                self._head_hash = record.batch_hash
            return self._state

    def _first_batch_writer_key(self, records: Sequence[CommitRecord]) -> str | None:
        """The writer key the network entry of batch 1 names (None: no network entry)."""
        return network_writer_key(self.read_table(records[0])) or None

    def _record_of_epoch(self, subnet: str, epoch: int) -> CommitRecord | None:
        """The commit record of the batch that committed ``subnet``'s ``epoch``."""
        label = f"{subnet}/{epoch}"
        return next((r for r in reversed(self.records()) if label in r.epochs), None)

    def batch_of_epoch(self, subnet: str, epoch: int) -> int | None:
        """The batch that committed ``subnet``'s ``epoch`` (from the commit log's index)."""
        record = self._record_of_epoch(subnet, epoch)
        return None if record is None else record.batch_no

    def state_as_of(self, batch_no: int) -> LedgerState:
        """The state right after ``batch_no`` (read-only: its transaction index is empty).

        Starts from the newest verified snapshot at or before the batch and replays the rest
        (at most ``snapshot_every`` batches when snapshots are written).
        """
        records = self.records()
        if not 0 <= batch_no <= len(records):
            raise LedgerError(f"the ledger has no batch {batch_no} (it has {len(records)})")
        if batch_no == len(records):
            with self._thread_lock:
                return self.state().copy()
        state, start = LedgerState(), 0
        if batch_no:
            writer_key = self._first_batch_writer_key(records)
            loaded, load = snapshots.load_newest(
                self.root,
                logged=records,
                writer_key=writer_key,
                at_most=batch_no,
                with_index=False,
            )
            if loaded is not None and load.used is not None:
                state, start = loaded, load.used
        for record in records[start:batch_no]:
            self._apply_batch(
                state,
                self.read_table(record).replace_schema_metadata(None),
                record.batch_no,
                check_signatures=False,
            )
        return state

    def walk_states(
        self, *, first_batch: int, last_batch: int, start: LedgerState | None = None
    ) -> Iterator[tuple[CommitRecord, LedgerState, pa.Table]]:
        """For each batch ``first_batch..last_batch``: its record, the state right BEFORE it and
        its rows, in one forward pass (the state starts ``state_as_of(first_batch - 1)``, or
        ``start`` when the caller already holds that state).

        The state yielded is one object advanced in place after each step: it is valid until
        the caller asks for the next batch (copy it to keep it).
        """
        records = self.records()
        if not 1 <= first_batch <= last_batch <= len(records):
            raise LedgerError(
                f"the ledger has no batches {first_batch}..{last_batch} (it has {len(records)})"
            )
        state = self.state_as_of(first_batch - 1) if start is None else start
        for record in records[first_batch - 1 : last_batch]:
            table = self.read_table(record).replace_schema_metadata(None)
            yield record, state, table
            self._apply_batch(state, table, record.batch_no, check_signatures=False)

    def epoch_record_refs(self, subnet: str, epoch: int) -> dict[str, RecordRef]:
        """The record references ``subnet``'s committed ``epoch`` names (empty if none)."""
        payload = self.epoch_payload(subnet, epoch)
        if payload is None:
            return {}
        refs = check_refs(payload.get(RECORDS_KEY))
        if isinstance(refs, str):
            raise LedgerCorrupted(f"epoch {epoch} of {subnet!r}: {refs}", batch_no=None)
        return refs

    def _load_snapshot(self, records: list[CommitRecord], *, at_most: int | None = None) -> None:
        """Start the state from the newest snapshot that verifies (``snapshots``), if any."""
        writer_key = self._first_batch_writer_key(records)
        state, self.last_snapshot_load = snapshots.load_newest(
            self.root, logged=records, writer_key=writer_key, at_most=at_most
        )
        for line in self.last_snapshot_load.skipped:
            _LOG.warning("ledger %s: %s", self.root, line)
        if state is not None and self.last_snapshot_load.used is not None:
            self._state = state
            self._state_batches = self.last_snapshot_load.used
            self._head_hash = records[self._state_batches - 1].batch_hash

    def snapshot(self, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> SnapshotRecord | None:
        """Write a snapshot of the current state now (None on an empty ledger).

        Idempotent: a snapshot of the head that is already indexed and verifies is returned
        as it is.
        """
        with self._thread_lock, writer_lock(self.lock_path, timeout_s=lock_timeout_s):
            self.recover()
            state = self.state()
            if self._state_batches == 0:
                return None
            for existing in snapshots.index_records(self.root)[0]:
                if existing.batch_no == self._state_batches:
                    check = snapshots.load_newest(
                        self.root,
                        logged=self.records(),
                        writer_key=self._network_writer_key(None),
                        at_most=existing.batch_no,
                    )[1]
                    if check.used == existing.batch_no:
                        return existing
            return self._write_snapshot(state)

    def _write_snapshot(self, state: LedgerState) -> SnapshotRecord:
        required = self._network_writer_key(None)
        signer = None
        if required is not None:
            try:
                signer = load_writer_key(self.writer_key_path)
            except WriterKeyError as exc:
                raise LedgerError(f"a snapshot is signed by the writer key: {exc}") from None
        return snapshots.write_snapshot(
            self.root,
            state,
            batch_no=self._state_batches,
            head_hash=self._head_hash,
            signer=signer,
        )

    @staticmethod
    def _apply_batch(
        state: LedgerState, table: pa.Table, batch_no: int, *, check_signatures: bool
    ) -> None:
        """Replay a committed batch: runs of emission rows paying an open epoch exactly are
        checked and applied column-wise (``ledger.epoch_payment``), the rest row by row."""
        for start, end, emission in _kind_runs(table):
            rows = table.slice(start, end - start)
            if emission and pay_columns(state, rows):
                continue
            for tx in table_to_txs(rows):
                outcome = state.apply(tx, check_signatures=check_signatures)
                if isinstance(outcome, Rejected):
                    raise LedgerCorrupted(
                        f"batch {batch_no}: {tx.tx_id!r} breaks the rules: {outcome.reason}",
                        batch_no=batch_no,
                    )
        state.check_supply()
        state.check_epochs_complete()

    # ---- writing ---------------------------------------------------------------------------

    def commit(
        self,
        txs: Sequence[Tx],
        *,
        allow_system: bool = True,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        cosigners: Sequence[Keypair] = (),
        records: Mapping[str, pa.Table] | None = None,
    ) -> CommitResult:
        """Commit ``txs`` as one batch, all or nothing (see the module docstring).

        ``cosigners`` are validator hotkeys that co-sign the batch hash (an epoch's hosted
        validators); ``verify`` reports the stake share that signed. ``records`` are the epoch
        record tables (``ledger.epoch_records``) of the batch's one epoch entry, whose payload
        must name exactly them; they are written durably before the batch.
        """
        if len(txs) > TXS_PER_BATCH_MAX:
            raise ValueError(f"a batch holds at most {TXS_PER_BATCH_MAX} transactions")
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, writer_lock(self.lock_path, timeout_s=lock_timeout_s):
            self.recover()
            state = self.state()
            try:
                return self._commit_locked(
                    state, txs, allow_system=allow_system, cosigners=cosigners, records=records
                )
            except BaseException:
                # The batch was applied to the live state before it was known to be
                # acceptable; forget that state so the next read replays it from disk.
                self._forget_state()
                raise

    def _forget_state(self) -> None:
        self._writer_key = None
        self._state = LedgerState()
        self._state_batches = 0
        self._head_hash = GENESIS_PARENT

    def _network_writer_key(self, table: pa.Table | None) -> str | None:
        """The writer key every batch must be signed with (from batch 1, or this genesis)."""
        if self._writer_key is None and self._state_batches >= 1:
            self._writer_key = self._first_batch_writer_key(self.records())
        if self._state_batches == 0:
            return None if table is None else network_writer_key(table) or None
        return self._writer_key

    def _signature_metadata(
        self, *, table: pa.Table, b_hash: str, cosigners: Sequence[Keypair]
    ) -> dict[str, str]:
        meta: dict[str, str] = {}
        required = self._network_writer_key(table)
        if required is not None:
            try:
                writer = load_writer_key(self.writer_key_path)
            except WriterKeyError as exc:
                raise LedgerError(
                    f"this network's batches are signed by writer key {required[:16]}…: {exc}"
                ) from None
            if writer.public_hex != required:
                raise LedgerError(
                    f"the writer key at {self.writer_key_path} is not this network's writer key "
                    f"({required[:16]}…)"
                )
            meta[META_WRITER_SIGNATURE] = writer.sign(writer_message(b_hash)).hex()
        if cosigners:
            meta[META_COSIGNATURES] = canonical_json(
                {k.public_hex: k.sign(cosign_message(b_hash)).hex() for k in cosigners}
            )
        return meta

    def _commit_locked(
        self,
        state: LedgerState,
        txs: Sequence[Tx],
        *,
        allow_system: bool,
        cosigners: Sequence[Keypair],
        records: Mapping[str, pa.Table] | None,
    ) -> CommitResult:
        """Apply ``txs`` to ``state`` (in place), then sign, write and record the batch.

        Applying in place keeps a commit O(batch) instead of copying the whole state; any
        failure makes the caller drop the in-memory state (see ``commit``).
        """
        fresh, existed = self._apply_new(state, txs, allow_system=allow_system)
        if not fresh:
            return CommitResult(batch_no=None, batch_hash=None, applied=0, existed=existed)
        state.check_supply()
        state.check_epochs_complete()
        batch_no = self._state_batches + 1
        table = txs_to_table(fresh)
        r_hash = rows_hash(table)
        b_hash = batch_hash(batch_no=batch_no, parent_hash=self._head_hash, rows_sha256=r_hash)
        epochs = tuple(sorted({f"{t.subnet}/{t.epoch}" for t in fresh if t.kind == Kind.EPOCH}))
        signatures = self._signature_metadata(table=table, b_hash=b_hash, cosigners=cosigners)
        self._write_epoch_records(fresh, records or {})
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
                **signatures,
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
        self._rows_since_snapshot += table.num_rows
        if self.snapshot_every and (
            batch_no % self.snapshot_every == 0 or self._rows_since_snapshot >= SNAPSHOT_EVERY_ROWS
        ):
            self._snapshot_after_commit(state)
        return CommitResult(
            batch_no=batch_no, batch_hash=b_hash, applied=len(fresh), existed=existed
        )

    def _apply_new(
        self, state: LedgerState, txs: Sequence[Tx], *, allow_system: bool
    ) -> tuple[list[Tx], int]:
        """Apply ``txs`` in order: the new ones, and how many already existed (see ``commit``).

        A run of emission entries that pays an open epoch exactly is checked column-wise
        (``ledger.epoch_payment``); anything else row by row, which names the first rejection.
        Emission entries of an epoch that already exists are compared with the committed ones.
        """
        fresh: list[Tx] = []
        existed = 0
        committed_epochs: set[tuple[str, int]] = set()
        retried: list[Tx] = []
        emission_flags = np.array([tx.kind in EMISSION_KINDS for tx in txs], dtype=bool)
        for start, end, emission in _runs(emission_flags):
            run = txs[start:end]
            if (
                emission
                and allow_system
                and all((tx.subnet, tx.epoch) not in committed_epochs for tx in run)
                and len(run) >= COLUMN_PAY_MIN_ROWS
                and pay_columns(state, txs_to_table(run))
            ):
                fresh.extend(run)
                continue
            for tx in run:
                if tx.kind in EMISSION_KINDS and (tx.subnet, tx.epoch) in committed_epochs:
                    retried.append(tx)  # compared with the committed epoch below
                    continue
                outcome = state.apply(tx, allow_system=allow_system)
                if isinstance(outcome, Rejected):
                    raise BatchRejected(tx.tx_id, outcome.reason)
                if isinstance(outcome, Exists):
                    existed += 1
                    if tx.kind == Kind.EPOCH:
                        committed_epochs.add((tx.subnet, tx.epoch))
                else:
                    fresh.append(tx)
        return fresh, existed + self._check_retried_emissions(retried)

    def _check_retried_emissions(self, retried: Sequence[Tx]) -> int:
        """Emission entries of an epoch already committed: each must be one it committed."""
        if not retried:
            return 0
        committed: dict[str, bytes] = {}
        for subnet, epoch in sorted({(tx.subnet, tx.epoch) for tx in retried}):
            record = self._record_of_epoch(subnet, epoch)
            if record is not None:
                table = self.read_table(record)
                for tx in _rows_of(table, EMISSION_NAMES, subnet=subnet, epoch=epoch):
                    committed[tx.tx_id] = tx.content_digest()
        for tx in retried:
            if committed.get(tx.tx_id) != tx.content_digest():
                raise BatchRejected(
                    tx.tx_id, f"epoch {tx.epoch} of {tx.subnet!r} was committed without this entry"
                )
        return len(retried)

    def _snapshot_after_commit(self, state: LedgerState) -> None:
        """A periodic snapshot; the batch is already acknowledged, so a failure only warns."""
        self._rows_since_snapshot = 0
        try:
            self._write_snapshot(state)
        except (OSError, LedgerError, ValueError) as exc:
            _LOG.warning(
                "ledger %s: snapshot of batch %s not written: %s",
                self.root,
                self._state_batches,
                exc,
            )

    def _write_epoch_records(self, fresh: Sequence[Tx], tables: Mapping[str, pa.Table]) -> None:
        """Write the epoch records the batch's epoch entries name (before the batch itself)."""
        epochs = [tx for tx in fresh if tx.kind == Kind.EPOCH]
        if tables and len(epochs) != 1:
            raise ValueError("epoch records need exactly one epoch entry in the batch")
        for tx in epochs:
            refs = check_refs(tx.payload_dict().get(RECORDS_KEY))
            if isinstance(refs, str):
                raise ValueError(refs)
            given = record_refs(tables)
            named = {name: ref.to_payload() for name, ref in refs.items()}
            if given != named:
                raise ValueError(
                    f"epoch {tx.epoch} of {tx.subnet!r} names records {sorted(named)} that are "
                    f"not the tables given ({sorted(given)}) or do not hash to them"
                )
            record_files.write_records(self.root, subnet=tx.subnet, epoch=tx.epoch, tables=tables)

    def epoch_payload(self, subnet: str, epoch: int) -> dict[str, object] | None:
        """The payload of ``subnet``'s committed ``epoch`` entry (None if it was not committed)."""
        state = self.state()
        if state.last_epoch.get(subnet) == epoch:
            return state.last_epoch_payload.get(subnet)
        record = self._record_of_epoch(subnet, epoch)
        if record is None:
            return None
        found = _rows_of(self.read_table(record), _EPOCH_NAMES, subnet=subnet, epoch=epoch)
        return found[0].payload_dict() if found else None

    def epoch_records(
        self, subnet: str, epoch: int, names: Sequence[str] | None = None
    ) -> dict[str, pa.Table]:
        """The record tables of ``subnet``'s committed ``epoch``, each checked against its hash.

        ``names`` limits which tables are read; a table the epoch does not name is absent from
        the answer (an epoch committed without records has none). A record file that is missing
        or does not match its hash is ``LedgerCorrupted`` naming the epoch.
        """
        payload = self.epoch_payload(subnet, epoch)
        if payload is None:
            return {}
        refs = check_refs(payload.get(RECORDS_KEY))
        if isinstance(refs, str):
            raise LedgerCorrupted(f"epoch {epoch} of {subnet!r}: {refs}", batch_no=None)
        out: dict[str, pa.Table] = {}
        for name, ref in refs.items():
            if names is not None and name not in names:
                continue
            table = record_files.read_record(self.root, subnet=subnet, epoch=epoch, ref=ref)
            if isinstance(table, str):
                raise LedgerCorrupted(f"epoch {epoch} of {subnet!r}: {table}", batch_no=None)
            out[name] = table
        return out

    # ---- verification ----------------------------------------------------------------------

    def verify(self, *, from_snapshot: bool = False) -> VerifyReport:
        """Re-check every batch (bytes, chain, writer and co-signatures, user signatures in bulk,
        record files) and replay the rules; name the first bad batch, and report finality.

        ``from_snapshot``: replay the rules only after the newest snapshot that verifies
        (everything else is still hashed and every signature checked); without it the rules
        are replayed from genesis.
        """
        try:
            records = self.records()
        except LedgerCorrupted as exc:
            return VerifyReport(False, 0, 0, "", first_bad_batch=exc.batch_no, problem=str(exc))
        state, start = self._verify_start(records, from_snapshot=from_snapshot)
        parent, writer_key, network_id = GENESIS_PARENT, None, ""
        rows = 0
        finality: dict[str, Finality] = {}
        for record in records:
            problem, facts = self._verify_one(record, parent, writer_key)
            if facts is not None:
                writer_key = facts.writer_key
                try:
                    table = facts.table
                    if table is None:
                        table = read_batch(self.batches_dir / record.file)
                    if record.batch_no == 1:
                        network_id = _network_id(table)
                    rows += table.num_rows
                    problem = self._check_batch(
                        state, facts, table, network_id=network_id, replay=record.batch_no > start
                    )
                    if problem is None and record.batch_no > start:
                        problem = _finality(state, facts, finality)
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
                    writer_key=writer_key,
                )
            parent = record.batch_hash
        problem = self._verify_outside(records, writer_key)
        if problem is not None:
            return VerifyReport(
                False,
                len(records),
                rows,
                parent,
                first_bad_batch=len(records) + 1,
                problem=problem,
                writer_key=writer_key,
            )
        return VerifyReport(
            True,
            len(records),
            rows,
            parent,
            supply=state.supply(),
            writer_key=writer_key,
            finality=finality,
            rules_from_batch=start + 1,
        )

    def _verify_start(
        self, records: list[CommitRecord], *, from_snapshot: bool
    ) -> tuple[LedgerState, int]:
        """The state the rules replay from: genesis, or the newest snapshot that verifies."""
        if not from_snapshot or not records:
            return LedgerState(), 0
        writer_key = self._first_batch_writer_key(records)
        state, load = snapshots.load_newest(self.root, logged=records, writer_key=writer_key)
        self.last_snapshot_load = load
        if state is None or load.used is None:
            return LedgerState(), 0
        return state, load.used

    def _check_batch(
        self,
        state: LedgerState,
        facts: BatchFacts,
        table: pa.Table,
        *,
        network_id: str,
        replay: bool,
    ) -> str | None:
        """The user signatures (in bulk), the record files, and (``replay``) the rules."""
        for row, problem in enumerate(signature_problems_table(table, network_id=network_id)):
            if problem is not None:
                tx_id = table.column("tx_id")[row].as_py()
                return f"{tx_id!r} breaks the rules: {problem}"
        if replay:
            self._apply_batch(
                state, table.replace_schema_metadata(None), facts.batch_no, check_signatures=False
            )
        return self._records_problem(table)

    def _verify_one(
        self, record: CommitRecord, parent: str, writer_key: str | None
    ) -> tuple[str | None, BatchFacts | None]:
        if record.parent_hash != parent:
            return "commit record does not chain on its parent", None
        expected = batch_hash(
            batch_no=record.batch_no, parent_hash=parent, rows_sha256=record.rows_hash
        )
        if record.batch_hash != expected:
            return "batch hash does not match its parent and rows", None
        path = self.batches_dir / record.file
        if not path.exists():
            return "file is missing", None
        digest = file_sha256(path)
        if digest != record.file_sha256:
            return "file bytes do not match the commit record", None
        facts = inspect_batch(
            path,
            batch_no=record.batch_no,
            parent_hash=parent,
            writer_key=writer_key,
            known_sha256=digest,
        )
        if isinstance(facts, str):
            return facts, None
        if facts.batch_hash != record.batch_hash:
            return "file and commit record disagree on the batch hash", None
        return None, facts

    def _records_problem(self, table: pa.Table) -> str | None:
        """Why an epoch record named by the batch's epoch entries does not verify (or None)."""
        for tx in table_to_txs(table.filter(pc.equal(table.column("kind"), Kind.EPOCH.value))):
            refs = check_refs(tx.payload_dict().get(RECORDS_KEY))
            if isinstance(refs, str):
                return refs
            for ref in refs.values():
                path = record_files.record_path(
                    self.root, subnet=tx.subnet, epoch=tx.epoch, ref=ref
                )
                problem = record_files.read_problem(path, ref)
                if problem is not None:
                    return f"epoch {tx.epoch} of {tx.subnet!r}: {problem}"
        return None

    def _verify_outside(self, records: list[CommitRecord], writer_key: str | None) -> str | None:
        """Checks beyond the chain: stray batch files, and the home's own writer key."""
        listed = {r.file for r in records}
        extra = sorted(
            p.name
            for p in recovery.numbered_files(self.batches_dir).values()
            if p.name not in listed
        )
        if extra:
            return f"unreferenced batch file(s): {', '.join(extra)}"
        if writer_key is not None and self.writer_key_path.exists():
            try:
                own = load_writer_key(self.writer_key_path).public_hex
            except WriterKeyError as exc:
                return str(exc)
            if own != writer_key:
                return (
                    f"the ledger is signed by writer key {writer_key[:16]}…, not by this home's "
                    f"key ({own[:16]}…): it is not the network this home created"
                )
        return None


def _runs(flags: np.ndarray) -> list[tuple[int, int, bool]]:
    """(start, end, flag) of the maximal runs of equal ``flags``, in order."""
    if len(flags) == 0:
        return []
    edges = [0, *(np.flatnonzero(flags[1:] != flags[:-1]) + 1).tolist(), len(flags)]
    return [(a, b, bool(flags[a])) for a, b in itertools.pairwise(edges)]


def _kind_runs(table: pa.Table) -> list[tuple[int, int, bool]]:
    """(start, end, is_emission) of the runs of emission / other rows of ``table``."""
    return _runs(
        pc.is_in(table.column("kind"), value_set=EMISSION_NAMES).to_numpy(zero_copy_only=False)
    )


def _rows_of(table: pa.Table, kinds: pa.Array, *, subnet: str, epoch: int) -> list[Tx]:
    """The transactions of ``table`` of ``kinds`` for ``subnet``'s ``epoch`` (filtered first)."""
    mask = pc.and_(
        pc.is_in(table.column("kind"), value_set=kinds),
        pc.and_(pc.equal(table.column("subnet"), subnet), pc.equal(table.column("epoch"), epoch)),
    )
    return table_to_txs(table.filter(mask).replace_schema_metadata(None))


def _network_id(table: pa.Table) -> str:
    """The network id named by batch 1's network entry ("" for a ledger without one)."""
    rows = table.filter(pc.equal(table.column("kind"), Kind.NETWORK.value))
    if rows.num_rows == 0:
        return ""
    return NetworkParams.from_payload(json.loads(rows.column("payload")[0].as_py())).network_id


def _finality(state: LedgerState, facts: BatchFacts, out: dict[str, Finality]) -> str | None:
    """Record each epoch's co-signed stake share; a co-signer must be a validator of its subnet."""
    signers = {hotkey for hotkey, _ in facts.cosignatures}
    for label in facts.epochs:
        subnet, _, epoch = label.rpartition("/")
        validators = {
            n.hotkey for n in state.neurons.get(subnet, {}).values() if n.role == "validator"
        }
        strangers = signers - validators if len(facts.epochs) == 1 else set()
        if strangers:
            return f"co-signed by {sorted(strangers)[0][:16]}…, not a validator of {subnet!r}"
        stake = {hotkey: state.hotkey_stake(hotkey) for hotkey in validators}
        out[subnet] = Finality(
            subnet=subnet,
            epoch=int(epoch),
            batch_no=facts.batch_no,
            signed_stake_rao=sum(stake[h] for h in signers & validators),
            validator_stake_rao=sum(stake.values()),
            signers=len(signers & validators),
            validators=len(validators),
        )
    if not facts.epochs and signers:
        return "co-signatures on a batch that holds no epoch"
    return None


def ledger_dir(home: Path) -> Path:
    """Where a taoflow home keeps its ledger."""
    return Path(home) / "ledger"


__all__ = [
    "CommitResult",
    "Finality",
    "Ledger",
    "VerifyReport",
    "default_writer_key_path",
    "ledger_dir",
]
