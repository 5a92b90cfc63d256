"""Content hashes of batches: rows hash, batch hash (chained on the parent), file hash.

Invariants: hashes depend only on the logical rows, the batch number and the parent's hash, so
the same transactions committed at the same position always hash the same, whatever the Arrow
library version writes on disk (compression, chunking, buffer layout). The file hash covers the
exact bytes on disk.

The rows hash is ``ledger.table_hash.table_sha256`` of the rows (format 2: column-wise from the
Arrow buffers, no Python object per row).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from taoflow.ledger.table_hash import table_sha256

GENESIS_PARENT = "0" * 64
HASH_CHUNK_BYTES = 1 << 20
ROWS_DOMAIN = b"taoflow-rows-v2\x00"


def rows_hash(table: pa.Table) -> str:
    """The rows hash of a batch: ``table_sha256`` of its rows (schema metadata ignored)."""
    return table_sha256(table.replace_schema_metadata(None), domain=ROWS_DOMAIN)


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
