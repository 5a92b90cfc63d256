"""Transaction signatures: what is signed, by which key, for which network, and how it is checked.

Invariants:
- The signed message is a domain tag, the network id (``ledger.network``; "" for a ledger
  without a network entry) and the canonical JSON of every field of the transaction except the
  signature, so changing any field (amount, nonce, payload, id, …) or the network invalidates it.
- The ``signature`` field is ``NETWORK_ID_BYTES`` naming the network it was signed for, then the
  64-byte ed25519 signature. A signature made for another network is refused as
  ``SIGNED_FOR_ANOTHER_NETWORK`` (the prefix does not name this network) or, if the prefix was
  relabelled, as a bad signature (the message includes the network id): never accepted.
- Funds and registrations are authorised by the coldkey (``coldkey`` field); submissions and
  weights by the hotkey (``hotkey`` field). Account ids are 64-hex-digit ed25519 public keys.
- System entries (network, genesis, epoch, emissions) carry no signature; only the network
  produces them (the ledger refuses them from users).
- ``signing_message`` builds the canonical JSON with one format string (``signing_body``) when
  every field has its plain type (exact ``int`` / ``str``), and with ``canonical_json`` otherwise;
  both give the same bytes (ledgers already signed stay valid), and the field list the format
  string names is checked against ``Tx`` at import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from json.encoder import encode_basestring_ascii
from typing import Final

from taoflow.ledger.keys import SIGNATURE_BYTES, Keypair, is_account_id, verify_signature
from taoflow.ledger.schema import (
    SIGNED_BY_COLDKEY,
    SIGNED_BY_HOTKEY,
    SYSTEM_KINDS,
    Tx,
    canonical_json,
)

DOMAIN_TAG: Final = b"taoflow-tx-v2\x00"
NETWORK_ID_BYTES: Final = 32
SIGNATURE_FIELD_BYTES: Final = NETWORK_ID_BYTES + SIGNATURE_BYTES
NO_NETWORK: Final = bytes(NETWORK_ID_BYTES)
"""The prefix of a signature made on a ledger that has no network entry (unit tests)."""
SIGNED_FOR_ANOTHER_NETWORK: Final = "signed for another network"

_INT_FIELDS: Final = frozenset({"amount_rao", "block", "epoch", "nonce", "uid"})
_BODY_FIELDS: Final = (
    "amount_rao",
    "block",
    "coldkey",
    "dest",
    "epoch",
    "hotkey",
    "kind",
    "nonce",
    "payload",
    "subnet",
    "tx_id",
    "uid",
)
"""Every field of ``Tx`` but the signature, in ``canonical_json``'s (sorted) key order."""
_BODY_FORMAT: Final = (
    "{" + ",".join(f'"{n}":%d' if n in _INT_FIELDS else f'"{n}":%s' for n in _BODY_FIELDS) + "}"
)
if tuple(sorted(f.name for f in fields(Tx) if f.name != "signature")) != _BODY_FIELDS:
    raise RuntimeError("ledger.signing: the signed body's field list no longer matches Tx")


def signer_of(tx: Tx) -> str | None:
    """The account that must sign ``tx`` (None for system entries)."""
    if tx.kind in SIGNED_BY_COLDKEY:
        return tx.coldkey
    if tx.kind in SIGNED_BY_HOTKEY:
        return tx.hotkey
    return None


def network_prefix(network_id: str) -> bytes:
    """The 32 bytes that name ``network_id`` (a sha256 hex) in a signature; zeros for ""."""
    if network_id == "":
        return NO_NETWORK
    raw = bytes.fromhex(network_id)
    if len(raw) != NETWORK_ID_BYTES:
        raise ValueError("network id must be 64 hex digits")
    return raw


def message_head(network_id: str) -> bytes:
    """What every signed message on the network ``network_id`` starts with."""
    return DOMAIN_TAG + network_id.encode() + b"\x00"


def signing_body(
    *,
    tx_id: str,
    kind: str,
    subnet: str,
    epoch: int,
    block: int,
    coldkey: str,
    hotkey: str,
    dest: str,
    uid: int,
    amount_rao: int,
    payload: str,
    nonce: int,
) -> bytes:
    """The canonical JSON of a transaction's fields (its signed body), from plain values.

    Equal to ``canonical_json`` of the same fields only for exact ``int`` and ``str`` values
    (what an Arrow row of ``TX_SCHEMA`` gives); ``signing_message`` checks that before using it.
    """
    quote = encode_basestring_ascii
    text = _BODY_FORMAT % (
        amount_rao,
        block,
        quote(coldkey),
        quote(dest),
        epoch,
        quote(hotkey),
        quote(kind),
        nonce,
        quote(payload),
        quote(subnet),
        quote(tx_id),
        uid,
    )
    return text.encode("ascii")


def _has_plain_fields(tx: Tx) -> bool:
    """True when every signed field of ``tx`` is an exact int or str (``signing_body`` applies)."""
    return (
        type(tx) is Tx
        and type(tx.amount_rao) is int
        and type(tx.block) is int
        and type(tx.epoch) is int
        and type(tx.nonce) is int
        and type(tx.uid) is int
        and type(tx.tx_id) is str
        and type(tx.subnet) is str
        and type(tx.coldkey) is str
        and type(tx.hotkey) is str
        and type(tx.dest) is str
        and type(tx.payload) is str
    )


def signing_message(tx: Tx, network_id: str) -> bytes:
    """The bytes ``tx``'s signer signs on the network ``network_id``."""
    if not _has_plain_fields(tx):
        body = {f.name: getattr(tx, f.name) for f in fields(tx) if f.name != "signature"}
        body["kind"] = str(tx.kind)
        return message_head(network_id) + canonical_json(body).encode()
    return message_head(network_id) + signing_body(
        tx_id=tx.tx_id,
        kind=str(tx.kind),
        subnet=tx.subnet,
        epoch=tx.epoch,
        block=tx.block,
        coldkey=tx.coldkey,
        hotkey=tx.hotkey,
        dest=tx.dest,
        uid=tx.uid,
        amount_rao=tx.amount_rao,
        payload=tx.payload,
        nonce=tx.nonce,
    )


def sign(tx: Tx, keypair: Keypair, *, network_id: str) -> Tx:
    """``tx`` signed by ``keypair`` (which must be its signer) for the network ``network_id``."""
    signer = signer_of(tx)
    if signer is None:
        raise ValueError(f"{tx.kind} entries are not signed")
    if signer != keypair.public_hex:
        raise ValueError(f"{tx.kind} must be signed by {signer[:16]}…, not this key")
    signature = network_prefix(network_id) + keypair.sign(signing_message(tx, network_id))
    return dataclasses.replace(tx, signature=signature)


def signature_problem(tx: Tx, *, network_id: str) -> str | None:
    """Why ``tx``'s signature is not acceptable on the network ``network_id``, or None."""
    if tx.kind in SYSTEM_KINDS:
        return None if tx.signature == b"" else "system entries carry no signature"
    signer = signer_of(tx)
    if signer is None:
        return f"unknown transaction kind {tx.kind!r}"
    if not is_account_id(signer):
        return f"signer {signer[:20]!r} is not an account id (64 hex digits)"
    if not tx.signature:
        return "missing signature"
    if not isinstance(tx.signature, bytes) or len(tx.signature) != SIGNATURE_FIELD_BYTES:
        return "bad signature"
    if tx.signature[:NETWORK_ID_BYTES] != network_prefix(network_id):
        return SIGNED_FOR_ANOTHER_NETWORK
    if not verify_signature(
        public_hex=signer,
        message=signing_message(tx, network_id),
        signature=tx.signature[NETWORK_ID_BYTES:],
    ):
        return "bad signature"
    return None
