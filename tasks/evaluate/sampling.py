"""Deterministic per-epoch sampling of held-out rows, identical on every validator.

Invariants:

* :func:`derive_seed` is an injective encoding of its parts (type tag + 8-byte big-endian length
  + payload per part) hashed with sha256: ``derive_seed("ab", "c") != derive_seed("a", "bc")``,
  ``derive_seed(1) != derive_seed("1") != derive_seed(b"1")``.  ``bool`` parts are refused.
* :func:`sample_indices` returns ``sample_size`` distinct indices in ``[0, population)``, sorted
  ascending, as ``int64``; the same ``(seed, population, sample_size)`` gives the same array in
  every process, on every platform and every numpy version: the numpy ``Generator`` (PCG64,
  seeded through ``SeedSequence`` from sha256 of the seed bytes) is used only for its raw 64-bit
  stream, which numpy keeps stable, while the bounded integers (rejection sampling, no modulo
  bias) and the without-replacement selection (Floyd's algorithm, O(sample_size)) are ours --
  numpy's distribution methods such as ``Generator.choice`` may change between versions.

Fault model: arguments come from the validator itself; invalid ones raise ``ValueError`` /
``TypeError``.  Imports only numpy and the standard library.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np

_SEED_DOMAIN: Final = b"taoflow.derive-seed.v1\x00"
_SAMPLE_DOMAIN: Final = b"taoflow.sample-indices.v1\x00"
_RAW_SPAN: Final = 1 << 64


def derive_seed(*parts: str | bytes | int) -> bytes:
    """sha256 digest (32 bytes) over the length-prefixed, type-tagged ``parts``."""
    digest = hashlib.sha256(_SEED_DOMAIN)
    for part in parts:
        if isinstance(part, bool):
            raise TypeError("derive_seed does not accept bool parts")
        if isinstance(part, bytes):
            tag, payload = b"b", part
        elif isinstance(part, str):
            tag, payload = b"s", part.encode("utf-8")
        elif isinstance(part, int):
            tag, payload = b"i", str(part).encode("ascii")
        else:
            raise TypeError(f"derive_seed parts must be str, bytes or int, not {type(part)}")
        digest.update(tag + len(payload).to_bytes(8, "big") + payload)
    return digest.digest()


def _generator(seed: bytes) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(_SAMPLE_DOMAIN + seed).digest(), "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def _uniform_below(bit_generator: np.random.BitGenerator, bound: int) -> int:
    """Uniform integer in ``[0, bound)`` from the raw 64-bit stream (unbiased rejection)."""
    limit = _RAW_SPAN - (_RAW_SPAN % bound)
    while True:
        raw = int(bit_generator.random_raw())
        if raw < limit:
            return raw % bound


def sample_indices(*, seed: bytes, population: int, sample_size: int) -> np.ndarray:
    """``sample_size`` distinct sorted ``int64`` indices from ``range(population)``."""
    if not isinstance(seed, bytes):
        raise TypeError(f"seed must be bytes, got {type(seed).__name__}")
    if population < 0:
        raise ValueError(f"population must be >= 0, got {population}")
    if not 0 <= sample_size <= population:
        raise ValueError(f"sample_size must be in [0, {population}], got {sample_size}")
    if population >= _RAW_SPAN:
        raise ValueError(f"population must be < 2**64, got {population}")
    bit_generator = _generator(seed).bit_generator
    chosen: set[int] = set()
    for upper in range(population - sample_size, population):  # Floyd's algorithm
        candidate = _uniform_below(bit_generator, upper + 1)
        chosen.add(upper if candidate in chosen else candidate)
    return np.array(sorted(chosen), dtype=np.int64)
