"""Yuma consensus (shared/yuma-spec.md §4): DuckDB SQL production epoch plus a NumPy reference.

Public API
----------
* :class:`YumaParams`, :class:`InvalidHyperparameter` — hyper-parameters with the chain's defaults.
* :class:`EpochInputs`, :class:`EpochState`, :class:`EpochOutputs` — the epoch's data.
* :func:`run_epoch` — production implementation (DuckDB SQL, sparse, float64).
* :func:`reference_epoch` — slow dense NumPy reference used to test ``run_epoch``.

Invariant: both epoch functions take ``(inputs, params, state)`` and return
``(outputs, next_state)`` with identical semantics; only the legacy bond path (``yuma3=False``)
is implemented so far.
"""

from tasks.consensus.params import InvalidHyperparameter, YumaParams
from tasks.consensus.reference import reference_epoch
from tasks.consensus.sql import run_epoch
from tasks.consensus.types import EpochInputs, EpochOutputs, EpochState

__all__ = [
    "EpochInputs",
    "EpochOutputs",
    "EpochState",
    "InvalidHyperparameter",
    "YumaParams",
    "reference_epoch",
    "run_epoch",
]
