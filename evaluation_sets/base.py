"""The evaluation-set specification shared by miners (who train) and validators (who score).

An :class:`EvaluationSet` names a supervised classification task and carries two
``datasets.Dataset`` splits: ``train`` (published to miners) and ``test`` (the held-out split
validators sample from each epoch).  Both splits have exactly two columns:

* ``features``: a fixed-length list of ``float32`` of length ``input_dim``;
* ``label``: ``int64`` in ``[0, num_classes)``.

Invariants (checked in ``__post_init__``, violations raise :class:`InvalidEvaluationSet`):

* both splits have the two columns above, no nulls, the declared feature length, labels in range;
* ``input_dim >= 1`` and ``num_classes >= 2``.

Content addressing: :attr:`EvaluationSet.content_hash` (held-out split) and
:attr:`EvaluationSet.train_hash` are sha256 hex digests of a canonical byte encoding of the
split's rows -- a version tag, the row count and width as little-endian u64, the features as
little-endian ``float32`` row-major, then the labels as little-endian ``int64``.  The encoding
is independent of Arrow chunking, slicing, schema metadata, dataset name, process and platform,
so two builds of the same data always hash the same, and any change of a value, of the row
order or of the split membership changes the hash.

Fault model: the data is trusted (packaged with the library or pinned by its content hash); the
checks here catch builder bugs, not adversaries.  Hashes are memoised per instance, which is
safe because the instance is frozen and ``datasets.Dataset`` objects are immutable.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import datasets
import numpy as np
import pyarrow as pa

FEATURES_COLUMN: Final = "features"
LABEL_COLUMN: Final = "label"
SPLITS: Final = ("train", "test")
_HASH_DOMAIN: Final = b"taoflow.evaluation-set.v1\x00"


class InvalidEvaluationSet(ValueError):
    """An evaluation set (or a split of it) violates the column/shape/range invariants."""


def split_features(*, input_dim: int) -> datasets.Features:
    """The ``datasets`` schema every split must have for a task with ``input_dim`` features."""
    return datasets.Features(
        {
            FEATURES_COLUMN: datasets.List(datasets.Value("float32"), length=input_dim),
            LABEL_COLUMN: datasets.Value("int64"),
        }
    )


def dataset_arrays(split: datasets.Dataset, *, input_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Return fresh ``(features float32 [n, input_dim], labels int64 [n])`` arrays of one split.

    Reads the logical rows (respecting any ``select``/``shuffle`` indices mapping) straight from
    Arrow; raises :class:`InvalidEvaluationSet` on missing columns, nulls or ragged rows.
    """
    missing = {FEATURES_COLUMN, LABEL_COLUMN} - set(split.column_names)
    if missing:
        raise InvalidEvaluationSet(f"split is missing column(s) {sorted(missing)}")
    table: pa.Table = split.with_format("arrow")[:]
    feature_column = table.column(FEATURES_COLUMN).combine_chunks()
    label_column = table.column(LABEL_COLUMN).combine_chunks()
    if feature_column.null_count or label_column.null_count:
        raise InvalidEvaluationSet("split contains null features or labels")
    n_rows = len(table)
    if n_rows == 0:
        features = np.zeros((0, input_dim), dtype=np.float32)
    else:
        flat = feature_column.flatten()  # respects slice offsets, unlike `.values`
        if flat.null_count:
            raise InvalidEvaluationSet("split contains null feature values")
        values = flat.to_numpy(zero_copy_only=False)
        if values.size != n_rows * input_dim:
            raise InvalidEvaluationSet(
                f"features have {values.size} values, expected {n_rows} rows x {input_dim}"
            )
        features = values.astype(np.float32, copy=False).reshape(n_rows, input_dim)
    labels = label_column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    # Fresh, writable, C-contiguous copies: callers may mutate them without touching the set.
    return np.array(features, dtype=np.float32, order="C"), np.array(labels, dtype=np.int64)


def canonical_hash(*, features: np.ndarray, labels: np.ndarray) -> str:
    """sha256 hex of the canonical encoding of ``(features, labels)`` (see the module docstring)."""
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise InvalidEvaluationSet(
            f"cannot hash features {features.shape} with labels {labels.shape}"
        )
    n_rows, width = features.shape
    digest = hashlib.sha256(_HASH_DOMAIN)
    digest.update(struct.pack("<QQ", n_rows, width))
    digest.update(np.ascontiguousarray(features, dtype="<f4").tobytes())
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class EvaluationSet:
    """A classification task with a published train split and a held-out test split.

    Equality is identity (``eq=False``): compare :attr:`content_hash` to compare contents.
    """

    name: str
    task: str
    metric: str
    train: datasets.Dataset
    test: datasets.Dataset
    input_dim: int
    num_classes: int

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidEvaluationSet("evaluation set name must be non-empty")
        if self.input_dim < 1:
            raise InvalidEvaluationSet(f"input_dim must be >= 1, got {self.input_dim}")
        if self.num_classes < 2:
            raise InvalidEvaluationSet(f"num_classes must be >= 2, got {self.num_classes}")
        for split_name in SPLITS:
            _, labels = self.arrays(split_name)
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise InvalidEvaluationSet(
                    f"{self.name}/{split_name}: labels outside [0, {self.num_classes})"
                )

    def split(self, split: str) -> datasets.Dataset:
        """The ``datasets.Dataset`` for ``split`` ("train" or "test")."""
        if split == "train":
            return self.train
        if split == "test":
            return self.test
        raise InvalidEvaluationSet(f"unknown split {split!r}; expected one of {list(SPLITS)}")

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(features float32 [n, input_dim], labels int64 [n])`` of ``split``."""
        return dataset_arrays(self.split(split), input_dim=self.input_dim)

    @cached_property
    def content_hash(self) -> str:
        """sha256 hex of the held-out (test) split's canonical content."""
        features, labels = self.arrays("test")
        return canonical_hash(features=features, labels=labels)

    @cached_property
    def train_hash(self) -> str:
        """sha256 hex of the train split's canonical content."""
        features, labels = self.arrays("train")
        return canonical_hash(features=features, labels=labels)
