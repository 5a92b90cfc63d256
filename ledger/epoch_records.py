"""Columnar epoch records: an epoch's consensus inputs and outputs as typed Arrow tables.

An epoch entry's payload keeps only what the money rules read (schedule, split leftovers, the
quantised shares, the evaluation's rejected uids) and a ``records`` object naming each record
table by its canonical hash (``ledger.store.hashing.table_sha256``) and row count. The payload is
covered by the batch's rows hash, the batch hash and the writer's signature, so every record
table is bound into the batch it belongs to: a changed byte in a record file changes its hash
and is refused on read.

Record tables (``RECORD_SCHEMAS``; every column is non-nullable, missing values are explicit):

- ``weights``: the weights consensus read, ``(validator, miner, weight_u16)``;
- ``scores``: the hosted validators' scores, ``(validator, miner, score)``;
- ``bonds``: the bonds consensus stored for the next epoch, ``(validator, miner, bond_u16)``;
- ``uids``: one row per uid — hotkey, stake, validator permit, active, the consensus outputs
  (stake weight, validator trust, consensus, incentive, dividends, server and validator emission
  shares), the rao it was paid this epoch, its mean score (NaN when none), its evaluation error
  ("" when none) and the digest of the artifact it was evaluated on ("" when none).

Invariants: ``check_refs`` accepts only the names of ``RECORD_SCHEMAS`` with a 64-hex hash and a
non-negative row count; ``conform`` refuses a table whose columns or types differ from the schema
(after a lossless cast), so a record's hash depends only on its values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from taoflow.ledger.table_hash import table_sha256

RECORDS_KEY: Final = "records"
"""The epoch payload key that names the record tables."""
HASH_HEX_CHARS: Final = 64

WEIGHTS_SCHEMA: Final = pa.schema(
    [
        pa.field("validator", pa.int32(), nullable=False),
        pa.field("miner", pa.int32(), nullable=False),
        pa.field("weight_u16", pa.uint16(), nullable=False),
    ]
)
SCORES_SCHEMA: Final = pa.schema(
    [
        pa.field("validator", pa.int32(), nullable=False),
        pa.field("miner", pa.int32(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
    ]
)
BONDS_SCHEMA: Final = pa.schema(
    [
        pa.field("validator", pa.int32(), nullable=False),
        pa.field("miner", pa.int32(), nullable=False),
        pa.field("bond_u16", pa.uint16(), nullable=False),
    ]
)
UID_FLOAT_COLUMNS: Final = (
    "stake_weight",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "server_emission_share",
    "validator_emission_share",
)
UIDS_SCHEMA: Final = pa.schema(
    [
        pa.field("uid", pa.int32(), nullable=False),
        pa.field("hotkey", pa.string(), nullable=False),
        pa.field("stake_rao", pa.int64(), nullable=False),
        pa.field("permit", pa.bool_(), nullable=False),
        pa.field("active", pa.bool_(), nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in UID_FLOAT_COLUMNS),
        pa.field("emission_rao", pa.int64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("artifact_digest", pa.string(), nullable=False),
    ]
)
RECORD_SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    "weights": WEIGHTS_SCHEMA,
    "scores": SCORES_SCHEMA,
    "bonds": BONDS_SCHEMA,
    "uids": UIDS_SCHEMA,
}


@dataclass(frozen=True)
class RecordRef:
    """What an epoch payload says about one record table."""

    name: str
    sha256: str
    rows: int

    def to_payload(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "rows": self.rows}


def conform(name: str, table: pa.Table) -> pa.Table:
    """``table`` cast to the schema of record ``name`` (refused if that is not lossless)."""
    schema = RECORD_SCHEMAS.get(name)
    if schema is None:
        raise ValueError(f"unknown epoch record {name!r}")
    if table.schema.names != schema.names:
        raise ValueError(f"epoch record {name!r} needs columns {schema.names}")
    out = table.replace_schema_metadata(None).cast(schema, safe=True)
    for column in out.columns:
        if column.null_count:
            raise ValueError(f"epoch record {name!r} may not hold nulls")
    return out.combine_chunks()


def ref_of(name: str, table: pa.Table) -> RecordRef:
    """The reference to ``table`` (already ``conform``ed) as record ``name``."""
    return RecordRef(name=name, sha256=table_sha256(table), rows=table.num_rows)


def record_refs(tables: Mapping[str, pa.Table]) -> dict[str, dict[str, Any]]:
    """The ``records`` object of an epoch payload for ``tables`` (each conformed first)."""
    return {name: ref_of(name, conform(name, t)).to_payload() for name, t in sorted(tables.items())}


def check_refs(value: object) -> dict[str, RecordRef] | str:
    """The references of an epoch payload's ``records`` object, or why it is malformed."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return "epoch records must be an object"
    refs: dict[str, RecordRef] = {}
    for name, ref in value.items():
        if name not in RECORD_SCHEMAS:
            return f"unknown epoch record {name!r}"
        if not isinstance(ref, Mapping) or set(ref) != {"sha256", "rows"}:
            return f"epoch record {name!r} needs exactly sha256 and rows"
        digest, rows = ref["sha256"], ref["rows"]
        if not (
            isinstance(digest, str)
            and len(digest) == HASH_HEX_CHARS
            and all(c in "0123456789abcdef" for c in digest)
        ):
            return f"epoch record {name!r} needs a 64-hex-digit sha256"
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            return f"epoch record {name!r} needs a non-negative row count"
        refs[name] = RecordRef(name=name, sha256=digest, rows=rows)
    return refs
