"""Submission artifacts: ``model.safetensors`` + ``config.json``, saved by miners, loaded safely.

Fault model: every byte of a submission is hostile.  Nothing is ever unpickled (no
``torch.load``, no ``pickle``): the architecture comes from our own allow-list
(:mod:`tasks.models.families`) and the weights from a safetensors file whose header we check
ourselves before the safetensors loader sees it.  :func:`load_submission` either returns a
ready ``eval()``-mode float32 module on CPU or raises :class:`ArtifactRejected` with a stable
``code`` and a one-line ``reason``.  Checks run in this order, stopping at the first failure:

1. ``too_large``       the model file is larger than ``limits.bytes_max``;
2. ``bad_config``      the config does not parse (see ``families.parse_config``);
3. ``over_limits``     the config's family is not in ``limits.families``, or the config does not
                       match the task (input_dim, num_classes, vocab_size) or exceeds the
                       layer/parameter caps;
4. ``bad_header``      the safetensors framing is wrong: fewer than 8 bytes, header length over
                       ``HEADER_BYTES_MAX`` or past the end of the file, header not UTF-8 JSON
                       object, malformed entries or ``__metadata__`` (must be str → str), offsets
                       out of bounds, overlapping, leaving gaps or trailing bytes, or a byte
                       length that disagrees with the shape;
   ``bad_dtype``       a tensor is not ``F32``;
   ``tensor_mismatch`` a tensor is missing, unexpected, or has the wrong shape for the config;
5. ``load_failed``     the safetensors loader or ``load_state_dict(strict=True)`` refused it;
6. ``non_finite``      a parameter contains NaN or ±inf.

The same rules hold for every family of the allow-list (``mlp``, ``cnn``, ``embedding_bag``):
every tensor must be ``F32``, and the exact set of names and shapes comes from
``families.expected_shapes(config)``.

The module is built on the ``meta`` device and the loaded tensors are assigned into it, so no
memory is spent initialising parameters that are then overwritten, and loading is deterministic.

Content address: :func:`artifact_digest` = sha256 hex of ``sha256(model) || sha256(config)``
(raw 32-byte digests concatenated).  Imports only torch, safetensors and the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import safetensors.torch
import torch
from torch import nn

from taoflow.tasks.models.families import (
    FamilyLimits,
    InvalidModelConfig,
    ModelConfig,
    build_model,
    check_limits,
    expected_shapes,
    parse_config,
)

MODEL_FILENAME: Final = "model.safetensors"
CONFIG_FILENAME: Final = "config.json"
HEADER_BYTES_MAX: Final = 1 << 20
_LENGTH_PREFIX_BYTES: Final = 8
_ALLOWED_DTYPES: Final = {"F32": 4}
_ENTRY_KEYS: Final = frozenset({"dtype", "shape", "data_offsets"})
_METADATA_KEY: Final = "__metadata__"
_REASON_CHARS_MAX: Final = 300


class ArtifactRejected(Exception):
    """A submission failed a check; ``code`` is stable, ``reason`` is a one-line explanation."""

    def __init__(self, code: str, detail: str) -> None:
        one_line = " ".join(detail.split())[:_REASON_CHARS_MAX]
        self.code = code
        self.reason = f"{code}: {one_line}"
        super().__init__(self.reason)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor's entry in a safetensors header (already checked for internal consistency)."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def artifact_digest(*, model_bytes: bytes, config_bytes: bytes) -> str:
    """Content address of a submission: sha256 hex of ``sha256(model) || sha256(config)``."""
    inner = hashlib.sha256(model_bytes).digest() + hashlib.sha256(config_bytes).digest()
    return hashlib.sha256(inner).hexdigest()


def _is_plain_int(value: object) -> bool:
    return type(value) is int


def _strict_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ArtifactRejected("bad_header", f"duplicate header key {key!r}")
        result[key] = value
    return result


def _reject_json_constant(name: str) -> Any:
    raise ArtifactRejected("bad_header", f"non-finite JSON constant {name} in header")


def _parse_entry(name: str, raw: object, *, data_bytes: int) -> TensorEntry:
    if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
        raise ArtifactRejected(
            "bad_header", f"tensor {name!r}: entry must have exactly {sorted(_ENTRY_KEYS)}"
        )
    dtype = raw["dtype"]
    if not isinstance(dtype, str) or dtype not in _ALLOWED_DTYPES:
        raise ArtifactRejected("bad_dtype", f"tensor {name!r} has dtype {dtype!r}; only F32")
    shape = raw["shape"]
    if not isinstance(shape, list) or not all(_is_plain_int(d) and d >= 0 for d in shape):
        raise ArtifactRejected("bad_header", f"tensor {name!r}: malformed shape {shape!r}")
    offsets = raw["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_plain_int(o) for o in offsets)
    ):
        raise ArtifactRejected("bad_header", f"tensor {name!r}: malformed data_offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes:
        raise ArtifactRejected(
            "bad_header",
            f"tensor {name!r}: data_offsets [{begin}, {end}] outside data of {data_bytes} bytes",
        )
    if end - begin != math.prod(shape) * _ALLOWED_DTYPES[dtype]:
        raise ArtifactRejected(
            "bad_header",
            f"tensor {name!r}: {end - begin} bytes do not match shape {shape} of {dtype}",
        )
    return TensorEntry(dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def parse_safetensors_header(model_bytes: bytes) -> dict[str, TensorEntry]:
    """Check a safetensors file's framing and header without invoking the safetensors loader.

    Returns tensor name → entry.  Raises :class:`ArtifactRejected` (``bad_header`` /
    ``bad_dtype``).  Requires the tensors' byte ranges to tile the data section exactly.
    """
    if len(model_bytes) < _LENGTH_PREFIX_BYTES:
        raise ArtifactRejected(
            "bad_header", f"file is {len(model_bytes)} bytes, too short for a header length"
        )
    header_bytes = int.from_bytes(model_bytes[:_LENGTH_PREFIX_BYTES], "little")
    if header_bytes > HEADER_BYTES_MAX:
        raise ArtifactRejected(
            "bad_header", f"header length {header_bytes} > {HEADER_BYTES_MAX} bytes"
        )
    if header_bytes > len(model_bytes) - _LENGTH_PREFIX_BYTES:
        raise ArtifactRejected(
            "bad_header",
            f"header length {header_bytes} exceeds the file's remaining "
            f"{len(model_bytes) - _LENGTH_PREFIX_BYTES} bytes (truncated file?)",
        )
    header_end = _LENGTH_PREFIX_BYTES + header_bytes
    try:
        text = model_bytes[_LENGTH_PREFIX_BYTES:header_end].decode("utf-8")
        document = json.loads(
            text, object_pairs_hook=_strict_json_object, parse_constant=_reject_json_constant
        )
    except ArtifactRejected:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactRejected("bad_header", f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ArtifactRejected("bad_header", "header is not a JSON object")
    data_bytes = len(model_bytes) - header_end
    entries: dict[str, TensorEntry] = {}
    for name, raw in document.items():
        if name == _METADATA_KEY:
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise ArtifactRejected("bad_header", "__metadata__ must map strings to strings")
            continue
        entries[name] = _parse_entry(name, raw, data_bytes=data_bytes)
    cursor = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != cursor:
            problem = "overlaps another tensor" if entry.begin < cursor else "leaves a gap"
            raise ArtifactRejected("bad_header", f"tensor {name!r} {problem} at byte {cursor}")
        cursor = entry.end
    if cursor != data_bytes:
        raise ArtifactRejected(
            "bad_header", f"tensors cover {cursor} of {data_bytes} data bytes (trailing data)"
        )
    return entries


def _check_names_and_shapes(
    found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]
) -> None:
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ArtifactRejected("tensor_mismatch", f"missing tensor(s) {missing}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ArtifactRejected("tensor_mismatch", f"unexpected tensor(s) {extra}")
    for name in sorted(expected):
        if found[name] != expected[name]:
            raise ArtifactRejected(
                "tensor_mismatch",
                f"tensor {name!r} has shape {list(found[name])}, "
                f"config needs {list(expected[name])}",
            )


def load_submission(*, model_bytes: bytes, config_bytes: bytes, limits: FamilyLimits) -> nn.Module:
    """Validate and load a hostile submission; raises :class:`ArtifactRejected` on any failure.

    Returns a float32 module on CPU in ``eval()`` mode with ``requires_grad`` off.
    """
    model, _ = load_submission_with_config(
        model_bytes=model_bytes, config_bytes=config_bytes, limits=limits
    )
    return model


def load_submission_with_config(
    *, model_bytes: bytes, config_bytes: bytes, limits: FamilyLimits
) -> tuple[nn.Module, ModelConfig]:
    """:func:`load_submission` that also returns the validated :class:`ModelConfig`."""
    model_bytes = bytes(model_bytes)
    if len(model_bytes) > limits.bytes_max:
        raise ArtifactRejected(
            "too_large", f"model file is {len(model_bytes)} bytes > bytes_max {limits.bytes_max}"
        )
    try:
        config = parse_config(bytes(config_bytes))
    except InvalidModelConfig as exc:
        raise ArtifactRejected("bad_config", str(exc)) from None
    try:
        check_limits(config, limits)
    except InvalidModelConfig as exc:
        raise ArtifactRejected("over_limits", str(exc)) from None

    expected = expected_shapes(config)
    entries = parse_safetensors_header(model_bytes)
    _check_names_and_shapes({name: e.shape for name, e in entries.items()}, expected)

    try:
        tensors = safetensors.torch.load(model_bytes)
    except Exception as exc:  # the loader's error types are not part of its API
        raise ArtifactRejected("load_failed", f"safetensors refused the file: {exc}") from None
    _check_names_and_shapes({name: tuple(t.shape) for name, t in tensors.items()}, expected)
    for name, tensor in tensors.items():
        if tensor.dtype != torch.float32:
            raise ArtifactRejected("bad_dtype", f"tensor {name!r} loaded as {tensor.dtype}")

    with torch.device("meta"):
        model = build_model(config)
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ArtifactRejected("load_failed", f"load_state_dict refused: {exc}") from None
    for name, parameter in model.state_dict().items():
        if parameter.device.type != "cpu":
            raise ArtifactRejected("load_failed", f"parameter {name!r} was not loaded")
        if not bool(torch.isfinite(parameter).all()):
            raise ArtifactRejected("non_finite", f"parameter {name!r} contains NaN or inf")
    model.requires_grad_(False)
    return model.eval(), config


def _write_atomically(path: Path, data: bytes) -> None:
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def submission_bytes(model: nn.Module, config: ModelConfig) -> tuple[bytes, bytes]:
    """Serialise ``model`` for ``config`` to ``(safetensors bytes, canonical config JSON)``.

    Raises ``ValueError`` if the module does not match the config, is not float32, or has
    non-finite parameters (it would be rejected by validators).  Output is deterministic.
    """
    state = model.state_dict()
    expected = expected_shapes(config)
    try:
        _check_names_and_shapes({name: tuple(t.shape) for name, t in state.items()}, expected)
    except ArtifactRejected as exc:
        raise ValueError(f"model does not match its config: {exc.reason}") from None
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(state):
        tensor = state[name]
        if tensor.dtype != torch.float32:
            raise ValueError(f"parameter {name!r} is {tensor.dtype}; only float32 is accepted")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"parameter {name!r} contains NaN or inf")
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    return safetensors.torch.save(tensors), config.to_json()


def save_submission(model: nn.Module, config: ModelConfig, directory: Path) -> tuple[Path, Path]:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    Each file is written to a temporary name, fsynced and renamed into place.  Returns
    ``(model_path, config_path)``.
    """
    model_bytes, config_bytes = submission_bytes(model, config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILENAME
    config_path = directory / CONFIG_FILENAME
    _write_atomically(model_path, model_bytes)
    _write_atomically(config_path, config_bytes)
    return model_path, config_path
