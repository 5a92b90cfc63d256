"""The canonical, column-wise hash of an Arrow table (ledger format 2).

sha256 over: a domain tag, the row count, then per column its name, its type and its values —
fixed-width columns as little-endian value bytes, string and binary columns as their offsets
rebased to 0 (little-endian int64) followed by their data bytes, booleans as one byte per value.

Invariants: the hash depends only on the schema's names and types and the values, never on
chunking, slicing offsets, compression or how a library version lays buffers out; null values
are refused (the ledger's columns are not nullable; epoch records mark missing values
explicitly). It reads the Arrow buffers directly: no Python object per row.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

TABLE_DOMAIN = b"taoflow-table-v2\x00"


def _hash_array(digest: hashlib._Hash, array: pa.Array) -> None:
    """Feed one (single-chunk) column's values into ``digest``, independent of its layout."""
    if array.null_count:
        raise ValueError("a hashed column may not hold nulls")
    kind = array.type
    if pa.types.is_boolean(kind):
        digest.update(np.asarray(array, dtype=np.uint8).tobytes())
        return
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = np.asarray(array.to_numpy(zero_copy_only=False))
        digest.update(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes())
        return
    if pa.types.is_fixed_size_binary(kind):
        width = kind.byte_width
        data = array.buffers()[1]
        if data is not None:
            digest.update(
                memoryview(data)[array.offset * width : (array.offset + len(array)) * width]
            )
        return
    if not (
        pa.types.is_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_large_binary(kind)
    ):
        raise ValueError(f"cannot hash a column of type {kind}")
    array = array.cast(pa.large_binary())
    _, offsets_buf, data_buf = array.buffers()
    start = array.offset
    offsets = np.frombuffer(offsets_buf, dtype="<i8")[start : start + len(array) + 1]
    base = int(offsets[0]) if len(offsets) else 0
    digest.update((offsets - base).astype("<i8", copy=False).tobytes())
    if len(offsets) and data_buf is not None:
        digest.update(memoryview(data_buf)[base : int(offsets[-1])])


def table_sha256(table: pa.Table, *, domain: bytes = TABLE_DOMAIN) -> str:
    """Canonical column-wise sha256 of ``table`` (see the module docstring)."""
    digest = hashlib.sha256(domain)
    digest.update(table.num_rows.to_bytes(8, "little"))
    for field in table.schema:
        digest.update(f"{field.name}:{field.type}\x00".encode())
        column = table.column(field.name)
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        _hash_array(digest, array)
    return digest.hexdigest()
