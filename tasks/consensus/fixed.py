"""The chain's integer forms of a proportion: u16 the way subtensor stores it (spec §2, §9).

subtensor holds epoch values as ``I32F32`` (32 fractional bits; every operation floors) and
stores a proportion x ∈ [0, 1] as the u16 ``fixed_proportion_to_u16(x) = floor(x_fixed · 65535)``,
where ``x_fixed`` is x floored to a multiple of 2^-32. The implementations here compute x in
float64, so the stored integer is derived in two exact integer steps from the float:

1. ``q = floor(x · 2^32 + FIXED_ROUNDING_QUANTA)`` — the I32F32 raw value (``q / 2^32 = x_fixed``);
2. ``u16 = min(65535, (q · 65535) >> 32)`` — the product is exact in int64 (q ≤ 2^32).

Invariants
----------
* A proportion that is mathematically k/65535 with 0 < k < 65535 stores **k − 1**, exactly as the
  chain does: 2^32 ≡ 1 (mod 65535), so k/65535 · 2^32 has fractional part k/65535 ≥ 1.5e-5, its
  floor lies strictly below the true value, and the product falls just short of k. 0 stores 0 and
  1 stores 65535.
* ``FIXED_ROUNDING_QUANTA`` (1e-5 of 2^-32, ≈ 2.3e-15 absolute, ~20 float64 ulps at 1) absorbs
  float64 rounding that lands a value just below a multiple of 2^-32 it equals exactly (1.0
  computed as 1 − 2^-53 must still store 65535). It is far below the 1.5e-5-quantum distance
  of any k/65535 from a multiple of 2^-32, so it never moves those.
* Remaining difference from the chain: the chain floors after *every* operation, so its x_fixed
  can sit a few quanta below the float64 value; a stored u16 differs only when the float value
  is within those few quanta (~1e-9) of a u16 step from above — a k/65535 value computed through
  a chain of fixed-point operations is the case that matters, and it is handled above.
* The same rule serves SQL (``SQL_U16_OF``), NumPy (``proportion_to_u16``) and the boundary
  guard of the what-if engine (``fixed_step_margin``), so every implementation stores the same
  integer for the same float.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from taoflow.tasks.consensus.params import U16_MAX

FIXED_FRACTION_BITS: Final = 32
"""Fractional bits of the chain's I32F32."""
FIXED_ONE: Final = 1 << FIXED_FRACTION_BITS
"""1.0 as an I32F32 raw value."""
FIXED_ROUNDING_QUANTA: Final = 1e-5
"""Float64 slack, in 2^-32 quanta, added before flooring a float to I32F32 (see module doc)."""

SQL_U16_OF: Final = (
    "least(65535, (least(floor(({x}) * 4294967296.0 + 1e-5), 4294967296.0)::BIGINT * 65535) >> 32)"
)
"""DuckDB expression of ``proportion_to_u16``; format with ``x=`` a non-negative DOUBLE."""


def fixed_raw(proportion: np.ndarray) -> np.ndarray:
    """The I32F32 raw values (int64) of non-negative proportions ≤ 1: floor(x·2^32 + slack)."""
    scaled = np.floor(np.asarray(proportion, dtype=np.float64) * FIXED_ONE + FIXED_ROUNDING_QUANTA)
    return np.clip(scaled, 0, FIXED_ONE).astype(np.int64)


def proportion_to_u16(proportion: np.ndarray) -> np.ndarray:
    """The chain's stored u16 (int64 array) of proportions in [0, 1]."""
    raw = fixed_raw(proportion)
    return np.minimum(U16_MAX, (raw * U16_MAX) >> FIXED_FRACTION_BITS)


def fixed_share_of_rao(share: np.ndarray, *, amount_rao: int) -> np.ndarray:
    """The chain's rao amounts ``floor(share_fixed · amount)`` (int64 array): the share floored to
    I32F32, times an integer amount, floored — how subtensor turns an emission share into rao
    (e.g. 10 equal stakes of a 10^9 rao epoch get 99,999,999 each, not 10^8: its test_10_graph).
    Exact: the product is taken in Python integers (amounts up to 2^63 overflow int64 there)."""
    if amount_rao < 0:
        raise ValueError(f"amount_rao must be >= 0, got {amount_rao}")
    raw = fixed_raw(share).astype(object)
    return np.asarray((raw * amount_rao) >> FIXED_FRACTION_BITS, dtype=np.int64)


def fixed_step_margin(proportion: np.ndarray) -> np.ndarray:
    """Distance, in 2^-32 quanta, from x·2^32 + slack to its nearest integer: where it is tiny, a
    last-bit difference between two float implementations could change the stored u16."""
    scaled = np.asarray(proportion, dtype=np.float64) * FIXED_ONE + FIXED_ROUNDING_QUANTA
    return np.abs(scaled - np.rint(scaled))


__all__ = [
    "FIXED_FRACTION_BITS",
    "FIXED_ONE",
    "FIXED_ROUNDING_QUANTA",
    "SQL_U16_OF",
    "fixed_raw",
    "fixed_share_of_rao",
    "fixed_step_margin",
    "proportion_to_u16",
]
