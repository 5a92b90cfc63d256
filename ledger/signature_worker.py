"""The verifying half of bulk signature checks: plain (account, message, signature) triples in,
one verdict byte per triple out.

This is the code a verification worker process runs, so it depends on the standard library and
``cryptography`` only: a spawned worker imports it in a few tens of milliseconds, without
pyarrow or the rest of the ledger.

Invariants:
- ``verify_jobs(jobs)`` returns exactly ``len(jobs)`` bytes, ``VALID`` at ``i`` iff ``jobs[i]``'s
  signature is a valid ed25519 signature of its message by its account, else ``INVALID``. It is
  total on well-typed triples (an account id that is not a curve point is ``INVALID``, never an
  exception), and its answer depends only on the triples (not on the order, the chunking or the
  process that computes it).
- Only bytes and str cross a process boundary: a job is ``(public_hex, message, signature)``.
- At most ``VERIFY_KEY_CACHE_MAX_ENTRIES`` parsed public keys are kept per process.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VERIFY_KEY_CACHE_MAX_ENTRIES: Final = 8192
"""Upper bound on the parsed public keys kept per process (LRU)."""
VALID: Final = 1
INVALID: Final = 0

VerifyJob: TypeAlias = tuple[str, bytes, bytes]
"""``(public_hex, message, signature)``: an account id, the signed message, the 64-byte
ed25519 signature."""


@functools.lru_cache(maxsize=VERIFY_KEY_CACHE_MAX_ENTRIES)
def load_public_key(public_hex: str) -> Ed25519PublicKey | None:
    """The parsed key of a well-formed account id, or None when it cannot be loaded."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    except ValueError:
        return None


def verify_jobs(jobs: Sequence[VerifyJob]) -> bytes:
    """One byte per job: ``VALID`` when its signature verifies, else ``INVALID``."""
    verdicts = bytearray(len(jobs))
    load = load_public_key
    for index, (public_hex, message, signature) in enumerate(jobs):
        public_key = load(public_hex)
        if public_key is None:
            continue
        try:
            public_key.verify(signature, message)
        except (InvalidSignature, ValueError, TypeError):
            continue
        verdicts[index] = VALID
    return bytes(verdicts)
