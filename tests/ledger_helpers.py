"""Test helpers: deterministic ed25519 test accounts and signing with the right nonce."""

from __future__ import annotations

import dataclasses
import hashlib
from functools import cache

from ledger.keys import Keypair
from ledger.schema import Kind, Tx
from ledger.signing import sign, signer_of
from ledger.state import LedgerState

TAO = 10**9


@cache
def key(name: str) -> Keypair:
    """A fixed test key per name (never use derived keys outside tests)."""
    return Keypair.from_private_bytes(hashlib.sha256(f"test-key/{name}".encode()).digest())


def acct(name: str) -> str:
    """The account id (public key hex) of the test key ``name``."""
    return key(name).public_hex


KEYS_BY_ACCOUNT: dict[str, Keypair] = {}


def signed(state: LedgerState, tx: Tx, *, nonce: int | None = None) -> Tx:
    """``tx`` with the signer's next nonce (or ``nonce``) and a valid signature."""
    signer = signer_of(tx)
    if signer is None:
        return tx
    keypair = next(
        (k for k in (key(n) for n in NAMES) if k.public_hex == signer),
        None,
    )
    if keypair is None:
        raise KeyError(f"no test key for {signer[:12]}")
    chosen = state.next_nonce(signer) if nonce is None else nonce
    return sign(dataclasses.replace(tx, nonce=chosen), keypair)


NAMES = ("alice", "bob", "carol", "dave", "alice-hot", "bob-hot", "carol-hot", "eve")


def mint(tx_id: str, name: str, amount_rao: int) -> Tx:
    return Tx(tx_id, Kind.GENESIS_MINT, coldkey=acct(name), amount_rao=amount_rao)
