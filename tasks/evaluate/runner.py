"""Evaluate one submitted model on a sample of the held-out split (runs on bare workers).

Purpose: :func:`evaluate_job` turns ``(artifact files, features, labels, limits)`` into an
:class:`EvalResult` whose ``score`` is top-1 accuracy in ``[0, 1]`` and whose ``correct`` holds
the per-row correctness (``np.packbits`` of the boolean vector, big-endian bit order, ``n_samples``
bits), so a caller can score any subset of the rows without evaluating again
(:func:`subset_accuracy`), and whose ``predictions`` hold the per-row predicted labels (unsigned
little-endian integers of :func:`label_width` bytes each), which the near-duplicate check
compares between models (``tasks.evaluate.near_duplicates``).  The building blocks
(:func:`load_job`, :func:`predicted_labels`) are shared with the batched evaluator
(``tasks.evaluate.batched``), which must agree with :func:`evaluate_job` bit for bit.

Fault model:

* the artifact is hostile.  Files are opened non-blocking (a FIFO cannot stall the worker) and
  must be regular files; reading stops at ``limits.bytes_max + 1`` bytes (resp.
  ``CONFIG_BYTES_MAX + 1``) so an oversized file is refused without being read in full; loading
  goes through :func:`tasks.models.artifacts.load_submission` (no unpickling, ever); outputs of
  the wrong shape or with NaN/inf are refused.  A bad model NEVER raises: every failure becomes
  ``score == 0.0`` with ``error`` = a one-line reason starting with a stable code
  (``too_large:``, ``bad_config:``, ``bad_header:``, ``unreadable:``, ``bad_output:``,
  ``evaluation_failed:`` ...);
* the caller's own inputs are trusted but checked: malformed ``features``/``labels``/``device``
  raise ``ValueError`` (a validator bug must not be silently blamed on a miner).  ``features``
  must have the dtype every family in ``limits.families`` takes (``limits.feature_dtype``):
  ``float32`` for ``mlp``/``cnn``, ``int64`` token ids for ``embedding_bag`` -- and token ids
  must lie in ``[0, limits.vocab_size)``; nothing is ever cast or clamped;
* a model whose family takes another input dtype than the features (an evaluation-set / model
  mismatch) scores 0 with ``input_mismatch:`` (``check_limits`` already refuses families the
  subnet does not allow, so this is a second line of defence); the models check their own
  inputs again (dtype, shape, token-id range) and a refusal there is ``evaluation_failed:``;
* no timeout here -- the caller (``tasks.evaluate.fanout``) bounds wall time.

Invariants: ``n_samples`` is always the size of the evaluated sample; ``correct`` and
``predictions`` are set exactly when ``error`` is ``None`` (``correct`` is ``predictions ==
labels``), and ``score == popcount(correct) / n_samples``; ``artifact_digest`` is
set whenever both files were read in full (also for rejected artifacts, so a miner can see
*which* upload was scored), else ``None``.  Deterministic: same files, inputs, ``batch_size``,
device and torch thread count → bit-identical result (argmax ties resolve to the lowest class).

Imports only torch, numpy, safetensors and the standard library -- never prefect/dask/mlflow.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch import nn

from taoflow.tasks.models.artifacts import (
    ArtifactRejected,
    artifact_digest,
    load_submission_with_config,
)
from taoflow.tasks.models.families import (
    CONFIG_BYTES_MAX,
    TOKEN_FEATURES,
    FamilyLimits,
    ModelConfig,
)

_ERROR_CHARS_MAX: Final = 300
_READ_CHUNK_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class EvalJob:
    """One model to evaluate: its miner ``uid`` and worker-visible local file paths."""

    uid: int
    model_path: str
    config_path: str


@dataclass(frozen=True)
class EvalResult:
    """Outcome of one evaluation: ``score`` is accuracy in [0, 1], 0.0 whenever ``error``.

    ``correct`` is ``np.packbits`` (big-endian bit order) of the per-row correctness vector of
    length ``n_samples`` when the evaluation succeeded, else ``None``; ``predictions`` is the
    per-row predicted label (:func:`pack_predictions`) under the same condition.
    """

    uid: int
    score: float
    n_samples: int
    error: str | None
    artifact_digest: str | None
    correct: bytes | None = None
    predictions: bytes | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A validated submission ready to run: module on CPU, its config and its content digest."""

    uid: int
    model: nn.Module
    config: ModelConfig
    digest: str


def pack_correct(mask: np.ndarray) -> bytes:
    """Pack a 1-D boolean correctness vector (big-endian bit order, zero padded)."""
    if mask.dtype != np.bool_ or mask.ndim != 1:
        raise ValueError(f"correctness must be a 1-D bool array, got {mask.dtype} {mask.shape}")
    return np.packbits(mask).tobytes()


def label_width(num_classes: int) -> int:
    """Bytes per packed predicted label: 1 up to 256 classes, 2 up to 65,536, else 4."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return 1 if num_classes <= 1 << 8 else 2 if num_classes <= 1 << 16 else 4


def pack_predictions(predictions: np.ndarray, *, num_classes: int) -> bytes:
    """Pack 1-D predicted labels in ``[0, num_classes)`` as little-endian unsigned integers."""
    if predictions.ndim != 1 or predictions.dtype.kind not in "iu":
        raise ValueError(f"predictions must be a 1-D integer array, got {predictions.dtype}")
    if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
        raise ValueError(f"predictions must lie in [0, {num_classes})")
    return predictions.astype(f"<u{label_width(num_classes)}").tobytes()


def prediction_vector(result: EvalResult) -> np.ndarray | None:
    """The per-row predicted labels of ``result`` (int64), or ``None`` when it carries none."""
    if result.error is not None or result.predictions is None or result.n_samples < 1:
        return None
    width, extra = divmod(len(result.predictions), result.n_samples)
    if extra or width not in (1, 2, 4):
        raise ValueError(
            f"uid {result.uid}: {len(result.predictions)} prediction bytes for "
            f"{result.n_samples} rows"
        )
    return np.frombuffer(result.predictions, dtype=f"<u{width}").astype(np.int64)


def correct_vector(result: EvalResult) -> np.ndarray:
    """The per-row correctness of a successful ``result`` as a bool array of ``n_samples``."""
    if result.error is not None or result.correct is None:
        raise ValueError(f"uid {result.uid} has no per-row correctness (error: {result.error})")
    if len(result.correct) != (result.n_samples + 7) // 8:
        raise ValueError(
            f"uid {result.uid}: {len(result.correct)} correctness bytes for {result.n_samples} rows"
        )
    bits = np.unpackbits(np.frombuffer(result.correct, dtype=np.uint8), count=result.n_samples)
    return bits.astype(np.bool_)


def subset_accuracy(result: EvalResult, positions: np.ndarray) -> float:
    """Accuracy of ``result`` on the rows at ``positions`` (0.0 if the evaluation failed).

    Equals evaluating the model on exactly those rows: each row's prediction depends on that
    row alone.  ``positions`` must be a non-empty 1-D integer array of valid row positions.
    """
    if positions.ndim != 1 or positions.size == 0 or positions.dtype.kind not in "iu":
        raise ValueError("positions must be a non-empty 1-D integer array")
    if int(positions.min()) < 0 or int(positions.max()) >= result.n_samples:
        raise ValueError(f"positions must lie in [0, {result.n_samples})")
    if result.error is not None:
        return 0.0
    return int(correct_vector(result)[positions].sum()) / int(positions.size)


def one_line(text: str) -> str:
    """Collapse whitespace and bound the length of an error message."""
    return " ".join(text.split())[:_ERROR_CHARS_MAX]


def failed_result(*, uid: int, n_samples: int, error: str, digest: str | None = None) -> EvalResult:
    """A zero-score result carrying a one-line ``error``."""
    return EvalResult(
        uid=uid, score=0.0, n_samples=n_samples, error=one_line(error), artifact_digest=digest
    )


def read_capped(path: str, *, bytes_max: int, what: str) -> bytes:
    """Read a regular file of at most ``bytes_max`` bytes, reading no more than one byte extra.

    Raises :class:`ArtifactRejected` (``unreadable`` / ``too_large``).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise ArtifactRejected("unreadable", f"cannot open {what}: {exc.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactRejected("unreadable", f"{what} is not a regular file")
        if info.st_size > bytes_max:
            raise ArtifactRejected(
                "too_large", f"{what} is {info.st_size} bytes > bytes_max {bytes_max}"
            )
        chunks: list[bytes] = []
        total_bytes = 0
        while total_bytes <= bytes_max:
            chunk = os.read(descriptor, min(_READ_CHUNK_BYTES, bytes_max + 1 - total_bytes))
            if not chunk:
                break
            chunks.append(chunk)
            total_bytes += len(chunk)
        if total_bytes > bytes_max:  # the file grew after fstat
            raise ArtifactRejected("too_large", f"{what} exceeds bytes_max {bytes_max}")
        return b"".join(chunks)
    except OSError as exc:
        raise ArtifactRejected("unreadable", f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(descriptor)


def check_inputs(
    *, features: np.ndarray, labels: np.ndarray, limits: FamilyLimits, batch_size: int
) -> None:
    """Raise ``ValueError`` unless the validator's own inputs are well formed for ``limits``."""
    expected = limits.feature_dtype
    if not isinstance(features, np.ndarray) or features.dtype != np.dtype(expected):
        got = features.dtype if isinstance(features, np.ndarray) else type(features).__name__
        raise ValueError(
            f"features must be a {expected} numpy array for families "
            f"{sorted(limits.families)}, got {got}"
        )
    if features.ndim != 2 or features.shape[1] != limits.input_dim:
        raise ValueError(f"features must have shape [n, {limits.input_dim}], got {features.shape}")
    if expected == TOKEN_FEATURES and features.size:
        vocab_size = limits.vocab_size if limits.vocab_size is not None else 0
        if features.min() < 0 or features.max() >= vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size})")
    if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
        raise ValueError("labels must be a 1-D int64 numpy array")
    if labels.shape[0] != features.shape[0] or labels.shape[0] == 0:
        raise ValueError(
            f"need the same non-zero number of features and labels, got "
            f"{features.shape[0]} and {labels.shape[0]}"
        )
    if labels.min() < 0 or labels.max() >= limits.num_classes:
        raise ValueError(f"labels must lie in [0, {limits.num_classes})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def resolve_device(device: str) -> torch.device:
    """Parse ``device``; raise ``ValueError`` if it is malformed or CUDA is unavailable."""
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device type {resolved.type!r}")
    return resolved


def check_outputs(outputs: object, *, rows: int, num_classes: int) -> torch.Tensor:
    """``outputs`` if it is a finite ``[rows, num_classes]`` tensor, else ArtifactRejected."""
    if not isinstance(outputs, torch.Tensor):
        raise ArtifactRejected("bad_output", f"model returned {type(outputs).__name__}")
    if tuple(outputs.shape) != (rows, num_classes):
        raise ArtifactRejected(
            "bad_output",
            f"output shape {list(outputs.shape)}, expected [{rows}, {num_classes}]",
        )
    if not bool(torch.isfinite(outputs).all()):
        raise ArtifactRejected("bad_output", "model produced NaN or inf logits")
    return outputs


def predicted_labels(
    model: nn.Module,
    *,
    features: np.ndarray,
    num_classes: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Per-row ``argmax logit`` (int64 array); ArtifactRejected on bad outputs.

    This is the reference ("model alone") computation every other path must reproduce.
    """
    predictions = np.zeros(features.shape[0], dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, features.shape[0], batch_size):
            stop = min(start + batch_size, features.shape[0])
            # torch.tensor copies, so read-only inputs (e.g. Dask-scattered arrays) are fine.
            inputs = torch.tensor(features[start:stop], device=device)
            outputs = check_outputs(model(inputs), rows=stop - start, num_classes=num_classes)
            predictions[start:stop] = outputs.argmax(dim=1).cpu().numpy()
    return predictions


def correct_mask(
    model: nn.Module,
    *,
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Per-row ``argmax logit == label`` (bool array): :func:`predicted_labels` vs ``labels``."""
    predictions = predicted_labels(
        model, features=features, num_classes=num_classes, batch_size=batch_size, device=device
    )
    return predictions == labels


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """On CUDA, switch TF32 off (matmul and cuDNN) for the block; a no-op on CPU.

    Every evaluation path (single and batched) runs under it, so all of them compute in float32
    and differ at most by summation order.
    """
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(
            enabled=torch.backends.cudnn.enabled,
            benchmark=False,
            deterministic=True,
            allow_tf32=False,
        ):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _count_correct(
    model: nn.Module,
    *,
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    device: torch.device,
) -> int:
    """Number of rows whose argmax logit equals the label; ArtifactRejected on bad outputs."""
    mask = correct_mask(
        model,
        features=features,
        labels=labels,
        num_classes=num_classes,
        batch_size=batch_size,
        device=device,
    )
    return int(mask.sum())


def load_job(
    job: EvalJob, *, feature_dtype: np.dtype, limits: FamilyLimits, n_samples: int
) -> LoadedModel | EvalResult:
    """Read and validate ``job``'s artifact: a :class:`LoadedModel`, or a failed result.

    Never raises because of the artifact (any exception becomes ``evaluation_failed:``).
    """
    digest: str | None = None
    try:
        model_bytes = read_capped(
            job.model_path, bytes_max=limits.bytes_max, what="model.safetensors"
        )
        try:
            config_bytes = read_capped(
                job.config_path, bytes_max=CONFIG_BYTES_MAX, what="config.json"
            )
        except ArtifactRejected as exc:
            if exc.code == "too_large":
                raise ArtifactRejected("bad_config", exc.reason) from None
            raise
        digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
        model, config = load_submission_with_config(
            model_bytes=model_bytes, config_bytes=config_bytes, limits=limits
        )
        if np.dtype(config.feature_dtype) != feature_dtype:
            raise ArtifactRejected(
                "input_mismatch",
                f"family {config.family!r} takes {config.feature_dtype} features, "
                f"the evaluation set provides {feature_dtype}",
            )
    except ArtifactRejected as exc:
        return failed_result(uid=job.uid, n_samples=n_samples, error=exc.reason, digest=digest)
    except Exception as exc:  # a bad model must never take the validator down
        return failed_result(
            uid=job.uid,
            n_samples=n_samples,
            error=f"evaluation_failed: {type(exc).__name__}: {exc}",
            digest=digest,
        )
    return LoadedModel(uid=job.uid, model=model, config=config, digest=digest)


def success_result(
    *, uid: int, predictions: np.ndarray, labels: np.ndarray, num_classes: int, digest: str
) -> EvalResult:
    """The result of a model that predicted ``predictions`` for rows labelled ``labels``."""
    mask = predictions == labels
    n_samples = int(mask.shape[0])
    return EvalResult(
        uid=uid,
        score=int(mask.sum()) / n_samples,
        n_samples=n_samples,
        error=None,
        artifact_digest=digest,
        correct=pack_correct(mask),
        predictions=pack_predictions(predictions, num_classes=num_classes),
    )


def evaluate_loaded(
    loaded: LoadedModel,
    *,
    features: np.ndarray,
    labels: np.ndarray,
    limits: FamilyLimits,
    batch_size: int,
    device: torch.device,
) -> EvalResult:
    """Run one already validated model alone; never raises because of the model."""
    n_samples = int(labels.shape[0])
    try:
        predictions = predicted_labels(
            loaded.model.to(device),
            features=features,
            num_classes=limits.num_classes,
            batch_size=batch_size,
            device=device,
        )
    except ArtifactRejected as exc:
        return failed_result(
            uid=loaded.uid, n_samples=n_samples, error=exc.reason, digest=loaded.digest
        )
    except Exception as exc:  # a bad model must never take the validator down
        return failed_result(
            uid=loaded.uid,
            n_samples=n_samples,
            error=f"evaluation_failed: {type(exc).__name__}: {exc}",
            digest=loaded.digest,
        )
    return success_result(
        uid=loaded.uid,
        predictions=predictions,
        labels=labels,
        num_classes=limits.num_classes,
        digest=loaded.digest,
    )


def evaluate_job(
    job: EvalJob,
    *,
    features: np.ndarray,
    labels: np.ndarray,
    limits: FamilyLimits,
    batch_size: int = 1024,
    device: str = "cpu",
) -> EvalResult:
    """Score ``job``'s model on ``(features, labels)``; never raises because of the model."""
    check_inputs(features=features, labels=labels, limits=limits, batch_size=batch_size)
    target = resolve_device(device)
    loaded = load_job(
        job, feature_dtype=features.dtype, limits=limits, n_samples=int(labels.shape[0])
    )
    if isinstance(loaded, EvalResult):
        return loaded
    with full_precision(target):
        return evaluate_loaded(
            loaded,
            features=features,
            labels=labels,
            limits=limits,
            batch_size=batch_size,
            device=target,
        )
