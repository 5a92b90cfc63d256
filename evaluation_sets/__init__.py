"""Evaluation sets: named, content-hashed classification tasks built from packaged data.

Imports only ``datasets``/``pyarrow``/``numpy``/``scikit-learn`` -- never prefect, dask or mlflow.
"""

from evaluation_sets.base import EvaluationSet, InvalidEvaluationSet
from evaluation_sets.registry import (
    UnknownEvaluationSet,
    known_evaluation_sets,
    load_evaluation_set,
)

__all__ = [
    "EvaluationSet",
    "InvalidEvaluationSet",
    "UnknownEvaluationSet",
    "known_evaluation_sets",
    "load_evaluation_set",
]
