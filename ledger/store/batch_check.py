"""Self-verification of one batch file: what it claims, and whether its bytes back the claim.

A batch file is *self-consistent* when it reads as an Arrow IPC file of the ledger schema, its
metadata names the expected batch number and parent hash, its rows hash to the recorded rows
hash, the batch hash is the chained hash of (number, parent, rows hash), and — when the network
names a writer key — the writer signature over the batch hash verifies under that key. Only
such a file may be adopted by recovery; co-signatures are parsed and their signatures checked
here, their signers' standing (registered validators, stake) is checked by ``Ledger.verify``.

Invariants: ``inspect_batch`` never raises for bad input; it returns the facts or the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.keys import is_account_id, verify_signature
from taoflow.ledger.schema import Kind
from taoflow.ledger.store.hashing import (
    batch_hash,
    cosign_message,
    file_sha256,
    rows_hash,
    writer_message,
)
from taoflow.ledger.store.segments import read_batch

META_WRITER_SIGNATURE = "taoflow.writer_signature"
META_COSIGNATURES = "taoflow.cosignatures"
NETWORK_KIND = "network"
"""The kind of the entry that names the network and its writer key (first entry of batch 1)."""
COSIGNATURES_MAX = 4096
"""Upper bound on co-signatures per batch (one per validator uid)."""


@dataclass(frozen=True)
class BatchFacts:
    """A self-consistent batch file, as recovery records it in the commit log."""

    batch_no: int
    parent_hash: str
    rows_hash: str
    batch_hash: str
    file_sha256: str
    rows: int
    epochs: tuple[str, ...]
    writer_key: str | None
    """The writer key this batch was checked against (named by the network entry)."""
    cosignatures: tuple[tuple[str, str], ...]
    """(validator hotkey, signature hex) pairs whose signatures verify."""
    table: pa.Table | None = field(default=None, repr=False, compare=False)
    """The rows that were checked (memory-mapped), so a caller need not read them again."""


def network_writer_key(table: pa.Table) -> str | None:
    """The writer key named by a ``network`` entry of ``table`` (None if it has none)."""
    rows = table.filter(pc.equal(table.column("kind"), NETWORK_KIND))
    if rows.num_rows == 0:
        return None
    try:
        payload = json.loads(rows.column("payload")[0].as_py())
        key = payload.get("writer_key") if isinstance(payload, dict) else None
    except ValueError:
        return None
    return key if isinstance(key, str) and is_account_id(key) else ""


def epochs_of(table: pa.Table) -> tuple[str, ...]:
    epochs = table.filter(pc.equal(table.column("kind"), Kind.EPOCH.value))
    pairs = zip(
        epochs.column("subnet").to_pylist(), epochs.column("epoch").to_pylist(), strict=True
    )
    return tuple(sorted({f"{subnet}/{epoch}" for subnet, epoch in pairs}))


def _meta(table: pa.Table, key: str) -> str:
    return (table.schema.metadata or {}).get(key.encode(), b"").decode(errors="replace")


def _cosignatures(table: pa.Table, b_hash: str) -> tuple[tuple[str, str], ...] | str:
    text = _meta(table, META_COSIGNATURES)
    if not text:
        return ()
    try:
        pairs = json.loads(text)
    except ValueError:
        return "co-signatures are not JSON"
    if not isinstance(pairs, dict) or len(pairs) > COSIGNATURES_MAX:
        return "co-signatures are malformed"
    for hotkey, signature in pairs.items():
        try:
            raw = bytes.fromhex(signature) if isinstance(signature, str) else b""
        except ValueError:
            raw = b""
        if not verify_signature(public_hex=hotkey, message=cosign_message(b_hash), signature=raw):
            return f"co-signature of validator {str(hotkey)[:16]}… does not verify"
    return tuple(sorted(pairs.items()))


def inspect_batch(
    path: Path,
    *,
    batch_no: int,
    parent_hash: str,
    writer_key: str | None,
    known_sha256: str | None = None,
) -> BatchFacts | str:
    """The facts of the batch file at ``path``, or why it is not a valid batch ``batch_no``.

    ``writer_key`` is the network's writer key (None: no network entry seen yet; for batch 1 the
    key is read from the batch's own network entry). ``known_sha256``: the file's hash when the
    caller has just computed it (it is not computed twice).
    """
    try:
        table = read_batch(path)
        if _meta(table, "taoflow.batch_no") != str(batch_no):
            return f"file claims batch {_meta(table, 'taoflow.batch_no')!r}, not {batch_no}"
        if _meta(table, "taoflow.parent_hash") != parent_hash:
            return "does not chain on its parent"
        r_hash = rows_hash(table.replace_schema_metadata(None))
        if r_hash != _meta(table, "taoflow.rows_hash"):
            return "rows do not match their recorded hash"
        b_hash = batch_hash(batch_no=batch_no, parent_hash=parent_hash, rows_sha256=r_hash)
        if b_hash != _meta(table, "taoflow.batch_hash"):
            return "batch hash does not match its parent and rows"
        if batch_no == 1 and writer_key is None:
            writer_key = network_writer_key(table)
        if writer_key == "":
            return "the network entry names no valid writer key"
        if writer_key is not None:
            problem = _writer_problem(table, b_hash, writer_key)
            if problem is not None:
                return problem
        cosigs = _cosignatures(table, b_hash)
        if isinstance(cosigs, str):
            return cosigs
        return BatchFacts(
            batch_no=batch_no,
            parent_hash=parent_hash,
            rows_hash=r_hash,
            batch_hash=b_hash,
            file_sha256=known_sha256 or file_sha256(path),
            rows=table.num_rows,
            epochs=epochs_of(table),
            writer_key=writer_key,
            cosignatures=cosigs,
            table=table,
        )
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _writer_problem(table: pa.Table, b_hash: str, writer_key: str) -> str | None:
    text = _meta(table, META_WRITER_SIGNATURE)
    if not text:
        return "is not signed by the network's writer key"
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return "writer signature is not hex"
    if not verify_signature(public_hex=writer_key, message=writer_message(b_hash), signature=raw):
        return "writer signature does not verify under the network's writer key"
    return None
