"""The "reviews" (text) and "wine" (tabular) sets, our word tokenizer, and Hub ids offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from taoflow.evaluation_sets import (
    EvaluationSet,
    EvaluationSetUnavailable,
    InvalidEvaluationSet,
    UnknownEvaluationSet,
    WordTokenizer,
    load_evaluation_set,
)
from taoflow.evaluation_sets.base import canonical_hash, split_dataset, split_features
from taoflow.evaluation_sets.reviews import REVIEWS_MAX_TOKENS, REVIEWS_VOCAB_SIZE, _load_frame
from taoflow.evaluation_sets.tokenizer import PAD_ID, UNK_ID, InvalidTokenizer, words
from taoflow.evaluation_sets.wine import build_wine

REPO_ROOT = Path(__file__).resolve().parents[1]
# Pinned: a change here means the packaged data, the tokenizer or the canonical encoding changed.
PINNED = {
    "wine": (
        "fd5c1110c1b1f87713c0991f210c56d089938a9c05c033c70a4deff2e0ad2b29",
        "36365e1ed7ebcecccf05c91eacee10b114582be804c2250b7fdc07afa1effaaf",
    ),
    "reviews": (
        "2ad7efbb21c52b5cff3681766816d68ade0ad2f11214e4f670bb01793470b396",
        "3d17c1afbc2e6fed5eb94772348d706672e8d00a22ee821b144a583afd221f76",
    ),
}


@pytest.fixture(scope="module")
def reviews() -> EvaluationSet:
    return load_evaluation_set("reviews")


@pytest.fixture(scope="module")
def wine() -> EvaluationSet:
    return load_evaluation_set("wine")


# --- hashes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PINNED))
def test_hashes_are_pinned(name: str) -> None:
    evaluation_set = load_evaluation_set(name)
    assert (evaluation_set.content_hash, evaluation_set.train_hash) == PINNED[name]


def test_hashes_are_stable_across_processes() -> None:
    code = (
        "from taoflow.evaluation_sets import load_evaluation_set as l\n"
        "for n in ('digits', 'reviews', 'wine'):\n"
        "    s = l(n); print(n, s.content_hash, s.train_hash)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "777"}
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    ).stdout.decode()
    here = {
        n: (load_evaluation_set(n).content_hash, load_evaluation_set(n).train_hash) for n in PINNED
    }
    there = {line.split()[0]: tuple(line.split()[1:]) for line in output.strip().splitlines()}
    assert there.pop("digits")[0] == load_evaluation_set("digits").content_hash
    assert there == here == PINNED


def test_rebuild_gives_the_same_hash_and_a_new_object(wine: EvaluationSet) -> None:
    again = build_wine()
    assert again is not wine and again.content_hash == wine.content_hash


# --- reviews ---------------------------------------------------------------------------------


def test_reviews_metadata_and_arrays(reviews: EvaluationSet) -> None:
    assert (reviews.name, reviews.task, reviews.metric) == (
        "reviews",
        "text-classification",
        "accuracy",
    )
    assert (len(reviews.train), len(reviews.test)) == (4000, 1000)
    assert (reviews.input_dim, reviews.num_classes) == (REVIEWS_MAX_TOKENS, 2)
    assert reviews.feature_dtype == "int64" and reviews.vocab_size == REVIEWS_VOCAB_SIZE
    assert reviews.test.features == split_features(input_dim=128, feature_dtype="int64")
    features, labels = reviews.arrays("test")
    assert features.dtype == np.int64 and features.shape == (1000, 128)
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    assert features.min() >= 0 and features.max() < REVIEWS_VOCAB_SIZE
    assert (features == UNK_ID).any() and (features == PAD_ID).any()
    assert float(np.mean(labels == 0)) == pytest.approx(0.658)  # "great" is the majority


def test_reviews_vocabulary_comes_from_the_train_split_only(reviews: EvaluationSet) -> None:
    train_texts, _ = _load_frame("train")
    test_texts, _ = _load_frame("test")
    assert reviews.tokenizer is not None
    from_train = WordTokenizer.fit(train_texts, vocab_size=REVIEWS_VOCAB_SIZE, max_tokens=128)
    from_all = WordTokenizer.fit(
        [*train_texts, *test_texts], vocab_size=REVIEWS_VOCAB_SIZE, max_tokens=128
    )
    assert reviews.tokenizer.vocabulary == from_train.vocabulary
    assert from_all.vocabulary != from_train.vocabulary
    train_words = {word for text in train_texts for word in words(text)}
    assert set(reviews.tokenizer.vocabulary[2:]) <= train_words
    # The features are exactly the tokenizer's encoding of the packaged texts.
    assert np.array_equal(reviews.arrays("test")[0], from_train.encode_batch(test_texts))


def test_vocabulary_is_part_of_the_content_hash(reviews: EvaluationSet) -> None:
    assert reviews.tokenizer is not None
    vocabulary = list(reviews.tokenizer.vocabulary)
    vocabulary[2], vocabulary[3] = vocabulary[3], vocabulary[2]
    swapped = EvaluationSet(
        name="reviews",
        task=reviews.task,
        metric=reviews.metric,
        train=reviews.train,
        test=reviews.test,
        input_dim=reviews.input_dim,
        num_classes=reviews.num_classes,
        feature_dtype="int64",
        tokenizer=WordTokenizer(vocabulary=tuple(vocabulary), max_tokens=128),
    )
    assert np.array_equal(swapped.arrays("test")[0], reviews.arrays("test")[0])
    assert swapped.content_hash != reviews.content_hash
    assert swapped.train_hash != reviews.train_hash
    features, labels = reviews.arrays("test")
    assert canonical_hash(features=features, labels=labels) != reviews.content_hash


def test_token_sets_are_checked(reviews: EvaluationSet) -> None:
    features, labels = reviews.arrays("test")
    common = {
        "name": "t",
        "task": "text-classification",
        "metric": "accuracy",
        "train": reviews.train,
        "input_dim": 128,
        "num_classes": 2,
    }
    tokenizer = reviews.tokenizer
    with pytest.raises(InvalidEvaluationSet, match="tokenizer"):
        EvaluationSet(**common, test=reviews.test, feature_dtype="int64")  # type: ignore[arg-type]
    with pytest.raises(InvalidEvaluationSet, match="tokenizer"):
        EvaluationSet(**common, test=reviews.test, tokenizer=tokenizer)  # type: ignore[arg-type]
    out_of_range = features.copy()
    out_of_range[0, 0] = REVIEWS_VOCAB_SIZE
    bad = split_dataset(out_of_range, labels, feature_dtype="int64")
    with pytest.raises(InvalidEvaluationSet, match="token ids outside"):
        EvaluationSet(**common, test=bad, feature_dtype="int64", tokenizer=tokenizer)  # type: ignore[arg-type]
    floats = split_dataset(features.astype(np.float32), labels)
    with pytest.raises(InvalidEvaluationSet, match="must be integers"):
        EvaluationSet(**common, test=floats, feature_dtype="int64", tokenizer=tokenizer)  # type: ignore[arg-type]
    with pytest.raises(InvalidEvaluationSet, match="feature_dtype"):
        EvaluationSet(**common, test=reviews.test, feature_dtype="int8")  # type: ignore[arg-type]


# --- tokenizer -------------------------------------------------------------------------------


def test_words_rule() -> None:
    assert words("Don't STOP<br />me -- café 42x!") == ["don't", "stop", "br", "me", "caf", "42x"]
    assert words("\u212a ÉTÉ") == ["t"]  # the Kelvin sign and É are not ASCII letters
    assert words("") == [] and words("  ...  ") == []


def test_fit_ranks_by_count_then_word_and_ignores_order() -> None:
    texts = ["b a c", "c b", "c d d", "e"]
    tokenizer = WordTokenizer.fit(texts, vocab_size=5, max_tokens=4)
    # counts: c=3, b=2, d=2, a=1, e=1 -> top 3 with ties by word
    assert tokenizer.vocabulary == ("<pad>", "<unk>", "c", "b", "d")
    shuffled = WordTokenizer.fit(list(reversed(texts)), vocab_size=5, max_tokens=4)
    assert shuffled.vocabulary == tokenizer.vocabulary
    assert shuffled.vocabulary_digest() == tokenizer.vocabulary_digest()
    assert WordTokenizer.fit(texts, vocab_size=5, max_tokens=5).vocabulary_digest() != (
        tokenizer.vocabulary_digest()
    )
    small = WordTokenizer.fit(["x"], vocab_size=100, max_tokens=2)
    assert small.vocabulary == ("<pad>", "<unk>", "x") and small.vocab_size == 3


def test_encode_truncates_pads_and_maps_unknown_words() -> None:
    tokenizer = WordTokenizer.fit(["c c c b b d"], vocab_size=5, max_tokens=4)
    assert tokenizer.encode("C b zzz") == [2, 3, UNK_ID, PAD_ID]
    assert tokenizer.encode("c b d c b d") == [2, 3, 4, 2]  # keeps the head
    assert tokenizer.encode("") == [PAD_ID] * 4
    batch = tokenizer.encode_batch(["c", "b d"])
    assert batch.dtype == np.int64 and batch.tolist() == [[2, 0, 0, 0], [3, 4, 0, 0]]
    assert tokenizer.encode_batch([]).shape == (0, 4)


@pytest.mark.parametrize(
    ("vocabulary", "max_tokens", "needle"),
    [
        (("<pad>", "<unk>", "a"), 0, "max_tokens"),
        (("<unk>", "<pad>", "a"), 4, "start with"),
        (("<pad>", "<unk>", "a", "a"), 4, "duplicate"),
        (("<pad>", "<unk>", "two words"), 4, "not a word"),
        (("<pad>", "<unk>", "<pad>"), 4, "duplicate|not a word"),
    ],
)
def test_invalid_tokenizers(vocabulary: tuple[str, ...], max_tokens: int, needle: str) -> None:
    with pytest.raises(InvalidTokenizer, match=needle):
        WordTokenizer(vocabulary=vocabulary, max_tokens=max_tokens)
    with pytest.raises(InvalidTokenizer, match="vocab_size"):
        WordTokenizer.fit(["a"], vocab_size=2, max_tokens=4)


# --- wine ------------------------------------------------------------------------------------


def test_wine_is_standardised_with_train_statistics(wine: EvaluationSet) -> None:
    assert (wine.name, wine.task, wine.metric) == ("wine", "tabular-classification", "accuracy")
    assert (len(wine.train), len(wine.test), wine.input_dim, wine.num_classes) == (142, 36, 13, 3)
    assert wine.feature_dtype == "float32" and wine.vocab_size is None
    train_x, train_y = wine.arrays("train")
    test_x, _ = wine.arrays("test")
    assert train_x.dtype == np.float32 and test_x.shape == (36, 13)
    assert np.allclose(train_x.astype(np.float64).mean(axis=0), 0.0, atol=1e-6)
    assert np.allclose(train_x.astype(np.float64).std(axis=0), 1.0, atol=1e-5)
    # The held-out rows did not contribute: their mean is not re-centred to zero.
    assert not np.allclose(test_x.mean(axis=0), 0.0, atol=1e-3)
    assert set(np.unique(train_y)) == {0, 1, 2}


# --- registry / Hub ids ----------------------------------------------------------------------


def test_hub_id_fails_fast_offline() -> None:
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        pytest.skip("needs HF_HUB_OFFLINE=1 (set by conftest)")
    started = time.monotonic()
    with pytest.raises(EvaluationSetUnavailable) as info:
        load_evaluation_set("hub:some-owner/some-set")
    assert time.monotonic() - started < 5.0
    assert isinstance(info.value, UnknownEvaluationSet) and isinstance(info.value, KeyError)
    message = str(info.value)
    assert "hub:some-owner/some-set" in message and "unavailable" in message
    assert "HF_HUB_OFFLINE" in message


@pytest.mark.parametrize(
    "name", ["hub:", "hub:../etc", "hub:a/b/c", "hub:/abs", "hub:a/..", "hub:a"]
)
def test_malformed_hub_ids_are_unknown(name: str) -> None:
    with pytest.raises(UnknownEvaluationSet) as info:
        load_evaluation_set(name)
    assert not isinstance(info.value, EvaluationSetUnavailable)
    assert "hub:<owner>/<name>" in str(info.value)


def test_local_path_never_shadows_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EvaluationSetUnavailable, match="shadow"):
        load_evaluation_set("hub:owner/name")
