"""The "wine" evaluation set: scikit-learn's packaged wine recognition data (178 rows).

Purpose: a small, real, offline tabular-classification task (13 chemical measurements,
3 cultivars) for miners to train on and validators to score with.

Invariants / determinism:

* the split is a fixed permutation from ``numpy.random.default_rng(WINE_SPLIT_SEED)``: the first
  ``floor(0.8 * n)`` = 142 permuted rows are ``train``, the remaining 36 are ``test``;
* features are standardised with statistics of the TRAIN split only (nothing about the held-out
  rows leaks into the published data): per column ``(x - mean) / std`` with the population
  standard deviation.  Means and variances are summed with ``math.fsum`` (exactly rounded), and
  the remaining operations are single IEEE-754 float64 operations, so the result -- and the
  content hash -- does not depend on numpy's SIMD summation order or the CPU; values are then
  rounded once to ``float32``;
* no network access; a change in scikit-learn's packaged data would show up as a different
  :attr:`EvaluationSet.content_hash` (pinned in tests).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from sklearn.datasets import load_wine

from taoflow.evaluation_sets.base import EvaluationSet, split_dataset

WINE_NAME: Final = "wine"
WINE_INPUT_DIM: Final = 13
WINE_NUM_CLASSES: Final = 3
WINE_SPLIT_SEED: Final = 0
WINE_TRAIN_FRACTION: Final = 0.8


def _train_statistics(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``(mean, population std)`` of ``train`` (float64), exactly-rounded sums."""
    n_rows = train.shape[0]
    means = np.array([math.fsum(column) / n_rows for column in train.T], dtype=np.float64)
    centred = train - means
    variances = [math.fsum(column * column) / n_rows for column in centred.T]
    stds = np.array([math.sqrt(variance) for variance in variances], dtype=np.float64)
    if not np.all(stds > 0.0):
        raise ValueError("a wine feature is constant on the train split")
    return means, stds


def build_wine() -> EvaluationSet:
    """Build the wine evaluation set (deterministic; ~0.05 s)."""
    bunch = load_wine()
    measurements = np.asarray(bunch.data, dtype=np.float64)
    targets = np.asarray(bunch.target, dtype=np.int64)
    if measurements.shape[1] != WINE_INPUT_DIM:
        raise ValueError(f"unexpected wine shape {measurements.shape}")
    n_rows = measurements.shape[0]
    order = np.random.default_rng(WINE_SPLIT_SEED).permutation(n_rows)
    n_train = int(n_rows * WINE_TRAIN_FRACTION)
    train_rows, test_rows = order[:n_train], order[n_train:]
    means, stds = _train_statistics(measurements[train_rows])
    features = ((measurements - means) / stds).astype(np.float32)
    return EvaluationSet(
        name=WINE_NAME,
        task="tabular-classification",
        metric="accuracy",
        train=split_dataset(features[train_rows], targets[train_rows]),
        test=split_dataset(features[test_rows], targets[test_rows]),
        input_dim=WINE_INPUT_DIM,
        num_classes=WINE_NUM_CLASSES,
    )
