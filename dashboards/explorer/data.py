"""The explorer's read model: the ledger's rows and every epoch's ``uids`` record in DuckDB.

Invariants:
- Read-only. The ledger is opened with ``Ledger(root)`` (no recovery, no lock, no snapshot
  written) and only read through its read API (``records``, ``read_table``, ``state``,
  ``records.read_record``); nothing under the home is ever written.
- Every number shown is a ledger row or a committed record: ``tx`` holds every committed
  transaction (with ``batch_no``/``row_no``), ``uids_history`` every committed epoch's ``uids``
  record (hash-checked) tagged with its subnet, epoch and batch. Headline figures (supply,
  metagraph, submissions) come from the ledger's own state, the same functions the CLI uses.
- Catching up is incremental: ``refresh`` reads only batches committed since the last refresh
  (at most once per ``REFRESH_INTERVAL_S``); a log that no longer extends the batches already
  read (a repaired or replaced ledger) is read again from genesis.
- Amounts stay integers (BIGINT/HUGEINT in SQL, ``int`` in Python).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.epoch_records import RECORDS_KEY, check_refs
from taoflow.ledger.schema import SYSTEM_KINDS, Kind
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.commit_log import CommitRecord
from taoflow.ledger.store.records import read_record

REFRESH_INTERVAL_S: Final = 1.0
"""At most one look at the commit log per this many seconds (requests in between reuse it)."""
LOAD_BATCHES_PER_STEP: Final = 256
"""Batches read into one Arrow table before it is appended to DuckDB (bounds memory)."""
GENESIS_HASH: Final = "0" * 64
VERIFY_INTERVAL_S: Final = 600.0
"""At most one verification starts per this many seconds (when the head moved): on a
5,000-epoch ledger one takes a core for one to two minutes (every signature is checked)."""
VERIFY_TIMEOUT_S: Final = 3_600.0
VERIFY_NICE: Final = 10
READ_THREADS: Final = 4
"""Threads that read and hash-check batch files and records while catching up (I/O, hashing
and Arrow decoding release the GIL)."""

TABLES: Final = (
    "tx",
    "uids_history",
    "batch_supply",
    "epoch_emission",
    "hotkey_totals",
    "registrations",
)
UIDS_COLUMNS: Final = (
    "uid",
    "hotkey",
    "stake_rao",
    "permit",
    "active",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "emission_rao",
    "score",
    "error",
    "artifact_digest",
)
TX_COLUMNS: Final = (
    "tx_id",
    "kind",
    "subnet",
    "epoch",
    "coldkey",
    "hotkey",
    "dest",
    "uid",
    "amount_rao",
    "nonce",
    "payload",
)


_EMISSIONS = (
    f"'{Kind.EMISSION_OWNER}', '{Kind.EMISSION_INCENTIVE}', '{Kind.EMISSION_DIVIDEND}', "
    f"'{Kind.EMISSION_DELEGATOR}'"
)
_SYSTEM = ", ".join(f"'{k}'" for k in sorted(SYSTEM_KINDS))

BATCH_SUPPLY_SQL: Final = f"""
INSERT INTO batch_supply
SELECT batch_no,
    -- issued: genesis mints and every emission
    SUM(amount_rao) FILTER (WHERE kind IN ('{Kind.GENESIS_MINT}', {_EMISSIONS})),
    -- burned by registrations and by proposals that missed quorum (each user transaction
    -- also burns the network's fee)
    SUM(amount_rao) FILTER (WHERE kind = '{Kind.REGISTER}' OR (kind = '{Kind.PROPOSAL_TALLY}'
        AND json_extract_string(payload, '$.deposit') = 'burned')),
    COUNT(*) FILTER (WHERE kind NOT IN ({_SYSTEM})),
    -- locked: subnet lock costs and proposal deposits, less deposits released by tallies
    SUM(CASE WHEN kind IN ('{Kind.SUBNET_CREATE}', '{Kind.PROPOSAL}') THEN amount_rao
             WHEN kind = '{Kind.PROPOSAL_TALLY}' THEN -amount_rao ELSE 0 END),
    -- staked: stakes and emissions to stake, less unstakes
    SUM(CASE WHEN kind IN ('{Kind.ADD_STAKE}', '{Kind.EMISSION_INCENTIVE}',
                           '{Kind.EMISSION_DIVIDEND}', '{Kind.EMISSION_DELEGATOR}')
             THEN amount_rao WHEN kind = '{Kind.REMOVE_STAKE}' THEN -amount_rao ELSE 0 END)
FROM new_rows GROUP BY batch_no
"""

EPOCH_EMISSION_SQL: Final = f"""
INSERT INTO epoch_emission
SELECT subnet, epoch,
    SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_OWNER}'),
    SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_INCENTIVE}'),
    SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_DIVIDEND}'),
    SUM(amount_rao) FILTER (WHERE kind = '{Kind.EMISSION_DELEGATOR}')
FROM new_rows WHERE kind IN ({_EMISSIONS}) GROUP BY subnet, epoch
"""

HOTKEY_TOTALS_SQL: Final = """
CREATE OR REPLACE TABLE hotkey_totals AS
SELECT subnet, hotkey, SUM(incentive) AS incentive, SUM(dividends) AS dividends,
       SUM(emission_rao)::HUGEINT AS emission_rao
FROM (SELECT * FROM hotkey_totals
      UNION ALL
      SELECT subnet, hotkey, SUM(incentive), SUM(dividends), SUM(emission_rao)
      FROM new_uids GROUP BY subnet, hotkey)
GROUP BY subnet, hotkey
"""


class NoLedger(RuntimeError):
    """The home holds no ledger (one line, naming the command that creates one)."""


@dataclass(frozen=True)
class Head:
    """What the read model has caught up with."""

    batches: int
    head_hash: str
    epochs: int
    refreshed_at_s: float


@dataclass(frozen=True)
class LoadProblem:
    """An epoch whose ``uids`` record could not be read (shown on the network page)."""

    subnet: str
    epoch: int
    problem: str


def _with_position(table: pa.Table, batch_no: int) -> pa.Table:
    rows = table.replace_schema_metadata(None).select(list(TX_COLUMNS))
    rows = rows.append_column("batch_no", pa.array([batch_no] * rows.num_rows, pa.int64()))
    return rows.append_column("row_no", pa.array(range(rows.num_rows), pa.int64()))


def _without_epoch_payloads(rows: pa.Table) -> pa.Table:
    """``rows`` with the epoch entries' payloads left out (tens of KB each: the shares and
    record hashes; ``epoch_payload`` reads one from its batch when a page shows it)."""
    index = rows.schema.get_field_index("payload")
    is_epoch = pc.equal(rows.column("kind"), str(Kind.EPOCH))
    empty = pa.nulls(rows.num_rows, pa.string())
    return rows.set_column(index, "payload", pc.if_else(is_epoch, empty, rows.column("payload")))


class ExplorerData:
    """The DuckDB read model of one home's ledger (thread-safe; see the module invariants)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.root = self.home / "ledger"
        if not (self.root / "COMMITS").exists():
            raise NoLedger(f"no ledger at {self.root}: run `taoflow demo` first")
        self.ledger = Ledger(self.root)
        self.db = duckdb.connect(":memory:")
        self._write_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="explorer")
        self._batches = 0
        self._head_hash = GENESIS_HASH
        self._epochs = 0
        self._checked_at_s = 0.0
        self.problems: list[LoadProblem] = []
        self._records: list[CommitRecord] = []
        self._epoch_batches: dict[tuple[str, int], int] = {}
        self._create_tables()
        self.refresh(force=True)

    def _create_tables(self) -> None:
        for table in TABLES:
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.execute(
            "CREATE TABLE tx (tx_id VARCHAR, kind VARCHAR, subnet VARCHAR, epoch BIGINT, "
            "coldkey VARCHAR, hotkey VARCHAR, dest VARCHAR, uid BIGINT, amount_rao BIGINT, "
            "nonce BIGINT, payload VARCHAR, batch_no BIGINT, row_no BIGINT)"
        )
        self.db.execute(
            "CREATE TABLE uids_history (subnet VARCHAR, epoch BIGINT, batch_no BIGINT, "
            "uid INTEGER, hotkey VARCHAR, stake_rao BIGINT, permit BOOLEAN, active BOOLEAN, "
            "validator_trust DOUBLE, consensus DOUBLE, incentive DOUBLE, dividends DOUBLE, "
            "emission_rao BIGINT, score DOUBLE, error VARCHAR, artifact_digest VARCHAR)"
        )
        # per-batch and per-epoch sums, kept as batches arrive (pages read these, not all rows)
        self.db.execute(
            "CREATE TABLE batch_supply (batch_no BIGINT, issued_rao HUGEINT, "
            "registered_rao HUGEINT, user_txs BIGINT, locked_rao HUGEINT, staked_rao HUGEINT)"
        )
        self.db.execute(
            "CREATE TABLE epoch_emission (subnet VARCHAR, epoch BIGINT, owner_rao HUGEINT, "
            "miners_rao HUGEINT, validators_rao HUGEINT, delegators_rao HUGEINT)"
        )
        self.db.execute(
            "CREATE TABLE hotkey_totals (subnet VARCHAR, hotkey VARCHAR, incentive DOUBLE, "
            "dividends DOUBLE, emission_rao HUGEINT)"
        )
        self.db.execute(
            "CREATE TABLE registrations (subnet VARCHAR, batch_no BIGINT, row_no BIGINT, "
            "hotkey VARCHAR, burned_rao BIGINT)"
        )

    # ---- catching up -------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> Head:
        """Read the batches committed since the last refresh (see the module invariants)."""
        now_s = time.monotonic()
        if not force and now_s - self._checked_at_s < REFRESH_INTERVAL_S:
            return self.head()
        with self._write_lock:
            if not force and now_s - self._checked_at_s < REFRESH_INTERVAL_S:
                return self.head()
            records = self.ledger.records()
            known = self._batches
            if known and (len(records) < known or records[known - 1].batch_hash != self._head_hash):
                self._create_tables()
                self._batches, self._epochs, self.problems = 0, 0, []
                self._records, self._epoch_batches = [], {}
            new = records[self._batches :]
            for start in range(0, len(new), LOAD_BATCHES_PER_STEP):
                self._append(new[start : start + LOAD_BATCHES_PER_STEP])
            if new:
                self._batches = new[-1].batch_no
                self._head_hash = new[-1].batch_hash
            self._checked_at_s = time.monotonic()
            return self.head()

    def _append(self, records: Sequence[CommitRecord]) -> None:
        tables = list(
            self._pool.map(lambda r: _with_position(self.ledger.read_table(r), r.batch_no), records)
        )
        rows = pa.concat_tables(tables)
        uids = self._uids_of(rows)
        rows = _without_epoch_payloads(rows)
        cursor = self.db.cursor()
        cursor.register("new_rows", rows)
        cursor.execute("INSERT INTO tx SELECT * FROM new_rows")
        cursor.execute(BATCH_SUPPLY_SQL)
        cursor.execute(EPOCH_EMISSION_SQL)
        cursor.execute(
            "INSERT INTO registrations SELECT subnet, batch_no, row_no, hotkey, amount_rao "
            f"FROM new_rows WHERE kind = '{Kind.REGISTER}'"
        )
        cursor.unregister("new_rows")
        if uids is not None:
            cursor.register("new_uids", uids)
            cursor.execute("INSERT INTO uids_history SELECT * FROM new_uids")
            cursor.execute(HOTKEY_TOTALS_SQL)
            cursor.unregister("new_uids")
        for record in records:
            for label in record.epochs:
                subnet, _, epoch = label.rpartition("/")
                self._epoch_batches[(subnet, int(epoch))] = record.batch_no
        self._records.extend(records)

    def _uids_of(self, rows: pa.Table) -> pa.Table | None:
        """The ``uids`` records of the epoch entries among ``rows``, tagged with their epoch."""
        import json

        epochs = rows.filter(pc.equal(rows.column("kind"), str(Kind.EPOCH)))
        wanted = []
        for subnet, epoch, payload, batch_no in zip(
            epochs.column("subnet").to_pylist(),
            epochs.column("epoch").to_pylist(),
            epochs.column("payload").to_pylist(),
            epochs.column("batch_no").to_pylist(),
            strict=True,
        ):
            self._epochs += 1
            refs = check_refs(json.loads(payload).get(RECORDS_KEY))
            ref = None if isinstance(refs, str) else refs.get("uids")
            if ref is not None:  # an epoch committed without records (older ledgers): nothing
                wanted.append((subnet, epoch, batch_no, ref))
        read = self._pool.map(
            lambda w: read_record(self.root, subnet=w[0], epoch=w[1], ref=w[3]), wanted
        )
        tables = []
        for (subnet, epoch, batch_no, _), table in zip(wanted, read, strict=True):
            if isinstance(table, str):
                self.problems.append(LoadProblem(subnet=subnet, epoch=epoch, problem=table))
                continue
            table = table.select(list(UIDS_COLUMNS))
            n = table.num_rows
            tagged = pa.table(
                {
                    "subnet": pa.array([subnet] * n, pa.string()),
                    "epoch": pa.array([epoch] * n, pa.int64()),
                    "batch_no": pa.array([batch_no] * n, pa.int64()),
                }
            )
            for name in UIDS_COLUMNS:
                tagged = tagged.append_column(name, table.column(name))
            tables.append(tagged)
        return pa.concat_tables(tables) if tables else None

    # ---- reading -----------------------------------------------------------------------------

    def head(self) -> Head:
        return Head(
            batches=self._batches,
            head_hash=self._head_hash,
            epochs=self._epochs,
            refreshed_at_s=self._checked_at_s,
        )

    def state(self) -> LedgerState:
        """The ledger's current state (the ledger's own incremental fold)."""
        return self.ledger.state()

    def query(self, sql: str, params: dict[str, object] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts (a fresh cursor per call: safe across request threads)."""
        cursor = self.db.cursor()
        try:
            result = cursor.execute(sql, params or {})
            names = [column[0] for column in result.description or []]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cursor.close()

    def columns(self, sql: str, params: dict[str, object] | None = None) -> dict[str, list[Any]]:
        """Columns of ``sql`` (name → values), for charts."""
        cursor = self.db.cursor()
        try:
            table = cursor.sql(sql, params=params or None).to_arrow_table()
            return {name: table.column(name).to_pylist() for name in table.column_names}
        finally:
            cursor.close()

    def records(self) -> list[CommitRecord]:
        """The commit log's records of the batches read (a copy)."""
        return list(self._records)

    def stored_payload(self, *, batch_no: int, row_no: int) -> str:
        """The payload of one committed row, read from its batch file (checked against the log)."""
        table = self.ledger.read_table(self.record(batch_no))
        return str(table.column("payload")[row_no].as_py() or "")

    def record(self, batch_no: int) -> CommitRecord:
        return self._records[batch_no - 1]

    def batch_of_epoch(self, subnet: str, epoch: int) -> int | None:
        """The batch that committed ``subnet``'s ``epoch`` (None: not among the batches read)."""
        return self._epoch_batches.get((subnet, epoch))


@dataclass(frozen=True)
class VerifyResult:
    """The last full verification (``Ledger.verify``: every hash, signature and rule)."""

    state: str  # "verifying" | "ok" | "failed" | "error"
    batches: int
    problem: str | None = None
    first_bad_batch: int | None = None
    rules_from_batch: int = 1
    """The first batch whose rules were replayed (1: from genesis; later: after the newest
    verified snapshot, hashes and signatures still checked for every batch)."""


class Verifier:
    """Re-verifies the ledger in a separate, lower-priority process whenever the head moved.

    The check is ``taoflow ledger verify --json`` itself (every hash and signature, the rules
    replayed from genesis; once that passed, later checks replay the rules from the newest
    verified snapshot: ``--from-snapshot``), run as a child process so that it never competes
    with page requests for this process's interpreter; at most one runs at a time, at most one
    starts per ``VERIFY_INTERVAL_S``, each bounded by ``VERIFY_TIMEOUT_S``. The page shows the
    last finished result and whether a newer one runs.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.result = VerifyResult(state="verifying", batches=0)
        self._running_for: str | None = None
        self._done_for: str | None = None
        self._started_at_s = -VERIFY_INTERVAL_S
        self._full_pass = False
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def check(self, head: Head) -> VerifyResult:
        """The last result; starts a verification of ``head`` if none covered it yet."""
        now_s = time.monotonic()
        with self._lock:
            start = (
                self._running_for is None
                and head.head_hash != self._done_for
                and now_s - self._started_at_s >= VERIFY_INTERVAL_S
            )
            if start:
                self._running_for = head.head_hash
                self._started_at_s = now_s
                self.finished.clear()
        if start:
            threading.Thread(target=self._run, args=(head,), daemon=True).start()
        return self.result

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "taoflow.cli", "ledger", "verify"]
        command += ["--home", str(self.home), "--json"]
        if self._full_pass:
            command.append("--from-snapshot")
        return command

    def _run(self, head: Head) -> None:
        try:
            done = subprocess.run(
                self._command(),
                capture_output=True,
                timeout=VERIFY_TIMEOUT_S,
                preexec_fn=lambda: os.nice(VERIFY_NICE),
                check=False,
            )
            result = _verify_result(done.stdout, done.stderr, batches=head.batches)
        except (OSError, subprocess.TimeoutExpired) as exc:
            result = VerifyResult(state="error", batches=head.batches, problem=str(exc)[:300])
        with self._lock:
            self.result = result
            self._done_for = head.head_hash
            self._running_for = None
            self._full_pass = self._full_pass or (
                result.state == "ok" and result.rules_from_batch <= 1
            )
        self.finished.set()

    @property
    def running(self) -> bool:
        return self._running_for is not None


def _verify_result(stdout: bytes, stderr: bytes, *, batches: int) -> VerifyResult:
    """``ledger verify --json``'s answer (or its one-line error) as a ``VerifyResult``."""
    import json

    try:
        body = json.loads(stdout)
    except ValueError:
        lines = stderr.decode(errors="replace").strip().splitlines()
        problem = lines[-1] if lines else "ledger verify gave no answer"
        return VerifyResult(state="error", batches=batches, problem=problem[:300])
    return VerifyResult(
        state="ok" if body.get("ok") else "failed",
        batches=int(body.get("batches", 0)),
        problem=body.get("problem"),
        first_bad_batch=body.get("first_bad_batch"),
        rules_from_batch=int(body.get("rules_from_batch", 1)),
    )
