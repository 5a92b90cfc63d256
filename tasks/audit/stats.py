"""Distribution statistics for audits: inequality (Gini) and spread of per-uid vectors.

Invariants:
- Pure functions of a finite sequence of numbers; no I/O, no randomness.
- ``gini`` is 0 for an empty vector, an all-zero vector or equal values, and
  (n − 1) / n when one of n non-negative values holds everything; negative values are refused
  (one-line ``ValueError``), since inequality of a signed quantity is not defined here.
- ``spread`` is (max − min, population standard deviation), both 0 for fewer than two values.
- Non-finite values (NaN, ±inf) are refused in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spread:
    """How far apart a set of values is: max − min and the population standard deviation."""

    max_minus_min: float
    std: float


def _finite(values: Sequence[float] | np.ndarray, *, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} needs finite values (got NaN or infinity)")
    return array


def gini(values: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative ``values`` (0 = equal shares; (n−1)/n = one holds all)."""
    array = _finite(values, what="gini")
    if array.size == 0:
        return 0.0
    if np.any(array < 0):
        raise ValueError("gini needs non-negative values")
    total = float(array.sum())
    if total == 0.0:
        return 0.0
    ordered = np.sort(array)
    n = ordered.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    # G = Σ (2i − n − 1) x_(i) / (n Σ x), x sorted ascending, i = 1..n
    return float(np.dot(2.0 * ranks - n - 1.0, ordered) / (n * total))


def spread(values: Sequence[float] | np.ndarray) -> Spread:
    """Range and population standard deviation of ``values`` (both 0 below two values)."""
    array = _finite(values, what="spread")
    if array.size < 2:
        return Spread(max_minus_min=0.0, std=0.0)
    return Spread(max_minus_min=float(array.max() - array.min()), std=float(array.std()))
