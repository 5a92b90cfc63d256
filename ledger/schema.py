"""The ledger's transaction schema: one typed, versioned Arrow schema for every kind of entry.

Invariants:
- ``SCHEMA_VERSION`` names the ledger format; a batch written with another version is rejected on
  read instead of being misinterpreted. Format 2 hashes rows column-wise from their Arrow buffers
  and keeps an epoch's consensus state in columnar epoch records (``ledger.epoch_records``);
  format 1 ledgers are converted by ``taoflow ledger migrate``.
- Amounts are integer rao (1 TAO = 10**9 rao) in an ``int64`` column, never floats, never negative.
- ``payload`` is canonical JSON (sorted keys, no spaces) so that equal content means equal bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, cast

import pyarrow as pa

SCHEMA_VERSION = 2
LEGACY_SCHEMA_VERSIONS = frozenset({1})
"""Formats ``taoflow ledger migrate`` converts from."""
EMPTY_PAYLOAD = "{}"
CONTENT_DIGEST_TAG = b"taoflow-tx-content-v1\x00"
_PAYLOAD_CACHE = "_payload_parsed"
RAO_PER_TAO = 1_000_000_000


class Kind(StrEnum):
    """Every kind of ledger entry. System kinds are produced only by genesis and the epoch flow."""

    NETWORK = "network"
    GENESIS_MINT = "genesis_mint"
    TRANSFER = "transfer"
    ADD_STAKE = "add_stake"
    REMOVE_STAKE = "remove_stake"
    SUBNET_CREATE = "subnet_create"
    REGISTER = "register"
    SUBMISSION_COMMIT = "submission_commit"
    WEIGHTS_COMMIT = "weights_commit"
    WEIGHTS_REVEAL = "weights_reveal"
    SET_TAKE = "set_take"
    PROPOSAL = "proposal"
    VOTE = "vote"
    PROPOSAL_TALLY = "proposal_tally"
    PROPOSAL_ACTIVATION = "proposal_activation"
    EPOCH = "epoch"
    EMISSION_OWNER = "emission_owner"
    EMISSION_INCENTIVE = "emission_incentive"
    EMISSION_DIVIDEND = "emission_dividend"
    EMISSION_DELEGATOR = "emission_delegator"


SYSTEM_KINDS = frozenset(
    {
        Kind.NETWORK,
        Kind.GENESIS_MINT,
        Kind.PROPOSAL_TALLY,
        Kind.PROPOSAL_ACTIVATION,
        Kind.EPOCH,
        Kind.EMISSION_OWNER,
        Kind.EMISSION_INCENTIVE,
        Kind.EMISSION_DIVIDEND,
        Kind.EMISSION_DELEGATOR,
    }
)
EMISSION_KINDS = frozenset(
    {
        Kind.EMISSION_OWNER,
        Kind.EMISSION_INCENTIVE,
        Kind.EMISSION_DIVIDEND,
        Kind.EMISSION_DELEGATOR,
    }
)
SIGNED_BY_COLDKEY = frozenset(
    {
        Kind.TRANSFER,
        Kind.ADD_STAKE,
        Kind.REMOVE_STAKE,
        Kind.SUBNET_CREATE,
        Kind.REGISTER,
        Kind.SET_TAKE,
        Kind.PROPOSAL,
        Kind.VOTE,
    }
)
SIGNED_BY_HOTKEY = frozenset({Kind.SUBMISSION_COMMIT, Kind.WEIGHTS_COMMIT, Kind.WEIGHTS_REVEAL})

TX_SCHEMA = pa.schema(
    [
        pa.field("tx_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("subnet", pa.string(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=False),
        pa.field("block", pa.int64(), nullable=False),
        pa.field("coldkey", pa.string(), nullable=False),
        pa.field("hotkey", pa.string(), nullable=False),
        pa.field("dest", pa.string(), nullable=False),
        pa.field("uid", pa.int64(), nullable=False),
        pa.field("amount_rao", pa.int64(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("nonce", pa.int64(), nullable=False),
        pa.field("signature", pa.binary(), nullable=False),
    ],
    metadata={b"taoflow.schema_version": str(SCHEMA_VERSION).encode()},
)


def canonical_json(value: Mapping[str, Any]) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Tx:
    """One ledger entry. Unused fields keep their neutral default ("" / -1 / 0)."""

    tx_id: str
    kind: Kind
    subnet: str = ""
    epoch: int = -1
    block: int = -1
    coldkey: str = ""
    hotkey: str = ""
    dest: str = ""
    uid: int = -1
    amount_rao: int = 0
    payload: str = "{}"
    nonce: int = 0
    signature: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.tx_id:
            raise ValueError("tx_id must not be empty")
        if not isinstance(self.amount_rao, int) or isinstance(self.amount_rao, bool):
            raise TypeError(f"amount_rao must be an int, got {type(self.amount_rao).__name__}")
        if not 0 <= self.amount_rao < 2**63:
            raise ValueError(f"amount_rao out of range: {self.amount_rao}")
        object.__setattr__(self, "kind", Kind(self.kind))

    def payload_dict(self) -> dict[str, Any]:
        """The payload parsed as a JSON object (parsed once per ``Tx``; do not mutate it).

        An epoch entry's payload is large and the rules read it several times while checking
        and applying it, so the parse is kept on the (frozen) transaction.
        """
        cached = self.__dict__.get(_PAYLOAD_CACHE)
        if cached is not None:
            return cast(dict[str, Any], cached)
        value = {} if self.payload == EMPTY_PAYLOAD else json.loads(self.payload)
        if not isinstance(value, dict):
            raise ValueError(f"payload of {self.tx_id!r} is not a JSON object")
        object.__setattr__(self, _PAYLOAD_CACHE, value)
        return value

    def content(self) -> tuple[object, ...]:
        """Everything but the id: what "same id, same content" compares."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "tx_id")

    def content_digest(self) -> bytes:
        """sha256 of ``content()`` (length-prefixed fields): what the ledger keeps per id.

        Keeping a digest instead of the content bounds the idempotency index by the number of
        ids, not by the size of their payloads (an epoch entry's payload is large).
        """
        digest = hashlib.sha256(CONTENT_DIGEST_TAG)
        for value in self.content():
            raw = value if isinstance(value, bytes) else str(value).encode()
            digest.update(len(raw).to_bytes(8, "big"))
            digest.update(raw)
        return digest.digest()


def txs_to_table(txs: Sequence[Tx]) -> pa.Table:
    """Arrow table (schema ``TX_SCHEMA``) holding ``txs`` in order (one list per column)."""
    columns = [
        [tx.kind.value for tx in txs] if f.name == "kind" else [getattr(tx, f.name) for tx in txs]
        for f in TX_SCHEMA
    ]
    return pa.Table.from_arrays(
        [pa.array(values, f.type) for values, f in zip(columns, TX_SCHEMA, strict=True)],
        schema=TX_SCHEMA,
    )


def table_to_txs(table: pa.Table) -> list[Tx]:
    """Inverse of ``txs_to_table``."""
    if table.schema.remove_metadata() != TX_SCHEMA.remove_metadata():
        raise ValueError("table does not have the ledger transaction schema")
    rows: Iterable[dict[str, Any]] = table.to_pylist()
    return [Tx(**row) for row in rows]
