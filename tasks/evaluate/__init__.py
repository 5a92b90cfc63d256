"""Evaluation stage: score submitted models on the epoch's sample of the held-out split.

``runner`` and ``sampling`` import only torch/numpy/safetensors (bare GPU workers); the Dask
fan-out lives in ``tasks.evaluate.fanout`` and is deliberately not imported here. Importing this
package loads neither torch nor the runner: the names below are resolved on first use, so code
that only derives seeds or samples (gather, audits of stored epochs) starts without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EvalJob": "taoflow.tasks.evaluate.runner",
    "EvalResult": "taoflow.tasks.evaluate.runner",
    "evaluate_job": "taoflow.tasks.evaluate.runner",
    "derive_seed": "taoflow.tasks.evaluate.sampling",
    "sample_indices": "taoflow.tasks.evaluate.sampling",
}

__all__ = ["EvalJob", "EvalResult", "derive_seed", "evaluate_job", "sample_indices"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
