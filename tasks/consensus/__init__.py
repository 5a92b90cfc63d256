"""Yuma consensus (shared/yuma-spec.md §4): DuckDB SQL production epoch plus a NumPy reference.

Public API
----------
* :class:`YumaParams`, :class:`InvalidHyperparameter` — hyper-parameters with the chain's defaults.
* :class:`EpochInputs`, :class:`EpochState`, :class:`EpochOutputs` — the epoch's data;
  :data:`NO_COMMIT_BLOCK` — the "no unexpired commit" value of ``EpochInputs.commit_block``.
* :func:`run_epoch` — production implementation (DuckDB SQL, sparse, float64).
* :func:`reference_epoch` — slow dense NumPy reference used to test ``run_epoch``.

Invariant: both epoch functions take ``(inputs, params, state)`` and return
``(outputs, next_state)`` with identical semantics, on both bond paths (legacy and Yuma3, with or
without liquid alpha) and with or without the commit-reveal mask.
"""

from taoflow.tasks.consensus.params import InvalidHyperparameter, YumaParams
from taoflow.tasks.consensus.reference import reference_epoch
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.types import NO_COMMIT_BLOCK, EpochInputs, EpochOutputs, EpochState

__all__ = [
    "NO_COMMIT_BLOCK",
    "EpochInputs",
    "EpochOutputs",
    "EpochState",
    "InvalidHyperparameter",
    "YumaParams",
    "reference_epoch",
    "run_epoch",
]
