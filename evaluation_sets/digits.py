"""The "digits" evaluation set: scikit-learn's packaged 8x8 handwritten digits (1,797 images).

Purpose: a small, real, offline image-classification task (64 features, 10 classes) for miners
to train on and validators to score with.

Invariants / determinism:

* pixel values (integers 0..16) are divided by 16, so every feature is an exact ``float32`` in
  ``[0, 1]``;
* the split is a fixed permutation from ``numpy.random.default_rng(0)``: the first
  ``floor(0.8 * n)`` = 1,437 permuted rows are ``train``, the remaining 360 are ``test``;
* no network access; the content hash of the result is stable across runs and processes (it is
  pinned by ``tests/test_evaluation_sets.py``-style checks, and a change in scikit-learn's
  packaged data would show up as a different :attr:`EvaluationSet.content_hash`).
"""

from __future__ import annotations

from typing import Final

import datasets
import numpy as np
from sklearn.datasets import load_digits

from taoflow.evaluation_sets.base import (
    FEATURES_COLUMN,
    LABEL_COLUMN,
    EvaluationSet,
    split_features,
)

DIGITS_NAME: Final = "digits"
DIGITS_INPUT_DIM: Final = 64
DIGITS_NUM_CLASSES: Final = 10
DIGITS_SPLIT_SEED: Final = 0
DIGITS_TRAIN_FRACTION: Final = 0.8
_PIXEL_MAX: Final = 16.0


def _to_dataset(features: np.ndarray, labels: np.ndarray) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {FEATURES_COLUMN: features.tolist(), LABEL_COLUMN: labels.tolist()},
        features=split_features(input_dim=features.shape[1]),
    )


def build_digits() -> EvaluationSet:
    """Build the digits evaluation set (deterministic; ~0.1 s)."""
    bunch = load_digits()
    pixels = np.asarray(bunch.data, dtype=np.float64)
    targets = np.asarray(bunch.target, dtype=np.int64)
    if pixels.shape[1] != DIGITS_INPUT_DIM:
        raise ValueError(f"unexpected digits shape {pixels.shape}")
    features = (pixels / _PIXEL_MAX).astype(np.float32)
    n_rows = features.shape[0]
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n_rows)
    n_train = int(n_rows * DIGITS_TRAIN_FRACTION)
    train_rows, test_rows = order[:n_train], order[n_train:]
    return EvaluationSet(
        name=DIGITS_NAME,
        task="image-classification",
        metric="accuracy",
        train=_to_dataset(features[train_rows], targets[train_rows]),
        test=_to_dataset(features[test_rows], targets[test_rows]),
        input_dim=DIGITS_INPUT_DIM,
        num_classes=DIGITS_NUM_CLASSES,
    )
