"""Batched evaluation: models of one architecture run together in one vmapped pass (worker side).

Purpose: :func:`evaluate_group` scores a list of submissions on one sample.  Every model is
loaded and validated on its own (:func:`tasks.evaluate.runner.load_job`, i.e. ``load_submission``
behind capped, non-blocking reads), the valid ones are grouped by identical architecture (the
canonical config JSON) and each group is evaluated in stacks of at most ``group_models_max``
models with ``torch.func.stack_module_state`` + ``torch.func.functional_call`` + ``torch.vmap``:
one forward pass per stack and row chunk instead of one per model.

Invariants:

* one :class:`EvalResult` per job, in the order of ``jobs``; duplicate uids raise ``ValueError``;
* every result equals what :func:`tasks.evaluate.runner.evaluate_job` returns for that job alone
  on the same inputs, ``batch_size`` and device -- score, error, digest, the per-row
  ``correct`` bits and ``predictions``.  The batched logits are bit-identical to the
  single-model ones on the CPUs we measured, but kernels may round differently for stacked
  shapes (another BLAS, cuBLAS batched GEMM, grouped cuDNN convolutions), so the result does
  not rely on it: any row chunk in which a model's top-2 logits are within
  ``NEAR_TIE_RELATIVE`` of each other (relative to the larger magnitude, at least 1) -- exact
  ties included -- is recomputed with that model alone, exactly as the reference does, so a
  rounding difference can never flip an argmax.  Argmax ties resolve to the lowest class in
  both paths;
* rows are processed in the same ``batch_size`` chunks as the reference, and the stacks and their
  order depend only on the jobs, never on the worker, so results are reproducible anywhere;
* on CUDA, TF32 is switched off for the duration (both here and in the reference path), so every
  path computes in float32.

Fault model (every artifact is hostile; see ``runner``):

* a model that fails to read, parse, validate or load fails alone, with the same reason the
  single-model path gives, before any stacking;
* a model whose stacked logits are non-finite or of absurd magnitude (``LOGIT_ABS_SAFE``) is
  re-run alone through the reference path, which fails it with ``bad_output:`` -- the rest of its
  stack keeps its batched result;
* if the batched pass of a stack raises (or returns the wrong shape), each of its members is
  re-run alone, so one model can only ever fail itself;
* caller errors (malformed features/labels/device, duplicate uids, ``group_models_max < 1``)
  raise ``ValueError``; no timeout here -- ``tasks.evaluate.fanout`` bounds wall time.

Imports only torch, numpy and the standard library (plus ``tasks.models``/``tasks.evaluate``
runner code): never prefect, dask, mlflow or duckdb -- this runs on bare GPU workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import torch
from torch.func import functional_call, stack_module_state

from taoflow.tasks.evaluate.runner import (
    EvalJob,
    EvalResult,
    LoadedModel,
    check_inputs,
    evaluate_loaded,
    full_precision,
    load_job,
    predicted_labels,
    resolve_device,
    success_result,
)
from taoflow.tasks.models.families import FamilyLimits, build_model

GROUP_MODELS_MAX: Final = 64
"""Models stacked into one vmapped pass (bounds the stacked activations' memory)."""
NEAR_TIE_RELATIVE: Final = 1e-5
"""Top-2 logit margin, relative to max(1, |top logit|), under which a row is re-checked alone."""
LOGIT_ABS_SAFE: Final = 1e30
"""Stacked logits beyond this magnitude (or non-finite) send the model to the reference path."""
_NO_BATCHING_RULE_WARNING: Final = "There is a performance drop because we have not yet"


STRATEGIES = frozenset({"batched", "loop", "auto"})


def _chunks(items: Sequence[LoadedModel], size: int) -> Iterator[Sequence[LoadedModel]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stacked_pass(
    stack: Sequence[LoadedModel],
    *,
    features: np.ndarray,
    num_classes: int,
    batch_size: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, list[set[int]]]:
    """Run ``stack`` in one vmapped pass per row chunk.

    Returns ``(predictions [models, rows] int64, unsafe [models] bool, near_tie_chunks)`` where
    ``near_tie_chunks[k]`` holds the start rows of the chunks model ``k`` must recompute alone.
    Raises whatever the batched pass raises; ``RuntimeError`` on a wrong output shape.
    """
    with torch.device("meta"):
        skeleton = build_model(stack[0].config)
    params, buffers = stack_module_state([loaded.model for loaded in stack])
    params = {name: tensor.to(device) for name, tensor in params.items()}
    buffers = {name: tensor.to(device) for name, tensor in buffers.items()}

    def forward(
        one_params: dict[str, torch.Tensor],
        one_buffers: dict[str, torch.Tensor],
        inputs: torch.Tensor,
    ) -> torch.Tensor:
        return functional_call(skeleton, (one_params, one_buffers), (inputs,))

    batched = torch.vmap(forward, in_dims=(0, 0, None))
    n_models, n_rows = len(stack), features.shape[0]
    predictions = np.zeros((n_models, n_rows), dtype=np.int64)
    unsafe = np.zeros(n_models, dtype=np.bool_)
    near_tie_chunks: list[set[int]] = [set() for _ in stack]
    with torch.inference_mode(), warnings.catch_warnings():
        # embedding_bag(padding_idx) has no vmap batching rule: torch loops over the stack
        # itself (same kernels as the single-model path) and warns about the slowdown.
        warnings.filterwarnings("ignore", message=_NO_BATCHING_RULE_WARNING)
        for start in range(0, n_rows, batch_size):
            stop = min(start + batch_size, n_rows)
            inputs = torch.tensor(features[start:stop], device=device)
            logits = batched(params, buffers, inputs)
            if tuple(logits.shape) != (n_models, stop - start, num_classes):
                raise RuntimeError(f"stacked output shape {list(logits.shape)}")
            safe = (torch.isfinite(logits) & (logits.abs() < LOGIT_ABS_SAFE)).all(dim=2).all(1)
            unsafe |= ~safe.cpu().numpy()
            if num_classes >= 2:
                top = logits.topk(2, dim=2).values
                margin = top[..., 0] - top[..., 1]
                scale = top.abs().amax(dim=2).clamp(min=1.0)
                near = (margin <= NEAR_TIE_RELATIVE * scale).any(dim=1).cpu().numpy()
                for index in np.flatnonzero(near):
                    near_tie_chunks[int(index)].add(start)
            predictions[:, start:stop] = logits.argmax(dim=2).cpu().numpy()
    return predictions, unsafe, near_tie_chunks


def _evaluate_stack(
    stack: Sequence[LoadedModel],
    *,
    features: np.ndarray,
    labels: np.ndarray,
    limits: FamilyLimits,
    batch_size: int,
    device: torch.device,
) -> list[EvalResult]:
    def alone(loaded: LoadedModel) -> EvalResult:
        return evaluate_loaded(
            loaded,
            features=features,
            labels=labels,
            limits=limits,
            batch_size=batch_size,
            device=device,
        )

    try:
        predictions, unsafe, near_tie_chunks = _stacked_pass(
            stack,
            features=features,
            num_classes=limits.num_classes,
            batch_size=batch_size,
            device=device,
        )
    except Exception:  # the stack as a whole failed: isolate its members
        return [alone(loaded) for loaded in stack]

    results: list[EvalResult] = []
    for index, loaded in enumerate(stack):
        if unsafe[index]:
            results.append(alone(loaded))
            continue
        predicted = predictions[index]
        try:
            for start in sorted(near_tie_chunks[index]):
                stop = min(start + batch_size, features.shape[0])
                predicted[start:stop] = predicted_labels(
                    loaded.model.to(device),
                    features=features[start:stop],
                    num_classes=limits.num_classes,
                    batch_size=batch_size,
                    device=device,
                )
        except Exception:  # the reference decides, with its own reason
            results.append(alone(loaded))
            continue
        results.append(
            success_result(
                uid=loaded.uid,
                predictions=predicted,
                labels=labels,
                num_classes=limits.num_classes,
                digest=loaded.digest,
            )
        )
    return results


def evaluate_group(
    jobs: list[EvalJob],
    *,
    features: np.ndarray,
    labels: np.ndarray,
    limits: FamilyLimits,
    device: str = "cpu",
    batch_size: int = 1024,
    group_models_max: int = GROUP_MODELS_MAX,
    strategy: str = "batched",
) -> list[EvalResult]:
    """Score every job on ``(features, labels)``; same-architecture models run stacked.

    ``strategy``: ``"batched"`` stacks same-architecture models (vmap); ``"loop"`` runs each
    validated model alone; ``"auto"`` picks the loop on CPU (measured faster there:
    ``benchmarks/evaluation.py``) and stacking on CUDA (launch-bound loops). Results are identical
    either way. One result per job, in the order of ``jobs``; never raises because of a model.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    check_inputs(features=features, labels=labels, limits=limits, batch_size=batch_size)
    if group_models_max < 1:
        raise ValueError(f"group_models_max must be >= 1, got {group_models_max}")
    uids = [job.uid for job in jobs]
    if len(set(uids)) != len(uids):
        raise ValueError("duplicate uids in jobs")
    target = resolve_device(device)
    n_samples = int(labels.shape[0])

    results: dict[int, EvalResult] = {}
    groups: dict[bytes, list[LoadedModel]] = {}
    for job in jobs:
        loaded = load_job(job, feature_dtype=features.dtype, limits=limits, n_samples=n_samples)
        if isinstance(loaded, EvalResult):
            results[job.uid] = loaded
        else:
            groups.setdefault(loaded.config.to_json(), []).append(loaded)

    use_loop = strategy == "loop" or (strategy == "auto" and target.type == "cpu")
    with full_precision(target):
        for key in sorted(groups):
            if use_loop:
                for loaded in groups[key]:
                    result = evaluate_loaded(
                        loaded,
                        features=features,
                        labels=labels,
                        limits=limits,
                        batch_size=batch_size,
                        device=target,
                    )
                    results[result.uid] = result
                continue
            for stack in _chunks(groups[key], group_models_max):
                for result in _evaluate_stack(
                    stack,
                    features=features,
                    labels=labels,
                    limits=limits,
                    batch_size=batch_size,
                    device=target,
                ):
                    results[result.uid] = result
    return [results[job.uid] for job in jobs]


def evaluate_group_auto(
    jobs: list[EvalJob],
    *,
    features: np.ndarray,
    labels: np.ndarray,
    limits: FamilyLimits,
    device: str = "cpu",
    batch_size: int = 1024,
    group_models_max: int = GROUP_MODELS_MAX,
) -> list[EvalResult]:
    """``evaluate_group`` with the strategy chosen per device (what the Dask fan-out runs)."""
    return evaluate_group(
        jobs,
        features=features,
        labels=labels,
        limits=limits,
        device=device,
        batch_size=batch_size,
        group_models_max=group_models_max,
        strategy="auto",
    )
