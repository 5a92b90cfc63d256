"""Transaction signatures: what is signed, by which key, and how it is checked.

Invariants:
- The signed message is a domain tag followed by the canonical JSON of every field of the
  transaction except the signature, so changing any field (amount, nonce, payload, id, …)
  invalidates the signature.
- Funds and registrations are authorised by the coldkey (``coldkey`` field); submissions and
  weights by the hotkey (``hotkey`` field). Account ids are 64-hex-digit ed25519 public keys.
- System entries (genesis, epoch, emissions) carry no signature; only the network produces them
  (the ledger refuses them from users).
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields

from ledger.keys import Keypair, is_account_id, verify_signature
from ledger.schema import SIGNED_BY_COLDKEY, SIGNED_BY_HOTKEY, SYSTEM_KINDS, Tx, canonical_json

DOMAIN_TAG = b"taoflow-tx-v1\x00"


def signer_of(tx: Tx) -> str | None:
    """The account that must sign ``tx`` (None for system entries)."""
    if tx.kind in SIGNED_BY_COLDKEY:
        return tx.coldkey
    if tx.kind in SIGNED_BY_HOTKEY:
        return tx.hotkey
    return None


def signing_message(tx: Tx) -> bytes:
    body = {f.name: getattr(tx, f.name) for f in fields(tx) if f.name != "signature"}
    body["kind"] = str(tx.kind)
    return DOMAIN_TAG + canonical_json(body).encode()


def sign(tx: Tx, keypair: Keypair) -> Tx:
    """``tx`` signed by ``keypair`` (which must be its signer)."""
    signer = signer_of(tx)
    if signer is None:
        raise ValueError(f"{tx.kind} entries are not signed")
    if signer != keypair.public_hex:
        raise ValueError(f"{tx.kind} must be signed by {signer[:16]}…, not this key")
    return dataclasses.replace(tx, signature=keypair.sign(signing_message(tx)))


def signature_problem(tx: Tx) -> str | None:
    """Why ``tx``'s signature is not acceptable, or None if it is."""
    if tx.kind in SYSTEM_KINDS:
        return None if tx.signature == b"" else "system entries carry no signature"
    signer = signer_of(tx)
    if signer is None:
        return f"unknown transaction kind {tx.kind!r}"
    if not is_account_id(signer):
        return f"signer {signer[:20]!r} is not an account id (64 hex digits)"
    if not tx.signature:
        return "missing signature"
    if not verify_signature(public_hex=signer, message=signing_message(tx), signature=tx.signature):
        return "bad signature"
    return None
