"""The allow-list of model families a miner may submit, implemented here and nowhere else.

A submission's architecture is never code from the miner: it is a small JSON config naming one
of the families below, and the network builds the ``torch.nn.Module`` itself.

Families, their config JSON (all keys required, no others) and their parameter names:

* ``"mlp"`` -- ``Linear -> ReLU -> ... -> Linear`` on ``float32 [n, input_dim]``::

      {"family": "mlp", "input_dim": 64, "hidden_sizes": [32], "num_classes": 10}

  parameters ``layers.{i}.weight`` / ``layers.{i}.bias`` (``i`` = 0 .. Linear layers - 1);
* ``"cnn"`` -- for square single-channel images given as flat ``float32 [n, input_dim]`` rows
  (``input_dim == image_size ** 2``, reshaped to ``[n, 1, image_size, image_size]``): per
  ``channels`` entry a ``Conv2d(kernel 3x3, padding 1) -> ReLU``, then a global average pool
  and a ``Linear`` head::

      {"family": "cnn", "input_dim": 64, "image_size": 8, "channels": [8, 16], "num_classes": 10}

  parameters ``convs.{i}.weight`` / ``convs.{i}.bias``, ``head.weight`` / ``head.bias``;
* ``"embedding_bag"`` -- for ``int64 [n, input_dim]`` token ids: ``EmbeddingBag(mode="mean",
  padding_idx=0)`` (id 0 is padding and is left out of the mean) then an MLP head::

      {"family": "embedding_bag", "vocab_size": 2000, "embedding_dim": 32,
       "hidden_sizes": [32], "num_classes": 2, "input_dim": 128}

  parameters ``embedding.weight`` and ``layers.{i}.weight`` / ``layers.{i}.bias``.

Fault model: config bytes are hostile.  :func:`parse_config` rejects, with a
:class:`InvalidModelConfig` whose message says why: more than ``CONFIG_BYTES_MAX`` bytes,
invalid UTF-8/JSON, duplicate keys, non-finite JSON constants, a non-object, unknown families,
keys unknown to or missing for the family, sizes that are not plain ``int`` (``bool``/``float``
rejected), sizes ``<= 0`` or above ``DIMENSION_MAX``, more than ``HIDDEN_LAYERS_MAX`` hidden or
``CONV_LAYERS_MAX`` conv layers, an ``image_size`` whose square is not ``input_dim``, a
``vocab_size`` below 2.  Subnet limits (:class:`FamilyLimits`: allowed families, task
dimensions and vocabulary, layer and parameter caps) are checked by :func:`check_limits` using
:func:`count_parameters`, which is computed from the config alone (Python ints, no overflow) so
that an oversized architecture is refused before anything is allocated.

Inputs are hostile too: every module checks its input's dtype (``float32`` or ``int64`` token
ids, see :data:`FAMILY_FEATURE_DTYPES`) and shape ``[n, input_dim]`` and raises ``ValueError``
otherwise; ``embedding_bag`` raises ``ValueError`` on a token id outside ``[0, vocab_size)``
(never clamps -- on CUDA an out-of-range index would be a device-side assert).

Determinism: :func:`build_model` draws its initial parameters from torch's global RNG, so the
caller seeds it (training) or overwrites every parameter (loading, see ``artifacts``).
Parameter names are fixed by the family and config (:func:`expected_shapes`).

Imports only torch and the standard library (runs on bare GPU workers).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import torch
from torch import nn

CONFIG_BYTES_MAX: Final = 4096
HIDDEN_LAYERS_MAX: Final = 32
CONV_LAYERS_MAX: Final = 8
DIMENSION_MAX: Final = 1 << 20
CONV_KERNEL_SIZE: Final = 3
MLP_FAMILY: Final = "mlp"
CNN_FAMILY: Final = "cnn"
EMBEDDING_BAG_FAMILY: Final = "embedding_bag"
FLOAT_FEATURES: Final = "float32"
TOKEN_FEATURES: Final = "int64"
FAMILY_FEATURE_DTYPES: Final[Mapping[str, str]] = MappingProxyType(
    {MLP_FAMILY: FLOAT_FEATURES, CNN_FAMILY: FLOAT_FEATURES, EMBEDDING_BAG_FAMILY: TOKEN_FEATURES}
)
FAMILIES: Final = frozenset(FAMILY_FEATURE_DTYPES)
DEFAULT_FAMILIES: Final = frozenset({MLP_FAMILY})
PAD_ID: Final = 0
_FAMILY_KEYS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        MLP_FAMILY: frozenset({"family", "input_dim", "hidden_sizes", "num_classes"}),
        CNN_FAMILY: frozenset({"family", "input_dim", "image_size", "channels", "num_classes"}),
        EMBEDDING_BAG_FAMILY: frozenset(
            {"family", "vocab_size", "embedding_dim", "hidden_sizes", "num_classes", "input_dim"}
        ),
    }
)
_TORCH_DTYPES: Final[Mapping[str, torch.dtype]] = MappingProxyType(
    {FLOAT_FEATURES: torch.float32, TOKEN_FEATURES: torch.int64}
)


class InvalidModelConfig(ValueError):
    """A model config is malformed or outside the subnet's limits; ``str(exc)`` says why."""


def families_for(feature_dtype: str) -> frozenset[str]:
    """The families that take features of ``feature_dtype`` (``"float32"`` or ``"int64"``)."""
    matching = frozenset(f for f, dtype in FAMILY_FEATURE_DTYPES.items() if dtype == feature_dtype)
    if not matching:
        raise ValueError(f"no model family takes {feature_dtype!r} features")
    return matching


@dataclass(frozen=True)
class FamilyLimits:
    """What a subnet accepts.

    ``layers_max`` counts parameterised layers (Linear, Conv2d and EmbeddingBag layers);
    ``params_max`` counts scalar parameters; ``bytes_max`` caps the safetensors file size.
    ``input_dim`` / ``num_classes`` (and, for token-id families, ``vocab_size``) are the subnet
    task's dimensions a config must match.  ``families`` is the allow-list of this subnet (by
    default only ``"mlp"``); all of them must take the same feature dtype, which is
    :attr:`feature_dtype`.  ``vocab_size`` is required with, and only with, token-id families.
    """

    params_max: int
    bytes_max: int
    layers_max: int
    input_dim: int
    num_classes: int
    vocab_size: int | None = None
    families: frozenset[str] = DEFAULT_FAMILIES

    def __post_init__(self) -> None:
        for field_name in ("params_max", "bytes_max", "layers_max", "input_dim", "num_classes"):
            value = getattr(self, field_name)
            if type(value) is not int or value < 1:
                raise ValueError(f"FamilyLimits.{field_name} must be a positive int, got {value!r}")
        families = self.families
        if isinstance(families, str) or not isinstance(families, Iterable):
            raise ValueError(f"FamilyLimits.families must be a set of names, got {families!r}")
        names = frozenset(families)
        object.__setattr__(self, "families", names)
        unknown = sorted(str(name) for name in names - FAMILIES)
        if not names or unknown:
            raise ValueError(
                f"FamilyLimits.families must be a non-empty subset of {sorted(FAMILIES)}, "
                f"got unknown {unknown}"
            )
        dtypes = {FAMILY_FEATURE_DTYPES[name] for name in names}
        if len(dtypes) != 1:
            raise ValueError(
                f"FamilyLimits.families {sorted(names)} mix input kinds {sorted(dtypes)}"
            )
        if self.feature_dtype == TOKEN_FEATURES:
            if type(self.vocab_size) is not int or self.vocab_size < 2:
                raise ValueError(
                    f"FamilyLimits.vocab_size must be an int >= 2 for token-id families, "
                    f"got {self.vocab_size!r}"
                )
        elif self.vocab_size is not None:
            raise ValueError("FamilyLimits.vocab_size is only for token-id families")

    @property
    def feature_dtype(self) -> str:
        """``"float32"`` or ``"int64"``: what every allowed family takes as input."""
        return FAMILY_FEATURE_DTYPES[next(iter(self.families))]


def _check_size(name: str, value: object, *, minimum: int = 1) -> int:
    if type(value) is not int:
        raise InvalidModelConfig(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum or value > DIMENSION_MAX:
        raise InvalidModelConfig(f"{name} must be in [{minimum}, {DIMENSION_MAX}], got {value}")
    return value


def _check_sizes(name: str, value: object, *, count_min: int, count_max: int) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidModelConfig(f"{name} must be a list of integers, got {type(value).__name__}")
    if len(value) > count_max:
        label = "hidden layers" if name == "hidden_sizes" else f"conv layers ({name})"
        raise InvalidModelConfig(f"too many {label}: {len(value)} > {count_max}")
    if len(value) < count_min:
        raise InvalidModelConfig(f"{name} needs at least {count_min} entry, got {len(value)}")
    return tuple(_check_size(f"{name}[{index}]", size) for index, size in enumerate(value))


def _check_family(family: object) -> str:
    if not isinstance(family, str) or family not in FAMILIES:
        raise InvalidModelConfig(
            f"unknown model family {family!r}; allowed: {', '.join(sorted(FAMILIES))}"
        )
    return family


def _validated(family: str, document: Mapping[str, object]) -> dict[str, Any]:
    """Check a family's raw values; return normalised ``ModelConfig`` keyword arguments."""
    values: dict[str, Any] = {
        "family": family,
        "input_dim": _check_size("input_dim", document["input_dim"]),
        "num_classes": _check_size("num_classes", document["num_classes"]),
    }
    if family in (MLP_FAMILY, EMBEDDING_BAG_FAMILY):
        values["hidden_sizes"] = _check_sizes(
            "hidden_sizes", document["hidden_sizes"], count_min=0, count_max=HIDDEN_LAYERS_MAX
        )
    else:
        values["hidden_sizes"] = ()
    if family == CNN_FAMILY:
        image_size = _check_size("image_size", document["image_size"])
        if image_size * image_size != values["input_dim"]:
            raise InvalidModelConfig(
                f"image_size {image_size} needs input_dim {image_size * image_size}, "
                f"got {values['input_dim']}"
            )
        values["image_size"] = image_size
        values["channels"] = _check_sizes(
            "channels", document["channels"], count_min=1, count_max=CONV_LAYERS_MAX
        )
    if family == EMBEDDING_BAG_FAMILY:
        values["vocab_size"] = _check_size("vocab_size", document["vocab_size"], minimum=2)
        values["embedding_dim"] = _check_size("embedding_dim", document["embedding_dim"])
    return values


@dataclass(frozen=True)
class ModelConfig:
    """A validated architecture description (construct via :func:`parse_config` for input).

    ``hidden_sizes`` is ``()`` for ``cnn``; ``image_size``/``channels`` are set only for
    ``cnn`` and ``vocab_size``/``embedding_dim`` only for ``embedding_bag`` (else ``None``/``()``).
    """

    family: str
    input_dim: int
    hidden_sizes: tuple[int, ...]
    num_classes: int
    image_size: int | None = field(default=None, kw_only=True)
    channels: tuple[int, ...] = field(default=(), kw_only=True)
    vocab_size: int | None = field(default=None, kw_only=True)
    embedding_dim: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        family = _check_family(self.family)
        keys = _FAMILY_KEYS[family]
        document = {key: getattr(self, key) for key in keys}
        values = _validated(family, document)
        foreign = {
            "hidden_sizes": (),
            "image_size": None,
            "channels": (),
            "vocab_size": None,
            "embedding_dim": None,
        }
        for key, absent in foreign.items():
            if key not in keys and getattr(self, key) not in (absent, []):
                raise InvalidModelConfig(f"{key} is not a field of family {family!r}")
        for key, value in values.items():
            object.__setattr__(self, key, value)  # lists become tuples

    @property
    def linear_layers(self) -> int:
        """Number of Linear layers (hidden layers + output layer; the head for ``cnn``)."""
        return 1 if self.family == CNN_FAMILY else len(self.hidden_sizes) + 1

    @property
    def layers(self) -> int:
        """Number of parameterised layers (Linear + Conv2d + EmbeddingBag)."""
        if self.family == CNN_FAMILY:
            return len(self.channels) + 1
        if self.family == EMBEDDING_BAG_FAMILY:
            return len(self.hidden_sizes) + 2
        return len(self.hidden_sizes) + 1

    @property
    def feature_dtype(self) -> str:
        """The input dtype the family takes: ``"float32"`` or ``"int64"`` (token ids)."""
        return FAMILY_FEATURE_DTYPES[self.family]

    def to_dict(self) -> dict[str, object]:
        """The family's JSON document (lists for sequences)."""
        document: dict[str, object] = {}
        for key in sorted(_FAMILY_KEYS[self.family]):
            value = getattr(self, key)
            document[key] = list(value) if isinstance(value, tuple) else value
        return document

    def to_json(self) -> bytes:
        """Canonical JSON encoding (sorted keys, compact, ASCII); round-trips via parse_config."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")


def config_from_dict(document: Mapping[str, object]) -> ModelConfig:
    """Validate a decoded config document (strict per-family schema) into a :class:`ModelConfig`."""
    if "family" not in document:
        raise InvalidModelConfig("missing config key(s) ['family']")
    family = _check_family(document["family"])
    keys = _FAMILY_KEYS[family]
    unknown = sorted(str(key) for key in set(document) - keys)
    if unknown:
        raise InvalidModelConfig(f"unknown config key(s) {unknown} for family {family!r}")
    missing = sorted(keys - set(document))
    if missing:
        raise InvalidModelConfig(f"missing config key(s) {missing} for family {family!r}")
    return ModelConfig(**_validated(family, document))


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
    return config_from_dict(document)


def _linear_dims(
    fan_in: int, hidden_sizes: tuple[int, ...], num_classes: int
) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of every Linear layer of an MLP (head), in order."""
    return list(itertools.pairwise([fan_in, *hidden_sizes, num_classes]))


def _layer_dims(config: ModelConfig) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of every Linear layer named ``layers.{i}``, in order."""
    fan_in = config.embedding_dim if config.family == EMBEDDING_BAG_FAMILY else config.input_dim
    if fan_in is None:
        raise InvalidModelConfig("embedding_bag config without embedding_dim")
    return _linear_dims(fan_in, config.hidden_sizes, config.num_classes)


def _conv_dims(config: ModelConfig) -> list[tuple[int, int]]:
    """``(in_channels, out_channels)`` of every Conv2d layer, in order (input: 1 channel)."""
    return list(itertools.pairwise([1, *config.channels]))


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameter name → shape of the module :func:`build_model` returns for ``config``."""
    shapes: dict[str, tuple[int, ...]] = {}
    if config.family == CNN_FAMILY:
        for index, (fan_in, fan_out) in enumerate(_conv_dims(config)):
            shapes[f"convs.{index}.weight"] = (fan_out, fan_in, CONV_KERNEL_SIZE, CONV_KERNEL_SIZE)
            shapes[f"convs.{index}.bias"] = (fan_out,)
        shapes["head.weight"] = (config.num_classes, config.channels[-1])
        shapes["head.bias"] = (config.num_classes,)
        return shapes
    if config.family == EMBEDDING_BAG_FAMILY:
        if config.vocab_size is None or config.embedding_dim is None:
            raise InvalidModelConfig("embedding_bag config without vocab_size/embedding_dim")
        shapes["embedding.weight"] = (config.vocab_size, config.embedding_dim)
    for index, (fan_in, fan_out) in enumerate(_layer_dims(config)):
        shapes[f"layers.{index}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{index}.bias"] = (fan_out,)
    return shapes


def count_parameters(config: ModelConfig) -> int:
    """Number of scalar parameters, computed from the config without building the model."""
    return sum(math.prod(shape) for shape in expected_shapes(config).values())


def check_limits(config: ModelConfig, limits: FamilyLimits) -> None:
    """Raise :class:`InvalidModelConfig` unless ``config`` fits the subnet's ``limits``."""
    if config.family not in limits.families:
        raise InvalidModelConfig(
            f"family {config.family!r} is not allowed on this subnet; allowed: "
            f"{', '.join(sorted(limits.families))}"
        )
    if config.input_dim != limits.input_dim:
        raise InvalidModelConfig(
            f"input_dim {config.input_dim} does not match the task's {limits.input_dim}"
        )
    if config.num_classes != limits.num_classes:
        raise InvalidModelConfig(
            f"num_classes {config.num_classes} does not match the task's {limits.num_classes}"
        )
    if config.vocab_size != limits.vocab_size:
        raise InvalidModelConfig(
            f"vocab_size {config.vocab_size} does not match the task's {limits.vocab_size}"
        )
    if config.layers > limits.layers_max:
        raise InvalidModelConfig(f"{config.layers} layers > layers_max {limits.layers_max}")
    params = count_parameters(config)
    if params > limits.params_max:
        raise InvalidModelConfig(f"{params} parameters > params_max {limits.params_max}")


def check_inputs(inputs: torch.Tensor, *, feature_dtype: str, input_dim: int) -> None:
    """Raise ``ValueError`` unless ``inputs`` is ``[n, input_dim]`` of ``feature_dtype``."""
    expected = _TORCH_DTYPES[feature_dtype]
    if not isinstance(inputs, torch.Tensor) or inputs.dtype != expected:
        got = inputs.dtype if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"model input must be a {feature_dtype} tensor, got {got}")
    if inputs.ndim != 2 or inputs.shape[1] != input_dim:
        raise ValueError(f"model input must have shape [n, {input_dim}], got {list(inputs.shape)}")


def _mlp_forward(layers: nn.ModuleList, inputs: torch.Tensor) -> torch.Tensor:
    hidden = inputs
    last = len(layers) - 1
    for index, layer in enumerate(layers):
        hidden = layer(hidden)
        if index < last:
            hidden = torch.relu(hidden)
    return hidden


class MLP(nn.Module):
    """``Linear -> ReLU -> ... -> Linear`` (no activation after the last layer: logits)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_dim = config.input_dim
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out) for fan_in, fan_out in _layer_dims(config)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_inputs(inputs, feature_dtype=FLOAT_FEATURES, input_dim=self.input_dim)
        return _mlp_forward(self.layers, inputs)


class CNN(nn.Module):
    """``[Conv2d 3x3 pad 1 -> ReLU] * k -> global average pool -> Linear`` on square images."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.image_size is None:
            raise InvalidModelConfig("cnn config without image_size")
        self.input_dim = config.input_dim
        self.image_size = config.image_size
        self.convs = nn.ModuleList(
            nn.Conv2d(fan_in, fan_out, kernel_size=CONV_KERNEL_SIZE, padding=1)
            for fan_in, fan_out in _conv_dims(config)
        )
        self.head = nn.Linear(config.channels[-1], config.num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_inputs(inputs, feature_dtype=FLOAT_FEATURES, input_dim=self.input_dim)
        hidden = inputs.reshape(inputs.shape[0], 1, self.image_size, self.image_size)
        for conv in self.convs:
            hidden = torch.relu(conv(hidden))
        return self.head(hidden.mean(dim=(2, 3)))


class EmbeddingBagClassifier(nn.Module):
    """Mean of the non-padding token embeddings, then ``Linear -> ReLU -> ... -> Linear``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size is None or config.embedding_dim is None:
            raise InvalidModelConfig("embedding_bag config without vocab_size/embedding_dim")
        self.input_dim = config.input_dim
        self.vocab_size = config.vocab_size
        self.embedding = nn.EmbeddingBag(
            config.vocab_size, config.embedding_dim, mode="mean", padding_idx=PAD_ID
        )
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out) for fan_in, fan_out in _layer_dims(config)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        check_inputs(inputs, feature_dtype=TOKEN_FEATURES, input_dim=self.input_dim)
        if inputs.numel() and (
            int(inputs.min().item()) < 0 or int(inputs.max().item()) >= self.vocab_size
        ):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}) (no clamping)")
        return _mlp_forward(self.layers, self.embedding(inputs))


def build_model(config: ModelConfig) -> nn.Module:
    """Build the module for ``config`` (initialised from torch's global RNG; float32)."""
    if config.family == MLP_FAMILY:
        return MLP(config)
    if config.family == CNN_FAMILY:
        return CNN(config)
    if config.family == EMBEDDING_BAG_FAMILY:
        return EmbeddingBagClassifier(config)
    raise InvalidModelConfig(f"unknown model family {config.family!r}")
