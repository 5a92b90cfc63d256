"""Evaluation stage: score submitted models on the epoch's sample of the held-out split.

``runner`` and ``sampling`` import only torch/numpy/safetensors (bare GPU workers); the Dask
fan-out lives in ``tasks.evaluate.fanout`` and is deliberately not imported here.
"""

from taoflow.tasks.evaluate.runner import EvalJob, EvalResult, evaluate_job
from taoflow.tasks.evaluate.sampling import derive_seed, sample_indices

__all__ = ["EvalJob", "EvalResult", "derive_seed", "evaluate_job", "sample_indices"]
