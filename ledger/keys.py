"""Ed25519 keys and signatures: the identity layer of the ledger.

An account id is the raw 32-byte ed25519 public key written as exactly 64 lowercase hex
characters. Every coldkey, hotkey and signer in the ledger is named by such an id.

Invariants:
- ``Keypair.public_hex`` always satisfies ``is_account_id``; ``sign`` always returns 64 bytes.
- ``verify_signature`` is total: for any input (wrong types, wrong lengths, uppercase or non-hex
  account ids, invalid curve points, bad signatures) it returns ``False`` and never raises. Only a
  signature made by the private key behind ``public_hex`` over exactly ``message`` returns ``True``.
- Account ids are never normalised: ``"AB…"`` is not the same account as ``"ab…"``, it is rejected,
  so that one key has exactly one spelling in the ledger.
- ``repr(keypair)`` and ``str(keypair)`` show only the public key; private material leaves a
  ``Keypair`` only through an explicit ``private_bytes()`` call.

Fault model: inputs to ``verify_signature`` come from untrusted peers and files. Inputs to
``Keypair.from_private_bytes`` come from our own key files; a wrong length raises ``ValueError``.

This module depends on the standard library and ``cryptography`` only.
"""

from __future__ import annotations

import functools
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

PRIVATE_KEY_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
ACCOUNT_ID_HEX_CHARS = 2 * PUBLIC_KEY_BYTES
PUBLIC_KEY_CACHE_MAX_ENTRIES = 4096
"""Upper bound on the number of parsed public keys kept by ``verify_signature``."""

_ACCOUNT_ID_RE = re.compile(r"[0-9a-f]{64}")


def is_account_id(value: str) -> bool:
    """True when ``value`` is exactly 64 lowercase hex characters (an ed25519 public key)."""
    return isinstance(value, str) and _ACCOUNT_ID_RE.fullmatch(value) is not None


class Keypair:
    """An ed25519 signing key together with its public key.

    Create one with ``Keypair.generate()`` or ``Keypair.from_private_bytes(seed)``.
    """

    __slots__ = ("_private_key", "_public_bytes")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("Keypair needs an Ed25519PrivateKey")
        self._private_key = private_key
        self._public_bytes = private_key.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> Keypair:
        """A fresh keypair from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Keypair:
        """The keypair whose 32-byte private seed is ``raw``; ``ValueError`` on any other length."""
        if not isinstance(raw, bytes | bytearray) or len(raw) != PRIVATE_KEY_BYTES:
            raise ValueError(f"an ed25519 private key is exactly {PRIVATE_KEY_BYTES} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(raw)))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private seed. Treat the result as a secret."""
        return self._private_key.private_bytes(
            encoding=serialization.Encoding.Raw,
            format=serialization.PrivateFormat.Raw,
            encryption_algorithm=serialization.NoEncryption(),
        )

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public_bytes

    @property
    def public_hex(self) -> str:
        """The account id: the public key as 64 lowercase hex characters."""
        return self._public_bytes.hex()

    def sign(self, message: bytes) -> bytes:
        """The 64-byte ed25519 signature of ``message`` (deterministic, per RFC 8032)."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"Keypair(public_hex={self.public_hex!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keypair):
            return NotImplemented
        return self._public_bytes == other._public_bytes

    def __hash__(self) -> int:
        return hash(self._public_bytes)

    def __copy__(self) -> Keypair:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> Keypair:
        return self  # immutable

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the private key into an unprotected byte stream; refuse clearly.
        raise TypeError("Keypair objects cannot be pickled; pass private_bytes() explicitly")


@functools.lru_cache(maxsize=PUBLIC_KEY_CACHE_MAX_ENTRIES)
def _load_public_key(public_hex: str) -> Ed25519PublicKey | None:
    """The parsed public key for a well-formed account id, or None when it cannot be loaded."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    except ValueError:
        return None


def verify_signature(*, public_hex: str, message: bytes, signature: bytes) -> bool:
    """True only when ``signature`` is a valid ed25519 signature of ``message`` by ``public_hex``.

    Never raises: malformed account ids, non-bytes inputs, wrong-length signatures and invalid
    signatures all give ``False``.
    """
    if not is_account_id(public_hex):
        return False
    if not isinstance(message, bytes | bytearray | memoryview):
        return False
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_BYTES:
        return False
    public_key = _load_public_key(public_hex)
    if public_key is None:
        return False
    try:
        public_key.verify(bytes(signature), bytes(message))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
