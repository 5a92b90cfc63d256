"""The evaluation-set specification shared by miners (who train) and validators (who score).

An :class:`EvaluationSet` names a supervised classification task and carries two
``datasets.Dataset`` splits: ``train`` (published to miners) and ``test`` (the held-out split
validators sample from each epoch).  Both splits have exactly two columns:

* ``features``: a fixed-length list of length ``input_dim`` of ``feature_dtype`` values --
  ``float32`` (image / tabular sets) or ``int64`` token ids (text sets);
* ``label``: ``int64`` in ``[0, num_classes)``.

Invariants (checked in ``__post_init__``, violations raise :class:`InvalidEvaluationSet`):

* both splits have the two columns above, no nulls, the declared feature length, labels in range;
* ``input_dim >= 1`` and ``num_classes >= 2``; ``feature_dtype`` is ``"float32"`` or ``"int64"``;
* a set has a ``tokenizer`` if and only if its features are ``int64`` token ids; then
  ``tokenizer.max_tokens == input_dim`` and every id lies in ``[0, vocab_size)``; an
  ``int64`` split must be stored with an integer Arrow type (never truncated from floats).

Content addressing: :attr:`EvaluationSet.content_hash` (held-out split) and
:attr:`EvaluationSet.train_hash` are sha256 hex digests of a canonical byte encoding of the
split's rows.  Float sets without a tokenizer use encoding v1 (kept bit-identical: the digits
hash is pinned): a version tag, the row count and width as little-endian u64, the features as
little-endian ``float32`` row-major, then the labels as little-endian ``int64``.  Every other
set uses v2: a v2 tag, a feature-dtype tag, the same row count/width/features/labels (features
in their own little-endian dtype), then the tokenizer's vocabulary digest -- so changing the
vocabulary (or ``max_tokens``) changes both hashes even if no token id changed.  The encoding
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

from taoflow.evaluation_sets.tokenizer import WordTokenizer

FEATURES_COLUMN: Final = "features"
LABEL_COLUMN: Final = "label"
SPLITS: Final = ("train", "test")
FLOAT_FEATURES: Final = "float32"
TOKEN_FEATURES: Final = "int64"
FEATURE_DTYPES: Final = (FLOAT_FEATURES, TOKEN_FEATURES)
_HASH_DOMAIN: Final = b"taoflow.evaluation-set.v1\x00"
_HASH_DOMAIN_V2: Final = b"taoflow.evaluation-set.v2\x00"
_WIRE_DTYPES: Final = {FLOAT_FEATURES: "<f4", TOKEN_FEATURES: "<i8"}


class InvalidEvaluationSet(ValueError):
    """An evaluation set (or a split of it) violates the column/shape/range invariants."""


def _check_feature_dtype(feature_dtype: str) -> str:
    if feature_dtype not in FEATURE_DTYPES:
        raise InvalidEvaluationSet(
            f"feature_dtype must be one of {list(FEATURE_DTYPES)}, got {feature_dtype!r}"
        )
    return feature_dtype


def split_features(*, input_dim: int, feature_dtype: str = FLOAT_FEATURES) -> datasets.Features:
    """The ``datasets`` schema every split must have for ``input_dim`` features of a dtype."""
    return datasets.Features(
        {
            FEATURES_COLUMN: datasets.List(
                datasets.Value(_check_feature_dtype(feature_dtype)), length=input_dim
            ),
            LABEL_COLUMN: datasets.Value("int64"),
        }
    )


def dataset_arrays(
    split: datasets.Dataset, *, input_dim: int, feature_dtype: str = FLOAT_FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """Return fresh ``(features [n, input_dim], labels int64 [n])`` arrays of one split.

    Features are ``feature_dtype`` (``float32`` or ``int64``).  Reads the logical rows
    (respecting any ``select``/``shuffle`` indices mapping) straight from Arrow; raises
    :class:`InvalidEvaluationSet` on missing columns, nulls, ragged rows, or non-integer values
    where ``int64`` token ids are expected.
    """
    dtype = np.dtype(_check_feature_dtype(feature_dtype))
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
        features = np.zeros((0, input_dim), dtype=dtype)
    else:
        flat = feature_column.flatten()  # respects slice offsets, unlike `.values`
        if flat.null_count:
            raise InvalidEvaluationSet("split contains null feature values")
        if dtype == np.int64 and not pa.types.is_integer(flat.type):
            raise InvalidEvaluationSet(f"token-id features must be integers, got {flat.type}")
        values = flat.to_numpy(zero_copy_only=False)
        if values.size != n_rows * input_dim:
            raise InvalidEvaluationSet(
                f"features have {values.size} values, expected {n_rows} rows x {input_dim}"
            )
        features = values.astype(dtype, copy=False).reshape(n_rows, input_dim)
    labels = label_column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    # Fresh, writable, C-contiguous copies: callers may mutate them without touching the set.
    return np.array(features, dtype=dtype, order="C"), np.array(labels, dtype=np.int64)


def split_dataset(
    features: np.ndarray, labels: np.ndarray, *, feature_dtype: str = FLOAT_FEATURES
) -> datasets.Dataset:
    """A split in the canonical schema from ``features [n, input_dim]`` and ``labels [n]``."""
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise InvalidEvaluationSet(
            f"cannot build a split from features {features.shape} and labels {labels.shape}"
        )
    dtype = np.dtype(_check_feature_dtype(feature_dtype))
    return datasets.Dataset.from_dict(
        {
            FEATURES_COLUMN: np.asarray(features, dtype=dtype).tolist(),
            LABEL_COLUMN: np.asarray(labels, dtype=np.int64).tolist(),
        },
        features=split_features(input_dim=features.shape[1], feature_dtype=feature_dtype),
    )


def canonical_hash(
    *, features: np.ndarray, labels: np.ndarray, tokenizer: WordTokenizer | None = None
) -> str:
    """sha256 hex of the canonical encoding of ``(features, labels)`` (see the module docstring).

    Integer features (token ids) or a ``tokenizer`` select encoding v2; floating features
    without a tokenizer keep encoding v1.
    """
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise InvalidEvaluationSet(
            f"cannot hash features {features.shape} with labels {labels.shape}"
        )
    n_rows, width = features.shape
    is_tokens = np.issubdtype(features.dtype, np.integer)
    if not is_tokens and tokenizer is None:
        digest = hashlib.sha256(_HASH_DOMAIN)
        digest.update(struct.pack("<QQ", n_rows, width))
        digest.update(np.ascontiguousarray(features, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
        return digest.hexdigest()
    feature_dtype = TOKEN_FEATURES if is_tokens else FLOAT_FEATURES
    digest = hashlib.sha256(_HASH_DOMAIN_V2)
    wire_dtype = _WIRE_DTYPES[feature_dtype]
    digest.update(wire_dtype.encode("ascii") + b"\x00")
    digest.update(struct.pack("<QQ", n_rows, width))
    digest.update(np.ascontiguousarray(features, dtype=wire_dtype).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    if tokenizer is None:
        digest.update(b"\x00")
    else:
        digest.update(b"\x01" + tokenizer.vocabulary_digest())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class EvaluationSet:
    """A classification task with a published train split and a held-out test split.

    Equality is identity (``eq=False``): compare :attr:`content_hash` to compare contents.
    ``feature_dtype`` is ``"float32"`` (default) or ``"int64"`` (token ids, with ``tokenizer``).
    """

    name: str
    task: str
    metric: str
    train: datasets.Dataset
    test: datasets.Dataset
    input_dim: int
    num_classes: int
    feature_dtype: str = FLOAT_FEATURES
    tokenizer: WordTokenizer | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidEvaluationSet("evaluation set name must be non-empty")
        if self.input_dim < 1:
            raise InvalidEvaluationSet(f"input_dim must be >= 1, got {self.input_dim}")
        if self.num_classes < 2:
            raise InvalidEvaluationSet(f"num_classes must be >= 2, got {self.num_classes}")
        _check_feature_dtype(self.feature_dtype)
        is_tokens = self.feature_dtype == TOKEN_FEATURES
        if is_tokens != (self.tokenizer is not None):
            raise InvalidEvaluationSet(
                f"{self.name}: a tokenizer is required for, and only for, int64 token features"
            )
        if self.tokenizer is not None and self.tokenizer.max_tokens != self.input_dim:
            raise InvalidEvaluationSet(
                f"{self.name}: tokenizer max_tokens {self.tokenizer.max_tokens} != input_dim "
                f"{self.input_dim}"
            )
        for split_name in SPLITS:
            features, labels = self.arrays(split_name)
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise InvalidEvaluationSet(
                    f"{self.name}/{split_name}: labels outside [0, {self.num_classes})"
                )
            vocab_size = self.vocab_size
            if (
                vocab_size is not None
                and features.size
                and (features.min() < 0 or features.max() >= vocab_size)
            ):
                raise InvalidEvaluationSet(
                    f"{self.name}/{split_name}: token ids outside [0, {vocab_size})"
                )

    @property
    def vocab_size(self) -> int | None:
        """Number of token ids of a text set (``None`` for float features)."""
        return None if self.tokenizer is None else self.tokenizer.vocab_size

    def split(self, split: str) -> datasets.Dataset:
        """The ``datasets.Dataset`` for ``split`` ("train" or "test")."""
        if split == "train":
            return self.train
        if split == "test":
            return self.test
        raise InvalidEvaluationSet(f"unknown split {split!r}; expected one of {list(SPLITS)}")

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(features [n, input_dim] of feature_dtype, labels int64 [n])`` of ``split``."""
        return dataset_arrays(
            self.split(split), input_dim=self.input_dim, feature_dtype=self.feature_dtype
        )

    @cached_property
    def content_hash(self) -> str:
        """sha256 hex of the held-out (test) split's canonical content (+ vocabulary)."""
        features, labels = self.arrays("test")
        return canonical_hash(features=features, labels=labels, tokenizer=self.tokenizer)

    @cached_property
    def train_hash(self) -> str:
        """sha256 hex of the train split's canonical content (+ vocabulary)."""
        features, labels = self.arrays("train")
        return canonical_hash(features=features, labels=labels, tokenizer=self.tokenizer)
