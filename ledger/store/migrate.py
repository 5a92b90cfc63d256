"""``taoflow ledger migrate``: convert a format-1 ledger to format 2 and prove nothing changed.

Format 1 hashed each row as canonical JSON and kept an epoch's consensus state (bonds, permits,
outputs, scores, digests) as JSON inside the epoch entry's payload. Format 2 hashes rows
column-wise and keeps that state in columnar epoch records (``ledger.epoch_records``).

Procedure (under the old ledger's writer lock; nothing is deleted):

1. Check the old ledger completely: each file's bytes against its log line, its rows against the
   format-1 rows hash, the hash chain, and the network writer key's signature on every batch.
2. Replay it with the rules (every signature checked) while writing the same transactions, batch
   for batch, into a new format-2 ledger beside it. Every entry keeps its id and content, except
   an epoch entry whose payload moves its consensus state into record tables: bonds, permits,
   the output vectors, mean scores, errors, digests, the stake each uid had and the rao it was
   paid. (Format 1 kept no weights and no per-validator scores: those records are empty; the
   emission-share columns it did not keep are NaN.) Batches are signed again by the writer key;
   validators' co-signatures covered the old batch hashes and are not carried over.
3. Prove the new ledger's state equals the old replay: balances, stakes, locks, issuance, burns,
   nonces, takes, subnets, neurons, submissions, weights, proposals, votes, blocks and every
   transaction id. Only then swap directories: the old ledger is renamed to
   ``ledger.format1-<time>`` beside the new one (kept, never deleted).

Running it on a format-2 ledger changes nothing. A crash before the swap leaves the old ledger
in place (the half-built new one is in ``ledger.migrating-*`` and is rebuilt by the next run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from taoflow.ledger.epoch_records import RECORDS_KEY, UID_FLOAT_COLUMNS, conform, record_refs
from taoflow.ledger.errors import LedgerCorrupted, LedgerError
from taoflow.ledger.keys import verify_signature
from taoflow.ledger.schema import EMISSION_KINDS, Kind, Tx, canonical_json, table_to_txs
from taoflow.ledger.state import Applied, LedgerState
from taoflow.ledger.store import commit_log
from taoflow.ledger.store.batch_check import META_WRITER_SIGNATURE, network_writer_key
from taoflow.ledger.store.hashing import GENESIS_PARENT, batch_hash, file_sha256, writer_message
from taoflow.ledger.store.ledger import Ledger
from taoflow.ledger.store.lock import writer_lock
from taoflow.ledger.store.segments import batch_file_name, batch_format, fsync_dir, read_batch

FROM_FORMAT: Final = 1
TO_FORMAT: Final = 2
LOCK_TIMEOUT_S: Final = 30.0
V1_EPOCH_KEYS: Final = ("bonds", "permits", "outputs", "active")
_COMPARED: Final = tuple(
    f.name
    for f in fields(LedgerState)
    if f.name not in {"last_epoch_payload", "tx_index", "open_epochs", "_plan_memo"}
)


@dataclass(frozen=True)
class MigrationReport:
    """What ``migrate`` did."""

    migrated: bool
    batches: int
    rows: int
    old_dir: Path | None
    head_hash: str
    compared: tuple[str, ...] = _COMPARED


def legacy_rows_hash(table: pa.Table) -> str:
    """The format-1 rows hash: sha256 over the canonical JSON of every row, in order."""
    digest = hashlib.sha256()
    for row in table.to_pylist():
        row = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}
        digest.update(canonical_json(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _old_batches(root: Path) -> list[tuple[int, pa.Table]]:
    """Every batch of the old ledger, after checking bytes, rows hash, chain and signature."""
    records = commit_log.scan(root / "COMMITS").check()
    parent, writer_key = GENESIS_PARENT, None
    out = []
    for record in records:
        path = root / "batches" / record.file
        where = f"format-1 batch {record.batch_no} ({record.file})"
        if not path.exists() or file_sha256(path) != record.file_sha256:
            raise LedgerCorrupted(f"{where} does not match its commit record", batch_no=None)
        table = read_batch(path, version=FROM_FORMAT)
        rows = table.replace_schema_metadata(None)
        expected = batch_hash(
            batch_no=record.batch_no, parent_hash=parent, rows_sha256=legacy_rows_hash(rows)
        )
        if record.parent_hash != parent or record.batch_hash != expected:
            raise LedgerCorrupted(f"{where} does not chain or hash", batch_no=None)
        if record.batch_no == 1:
            writer_key = network_writer_key(rows) or None
        if writer_key is not None:
            meta = table.schema.metadata or {}
            signature = bytes.fromhex(meta.get(META_WRITER_SIGNATURE.encode(), b"").decode())
            if not verify_signature(
                public_hex=writer_key, message=writer_message(expected), signature=signature
            ):
                raise LedgerCorrupted(f"{where} is not signed by the writer key", batch_no=None)
        out.append((record.batch_no, rows))
        parent = record.batch_hash
    return out


def _column(values: object, n: int, *, fill: float = math.nan) -> list[float]:
    if isinstance(values, list) and len(values) == n:
        return [float(v) for v in values]
    return [fill] * n


def _uids_table(
    payload: Mapping[str, Any], state: LedgerState, paid: Mapping[int, int]
) -> pa.Table:
    hotkeys = list(payload["shares"]["hotkeys"])
    n = len(hotkeys)
    outputs = payload.get("outputs", {})
    evaluation = payload.get("evaluation", {})
    scores, errors = evaluation.get("scores", {}), evaluation.get("errors", {})
    digests = evaluation.get("digests", {})
    columns: dict[str, list[Any]] = {
        "uid": list(range(n)),
        "hotkey": hotkeys,
        "stake_rao": [state.hotkey_stake(h) for h in hotkeys],
        "permit": [bool(p) for p in payload.get("permits", [False] * n)][:n],
        "active": [bool(a) for a in payload.get("active", [False] * n)][:n],
    }
    for name in UID_FLOAT_COLUMNS:
        columns[name] = _column(outputs.get(name), n)
    columns["emission_rao"] = [paid.get(uid, 0) for uid in range(n)]
    columns["score"] = [float(scores.get(str(uid), math.nan)) for uid in range(n)]
    columns["error"] = [str(errors.get(str(uid), "")) for uid in range(n)]
    columns["artifact_digest"] = [str(digests.get(str(uid), "")) for uid in range(n)]
    return conform("uids", pa.table(columns))


def _convert_epoch(
    epoch: Tx, batch: list[Tx], state: LedgerState
) -> tuple[Tx, dict[str, pa.Table]]:
    """A format-1 epoch entry as its format-2 entry and record tables (``state``: before it)."""
    payload = epoch.payload_dict()
    paid: dict[int, int] = {}
    for tx in batch:
        if tx.kind in EMISSION_KINDS and tx.kind != Kind.EMISSION_OWNER and tx.epoch == epoch.epoch:
            paid[tx.uid] = paid.get(tx.uid, 0) + tx.amount_rao
    bonds = payload.get("bonds", [])
    tables = {
        "weights": conform("weights", pa.table({"validator": [], "miner": [], "weight_u16": []})),
        "scores": conform("scores", pa.table({"validator": [], "miner": [], "score": []})),
        "bonds": conform(
            "bonds",
            pa.table(
                {
                    "validator": [int(b[0]) for b in bonds],
                    "miner": [int(b[1]) for b in bonds],
                    "bond_u16": [int(b[2]) for b in bonds],
                }
            ),
        ),
        "uids": _uids_table(payload, state, paid),
    }
    evaluation = payload.get("evaluation", {})
    small = {k: v for k, v in payload.items() if k not in {*V1_EPOCH_KEYS, "evaluation"}}
    small["evaluation"] = {
        "errors": evaluation.get("errors", {}),
        "sample_size": evaluation.get("sample_size", 0),
    }
    small[RECORDS_KEY] = record_refs(tables)
    converted = dataclasses.replace(epoch, payload=canonical_json(small))
    return converted, tables


def _rebuild(old: list[tuple[int, pa.Table]], new: Ledger) -> tuple[LedgerState, int]:
    """Replay the old batches and commit their format-2 form; the old replay's final state."""
    state, rows = LedgerState(), 0
    for batch_no, table in old:
        txs = table_to_txs(table)
        out: list[Tx] = []
        records: dict[str, pa.Table] = {}
        for tx in txs:
            if tx.kind == Kind.EPOCH and any(k in tx.payload_dict() for k in V1_EPOCH_KEYS):
                converted, records = _convert_epoch(tx, txs, state)
                out.append(converted)
            else:
                out.append(tx)
            outcome = state.apply(tx)
            if not isinstance(outcome, Applied):
                raise LedgerCorrupted(
                    f"format-1 batch {batch_no}: {tx.tx_id!r} does not replay: {outcome}",
                    batch_no=None,
                )
        state.check_supply()
        result = new.commit(out, records=records or None)
        if result.batch_no != batch_no:
            raise LedgerError(f"batch {batch_no} did not migrate to the same position")
        rows += len(out)
    return state, rows


def _prove_equal(old: LedgerState, new: LedgerState, ids: list[str]) -> None:
    for name in _COMPARED:
        if getattr(old, name) != getattr(new, name):
            raise LedgerError(f"migration refused: the migrated {name} differs from the old replay")
    missing = [tx_id for tx_id in ids if new.tx_index.get(tx_id) is None]
    if missing:
        raise LedgerError(f"migration refused: transaction {missing[0]!r} is missing")


def migrate(root: Path, *, writer_key_path: Path) -> MigrationReport:
    """Convert the format-1 ledger at ``root`` (see the module docstring)."""
    root = Path(root)
    first = root / "batches" / batch_file_name(1)
    if not first.exists() or batch_format(first) == TO_FORMAT:
        return MigrationReport(False, 0, 0, None, "")
    if batch_format(first) != FROM_FORMAT:
        raise LedgerError(f"{first.name} declares an unknown ledger format")
    with writer_lock(root / "LOCK", timeout_s=LOCK_TIMEOUT_S):
        old = _old_batches(root)
        building = root.parent / f"{root.name}.migrating-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        new = Ledger.open(building, writer_key_path=writer_key_path, snapshot_every=0)
        old_state, rows = _rebuild(old, new)
        ids = [
            tx_id
            for _, table in old
            for tx_id, kind in zip(
                table.column("tx_id").to_pylist(), table.column("kind").to_pylist(), strict=True
            )
            if kind not in EMISSION_KINDS
        ]
        _prove_equal(old_state, Ledger(building, snapshot_every=0).state(), ids)
        kept = root.parent / f"{root.name}.format1-{time.strftime('%Y%m%dT%H%M%S')}"
        os.rename(root, kept)
        os.rename(building, root)
        fsync_dir(root.parent)
    head = Ledger(root).head_hash()
    return MigrationReport(True, len(old), rows, kept, head)


__all__ = ["MigrationReport", "legacy_rows_hash", "migrate"]
