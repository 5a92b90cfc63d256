"""Evaluation sets: deterministic builds, stable content hashes, array views, registry errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from taoflow.evaluation_sets import (
    EvaluationSet,
    InvalidEvaluationSet,
    UnknownEvaluationSet,
    load_evaluation_set,
)
from taoflow.evaluation_sets.base import split_features
from taoflow.evaluation_sets.digits import build_digits

REPO_ROOT = Path(__file__).resolve().parents[1]
# Pinned: a change here means the held-out data (or its canonical encoding) changed.
DIGITS_TEST_HASH = "dd7d44ba2ca74755b12521d8c8fc439c1144fb1dc2ef012b6d068e9cacdc3d33"
DIGITS_TRAIN_HASH = "3feaef2081054453b18b490a5a8d78bb0909b1d5a58d305e6deb7fb5cb289c77"


@pytest.fixture(scope="module")
def digits() -> EvaluationSet:
    return load_evaluation_set("digits")


def test_hash_is_stable_across_builds(digits: EvaluationSet) -> None:
    again = build_digits()
    assert again is not digits
    assert again.content_hash == digits.content_hash == DIGITS_TEST_HASH
    assert again.train_hash == digits.train_hash == DIGITS_TRAIN_HASH
    assert digits.content_hash != digits.train_hash


def test_hash_is_stable_across_processes(digits: EvaluationSet) -> None:
    code = (
        "from taoflow.evaluation_sets import load_evaluation_set as l; s = l('digits'); "
        "print(s.content_hash, s.train_hash)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "12345"}
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    ).stdout.decode()
    assert output.split() == [digits.content_hash, digits.train_hash]


def test_split_sizes_and_metadata(digits: EvaluationSet) -> None:
    assert (len(digits.train), len(digits.test)) == (1437, 360)
    assert digits.name == "digits"
    assert digits.task == "image-classification"
    assert digits.metric == "accuracy"
    assert (digits.input_dim, digits.num_classes) == (64, 10)
    assert digits.train.features == split_features(input_dim=64)
    assert digits.test.features == split_features(input_dim=64)


def test_splits_partition_the_data(digits: EvaluationSet) -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    train_x, _ = digits.arrays("train")
    test_x, _ = digits.arrays("test")
    all_rows = {row.tobytes() for row in (raw.data / 16.0).astype(np.float32)}
    seen = [row.tobytes() for row in np.concatenate([train_x, test_x])]
    assert len(seen) == raw.data.shape[0]
    assert set(seen) == all_rows


@pytest.mark.parametrize(("split", "rows"), [("train", 1437), ("test", 360)])
def test_arrays_dtype_shape_and_range(digits: EvaluationSet, split: str, rows: int) -> None:
    features, labels = digits.arrays(split)
    assert features.dtype == np.float32 and features.shape == (rows, 64)
    assert labels.dtype == np.int64 and labels.shape == (rows,)
    assert features.flags.c_contiguous and features.flags.writeable
    assert features.min() >= 0.0 and features.max() <= 1.0
    assert set(np.unique(labels)) == set(range(10))
    features[:] = -1.0  # a fresh copy: mutating it must not touch the set
    assert digits.arrays(split)[0].min() >= 0.0


def test_unknown_split_is_rejected(digits: EvaluationSet) -> None:
    with pytest.raises(InvalidEvaluationSet, match="unknown split"):
        digits.arrays("validation")


def test_unknown_name_lists_known_sets() -> None:
    with pytest.raises(UnknownEvaluationSet) as info:
        load_evaluation_set("imagenet")
    assert isinstance(info.value, KeyError)
    assert info.value.known == ["digits", "reviews", "wine"]
    assert "imagenet" in str(info.value) and "digits" in str(info.value)


def test_registry_caches_per_process() -> None:
    assert load_evaluation_set("digits") is load_evaluation_set("digits")


def _with_test(base: EvaluationSet, test: datasets.Dataset) -> EvaluationSet:
    return EvaluationSet(
        name=base.name,
        task=base.task,
        metric=base.metric,
        train=base.train,
        test=test,
        input_dim=base.input_dim,
        num_classes=base.num_classes,
    )


def test_hash_ignores_chunking_but_not_content(digits: EvaluationSet) -> None:
    halves = [digits.test.select(range(0, 100)), digits.test.select(range(100, 360))]
    rechunked = _with_test(digits, datasets.concatenate_datasets(halves))
    assert rechunked.content_hash == digits.content_hash

    features, labels = digits.arrays("test")
    labels[0] = (labels[0] + 1) % 10
    relabelled = datasets.Dataset.from_dict(
        {"features": features.tolist(), "label": labels.tolist()},
        features=split_features(input_dim=64),
    )
    assert _with_test(digits, relabelled).content_hash != digits.content_hash

    reordered = _with_test(digits, digits.test.select(range(359, -1, -1)))
    assert reordered.content_hash != digits.content_hash


def test_invalid_sets_are_refused(digits: EvaluationSet) -> None:
    features, labels = digits.arrays("test")
    labels[0] = 10
    bad = datasets.Dataset.from_dict(
        {"features": features.tolist(), "label": labels.tolist()},
        features=split_features(input_dim=64),
    )
    with pytest.raises(InvalidEvaluationSet, match="labels outside"):
        _with_test(digits, bad)
    with pytest.raises(InvalidEvaluationSet, match="missing column"):
        _with_test(digits, digits.test.remove_columns("label"))
    with pytest.raises(InvalidEvaluationSet, match="num_classes"):
        EvaluationSet(
            name="x",
            task="t",
            metric="accuracy",
            train=digits.train,
            test=digits.test,
            input_dim=64,
            num_classes=1,
        )
