"""Distribution statistics for audits: inequality (Gini), spread and rank correlation.

Invariants:
- Pure functions of a finite sequence of numbers; no I/O, no randomness.
- ``gini`` is 0 for an empty vector, an all-zero vector or equal values, and
  (n − 1) / n when one of n non-negative values holds everything; negative values are refused
  (one-line ``ValueError``), since inequality of a signed quantity is not defined here.
- ``spread`` is (max − min, population standard deviation), both 0 for fewer than two values.
- Non-finite values (NaN, ±inf) are refused in one line.
- ``spearman`` is the Pearson correlation of average ranks (ties share the mean rank), in
  [−1, 1], and ``None`` where it is undefined (under two pairs, or one side constant).
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


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties given the mean of the ranks they span."""
    array = _finite(values, what="ranks")
    order = np.argsort(array, kind="stable")
    ordered = array[order]
    # start index of each run of equal values, in sorted order
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    run_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 … ends
    ranks = np.empty(array.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float | None:
    """Spearman rank correlation of paired ``x`` and ``y`` (ties averaged), or ``None`` when it
    is undefined: fewer than two pairs, or either side constant."""
    a = _finite(x, what="spearman")
    b = _finite(y, what="spearman")
    if a.size != b.size:
        raise ValueError(f"spearman needs pairs (got {a.size} and {b.size} values)")
    if a.size < 2:
        return None
    ra = average_ranks(a) - (a.size + 1) / 2.0
    rb = average_ranks(b) - (b.size + 1) / 2.0
    denominator = float(np.sqrt(np.dot(ra, ra) * np.dot(rb, rb)))
    if denominator == 0.0:
        return None
    return float(np.clip(np.dot(ra, rb) / denominator, -1.0, 1.0))
