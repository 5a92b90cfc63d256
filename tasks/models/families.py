"""The allow-list of model families a miner may submit, implemented here and nowhere else.

A submission's architecture is never code from the miner: it is a small JSON config naming one
of the families below, and the network builds the ``torch.nn.Module`` itself.  For now there is
one family, ``"mlp"``: ``Linear -> ReLU -> ... -> Linear`` with parameters named
``layers.{i}.weight`` / ``layers.{i}.bias`` (``i`` = 0 .. number of Linear layers - 1).

Config JSON (all keys required, no others)::

    {"family": "mlp", "input_dim": 64, "hidden_sizes": [32], "num_classes": 10}

Fault model: config bytes are hostile.  :func:`parse_config` rejects, with a
:class:`InvalidModelConfig` whose message says why: more than ``CONFIG_BYTES_MAX`` bytes,
invalid UTF-8/JSON, duplicate keys, non-finite JSON constants, a non-object, unknown or missing
keys, unknown families, sizes that are not plain ``int`` (``bool``/``float`` rejected), sizes
``<= 0`` or above ``DIMENSION_MAX``, more than ``HIDDEN_LAYERS_MAX`` hidden layers.  Subnet
limits (:class:`FamilyLimits`: task dimensions, layer and parameter caps) are checked by
:func:`check_limits` using :func:`count_parameters`, which is computed from the config alone so
that an oversized architecture is refused before anything is allocated.

Determinism: :func:`build_model` draws its initial parameters from torch's global RNG, so the
caller seeds it (training) or overwrites every parameter (loading, see ``artifacts``).

Imports only torch and the standard library (runs on bare GPU workers).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Final

import torch
from torch import nn

CONFIG_BYTES_MAX: Final = 4096
HIDDEN_LAYERS_MAX: Final = 32
DIMENSION_MAX: Final = 1 << 20
MLP_FAMILY: Final = "mlp"
FAMILIES: Final = frozenset({MLP_FAMILY})
_CONFIG_KEYS: Final = frozenset({"family", "input_dim", "hidden_sizes", "num_classes"})


class InvalidModelConfig(ValueError):
    """A model config is malformed or outside the subnet's limits; ``str(exc)`` says why."""


@dataclass(frozen=True)
class FamilyLimits:
    """What a subnet accepts.

    ``layers_max`` counts Linear layers (hidden layers + the output layer); ``params_max`` counts
    scalar parameters (weights + biases); ``bytes_max`` caps the safetensors file size.
    ``input_dim`` / ``num_classes`` are the subnet task's dimensions the config must match.
    """

    params_max: int
    bytes_max: int
    layers_max: int
    input_dim: int
    num_classes: int

    def __post_init__(self) -> None:
        for field_name in ("params_max", "bytes_max", "layers_max", "input_dim", "num_classes"):
            value = getattr(self, field_name)
            if type(value) is not int or value < 1:
                raise ValueError(f"FamilyLimits.{field_name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """A validated architecture description (construct via :func:`parse_config` for input)."""

    family: str
    input_dim: int
    hidden_sizes: tuple[int, ...]
    num_classes: int

    def __post_init__(self) -> None:
        _validate(
            family=self.family,
            input_dim=self.input_dim,
            hidden_sizes=self.hidden_sizes,
            num_classes=self.num_classes,
        )

    @property
    def linear_layers(self) -> int:
        """Number of Linear layers (hidden layers + output layer)."""
        return len(self.hidden_sizes) + 1

    def to_json(self) -> bytes:
        """Canonical JSON encoding (sorted keys, compact, ASCII); round-trips via parse_config."""
        document = {
            "family": self.family,
            "input_dim": self.input_dim,
            "hidden_sizes": list(self.hidden_sizes),
            "num_classes": self.num_classes,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def _check_size(name: str, value: object) -> int:
    if type(value) is not int:
        raise InvalidModelConfig(f"{name} must be an integer, got {type(value).__name__}")
    if value <= 0 or value > DIMENSION_MAX:
        raise InvalidModelConfig(f"{name} must be in [1, {DIMENSION_MAX}], got {value}")
    return value


def _validate(
    *, family: object, input_dim: object, hidden_sizes: object, num_classes: object
) -> None:
    if not isinstance(family, str) or family not in FAMILIES:
        raise InvalidModelConfig(
            f"unknown model family {family!r}; allowed: {', '.join(sorted(FAMILIES))}"
        )
    _check_size("input_dim", input_dim)
    _check_size("num_classes", num_classes)
    if not isinstance(hidden_sizes, (list, tuple)):
        raise InvalidModelConfig(
            f"hidden_sizes must be a list of integers, got {type(hidden_sizes).__name__}"
        )
    if len(hidden_sizes) > HIDDEN_LAYERS_MAX:
        raise InvalidModelConfig(
            f"too many hidden layers: {len(hidden_sizes)} > {HIDDEN_LAYERS_MAX}"
        )
    for index, size in enumerate(hidden_sizes):
        _check_size(f"hidden_sizes[{index}]", size)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidModelConfig(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidModelConfig(f"non-finite JSON constant {name}")


def parse_config(raw: bytes | str) -> ModelConfig:
    """Parse and validate hostile config JSON; raises :class:`InvalidModelConfig`."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > CONFIG_BYTES_MAX:
        raise InvalidModelConfig(f"config is {len(data)} bytes > {CONFIG_BYTES_MAX}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidModelConfig(f"config is not UTF-8: {exc.reason}") from None
    try:
        document = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except InvalidModelConfig:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidModelConfig(f"config is not JSON: {exc.msg} at char {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer literal too long to convert
        raise InvalidModelConfig(f"config is not acceptable JSON: {exc}") from None
    except RecursionError:
        raise InvalidModelConfig("config JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidModelConfig(f"config must be a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - _CONFIG_KEYS)
    if unknown:
        raise InvalidModelConfig(f"unknown config key(s) {unknown}")
    missing = sorted(_CONFIG_KEYS - set(document))
    if missing:
        raise InvalidModelConfig(f"missing config key(s) {missing}")
    _validate(
        family=document["family"],
        input_dim=document["input_dim"],
        hidden_sizes=document["hidden_sizes"],
        num_classes=document["num_classes"],
    )
    return ModelConfig(
        family=document["family"],
        input_dim=document["input_dim"],
        hidden_sizes=tuple(document["hidden_sizes"]),
        num_classes=document["num_classes"],
    )


def _layer_dims(config: ModelConfig) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of every Linear layer, in order."""
    widths = [config.input_dim, *config.hidden_sizes, config.num_classes]
    return list(itertools.pairwise(widths))


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameter name → shape of the module :func:`build_model` returns for ``config``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (fan_in, fan_out) in enumerate(_layer_dims(config)):
        shapes[f"layers.{index}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{index}.bias"] = (fan_out,)
    return shapes


def count_parameters(config: ModelConfig) -> int:
    """Number of scalar parameters, computed from the config without building the model."""
    return sum(math.prod(shape) for shape in expected_shapes(config).values())


def check_limits(config: ModelConfig, limits: FamilyLimits) -> None:
    """Raise :class:`InvalidModelConfig` unless ``config`` fits the subnet's ``limits``."""
    if config.input_dim != limits.input_dim:
        raise InvalidModelConfig(
            f"input_dim {config.input_dim} does not match the task's {limits.input_dim}"
        )
    if config.num_classes != limits.num_classes:
        raise InvalidModelConfig(
            f"num_classes {config.num_classes} does not match the task's {limits.num_classes}"
        )
    if config.linear_layers > limits.layers_max:
        raise InvalidModelConfig(f"{config.linear_layers} layers > layers_max {limits.layers_max}")
    params = count_parameters(config)
    if params > limits.params_max:
        raise InvalidModelConfig(f"{params} parameters > params_max {limits.params_max}")


class MLP(nn.Module):
    """``Linear -> ReLU -> ... -> Linear`` (no activation after the last layer: logits)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out) for fan_in, fan_out in _layer_dims(config)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden)
            if index < last:
                hidden = torch.relu(hidden)
        return hidden


def build_model(config: ModelConfig) -> nn.Module:
    """Build the module for ``config`` (initialised from torch's global RNG; float32)."""
    if config.family == MLP_FAMILY:
        return MLP(config)
    raise InvalidModelConfig(f"unknown model family {config.family!r}")
