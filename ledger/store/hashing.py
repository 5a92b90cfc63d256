"""Content hashes of batches: rows hash, batch hash (chained on the parent), file hash.

Invariants: hashes depend only on the logical rows (canonical JSON per row), the batch number and
the parent's hash, so the same transactions committed at the same position always hash the same,
whatever the Arrow library version writes on disk. The file hash covers the exact bytes on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from ledger.schema import canonical_json

GENESIS_PARENT = "0" * 64
HASH_CHUNK_BYTES = 1 << 20


def rows_hash(table: pa.Table) -> str:
    """sha256 over the canonical JSON of every row, in order."""
    digest = hashlib.sha256()
    for row in table.to_pylist():
        row = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}
        digest.update(canonical_json(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def batch_hash(*, batch_no: int, parent_hash: str, rows_sha256: str) -> str:
    """The chained hash of a batch."""
    text = f"taoflow-batch|v1|{batch_no}|{parent_hash}|{rows_sha256}"
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


WRITER_DOMAIN = b"taoflow-batch-writer-v1\x00"
COSIGN_DOMAIN = b"taoflow-batch-cosign-v1\x00"


def writer_message(batch_hash_hex: str) -> bytes:
    """What the network's writer key signs for a batch: its chained hash, domain-separated."""
    return WRITER_DOMAIN + batch_hash_hex.encode()


def cosign_message(batch_hash_hex: str) -> bytes:
    """What a validator's hotkey signs to co-sign an epoch batch (not the writer's domain)."""
    return COSIGN_DOMAIN + batch_hash_hex.encode()
