"""The idempotency index: every transaction id the ledger applied, with a digest of its content.

Invariants:
- An id is kept as the first ``KEY_BYTES`` of sha256(id) and its content as the first
  ``DIGEST_BYTES`` of ``Tx.content_digest()``: 32 bytes per transaction, whatever its payload,
  so the index grows with the number of ids, never with their content.
- ``get`` answers from the ids added since the index was loaded (a dict) and from the loaded
  base (sorted ``uint64`` arrays searched with ``numpy.searchsorted``, memory-mapped from a
  snapshot: opening costs no per-id Python work).
- A 128-bit key collision between two different ids can only make the second one look used
  with other content (it is refused, never applied twice); its probability at 10**9 ids is
  below 10**-20.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import pyarrow as pa

KEY_BYTES: Final = 16
DIGEST_BYTES: Final = 16
INDEX_SCHEMA: Final = pa.schema(
    [
        pa.field("key_hi", pa.uint64(), nullable=False),
        pa.field("key_lo", pa.uint64(), nullable=False),
        pa.field("digest", pa.binary(DIGEST_BYTES), nullable=False),
    ]
)


def id_key(tx_id: str) -> bytes:
    return hashlib.sha256(tx_id.encode()).digest()[:KEY_BYTES]


class TxIndex:
    """Transaction id → content digest (see the module docstring)."""

    def __init__(self, base: pa.Table | None = None) -> None:
        base = INDEX_SCHEMA.empty_table() if base is None else base
        if base.schema.remove_metadata() != INDEX_SCHEMA:
            raise ValueError("the transaction index does not have its schema")
        base = base.combine_chunks()
        self._base = base
        self._hi = np.asarray(base.column("key_hi").to_numpy(zero_copy_only=False))
        self._lo = np.asarray(base.column("key_lo").to_numpy(zero_copy_only=False))
        self._recent: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._hi) + len(self._recent)

    def __bool__(self) -> bool:
        return len(self) > 0

    def get(self, tx_id: str) -> bytes | None:
        """The content digest recorded for ``tx_id`` (None if the id was never applied)."""
        key = id_key(tx_id)
        found = self._recent.get(key)
        if found is not None or len(self._hi) == 0:
            return found
        hi = int.from_bytes(key[:8], "big")
        lo = int.from_bytes(key[8:], "big")
        start = int(np.searchsorted(self._hi, np.uint64(hi), side="left"))
        end = int(np.searchsorted(self._hi, np.uint64(hi), side="right"))
        for row in range(start, end):  # bounded by 64-bit collisions: almost always 0 or 1 row
            if int(self._lo[row]) == lo:
                return bytes(self._base.column("digest")[row].as_py())
        return None

    def add(self, tx_id: str, content_digest: bytes) -> None:
        self._recent[id_key(tx_id)] = content_digest[:DIGEST_BYTES]

    @staticmethod
    def digest_of(content_digest: bytes) -> bytes:
        """What ``get`` returns for a transaction whose full content digest is given."""
        return content_digest[:DIGEST_BYTES]

    def to_table(self) -> pa.Table:
        """Every entry as one table sorted by key (what a snapshot stores)."""
        if not self._recent:
            return self._base
        keys = np.frombuffer(b"".join(self._recent), dtype=">u8").reshape(-1, 2)
        recent = pa.table(
            {
                "key_hi": pa.array(keys[:, 0].astype(np.uint64), pa.uint64()),
                "key_lo": pa.array(keys[:, 1].astype(np.uint64), pa.uint64()),
                "digest": pa.array(list(self._recent.values()), pa.binary(DIGEST_BYTES)),
            },
            schema=INDEX_SCHEMA,
        )
        merged = pa.concat_tables([self._base, recent]).combine_chunks()
        order = np.lexsort((merged.column("key_lo").to_numpy(), merged.column("key_hi").to_numpy()))
        return merged.take(pa.array(order))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TxIndex):
            return NotImplemented
        return len(self) == len(other) and self.to_table().equals(other.to_table())

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __deepcopy__(self, memo: dict[int, object]) -> TxIndex:
        copied = TxIndex(self._base)
        copied._recent = dict(self._recent)
        return copied
