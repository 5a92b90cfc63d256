"""Miner training kit: train an allow-listed model on an evaluation set's TRAIN split.

Purpose: give miners (and tests, demos and benchmarks) a fast, reproducible way to produce a
submission: ``model, config = train_model(eval_set, family=..., ...)`` (or the older
``train_mlp``) then ``save_submission(model, config, dir)``.

Config: :func:`train_model` fills the task-determined keys from the evaluation set
(``input_dim``, ``num_classes``; ``vocab_size`` for ``embedding_bag``; ``image_size`` =
``sqrt(input_dim)`` for ``cnn``), then the family's defaults (:data:`FAMILY_DEFAULTS`), then
``config_overrides``; the result goes through the same strict schema as a submitted config.
Overrides may not change ``family`` or a task-determined key (``ValueError``).

Invariants:

* only the ``train`` split is read -- the held-out ``test`` split is the validators';
* the family must take the set's features (``float32`` for ``mlp``/``cnn``, ``int64`` token
  ids for ``embedding_bag``), else ``ValueError``;
* deterministic: the same evaluation set, arguments and seed give bit-identical parameters
  (and therefore identical safetensors bytes) on the same torch build and thread count.  The
  seed drives parameter initialisation (inside ``torch.random.fork_rng``, so the caller's
  global RNG state is left untouched) and a dedicated ``torch.Generator`` for shuffling.
  ``torch.set_num_threads`` is the caller's business;
* the returned module is float32, on CPU, in ``eval()`` mode.

Fault model: inputs are the miner's own; invalid arguments raise ``ValueError`` (an invalid
config raises :class:`~tasks.models.families.InvalidModelConfig`, a ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import torch
from torch import nn

from taoflow.evaluation_sets.base import EvaluationSet
from taoflow.tasks.models.families import (
    CNN_FAMILY,
    EMBEDDING_BAG_FAMILY,
    FAMILIES,
    FAMILY_FEATURE_DTYPES,
    MLP_FAMILY,
    ModelConfig,
    build_model,
    config_from_dict,
)

FAMILY_DEFAULTS: Final[Mapping[str, Mapping[str, object]]] = MappingProxyType(
    {
        MLP_FAMILY: MappingProxyType({"hidden_sizes": (32,)}),
        CNN_FAMILY: MappingProxyType({"channels": (8, 16)}),
        EMBEDDING_BAG_FAMILY: MappingProxyType({"embedding_dim": 32, "hidden_sizes": (32,)}),
    }
)


def _task_keys(eval_set: EvaluationSet, family: str) -> dict[str, object]:
    """Config keys the evaluation set determines for ``family``."""
    keys: dict[str, object] = {
        "family": family,
        "input_dim": eval_set.input_dim,
        "num_classes": eval_set.num_classes,
    }
    if family == CNN_FAMILY:
        side = math.isqrt(eval_set.input_dim)
        if side * side != eval_set.input_dim:
            raise ValueError(
                f"cnn needs square images; {eval_set.name!r} has input_dim {eval_set.input_dim}"
            )
        keys["image_size"] = side
    if family == EMBEDDING_BAG_FAMILY:
        keys["vocab_size"] = eval_set.vocab_size
    return keys


def model_config_for(
    eval_set: EvaluationSet, *, family: str, config_overrides: Mapping[str, object]
) -> ModelConfig:
    """The validated config :func:`train_model` trains (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; allowed: {sorted(FAMILIES)}")
    if FAMILY_FEATURE_DTYPES[family] != eval_set.feature_dtype:
        raise ValueError(
            f"family {family!r} takes {FAMILY_FEATURE_DTYPES[family]} features; "
            f"{eval_set.name!r} has {eval_set.feature_dtype}"
        )
    task_keys = _task_keys(eval_set, family)
    for key, value in config_overrides.items():
        if key in task_keys and value != task_keys[key]:
            raise ValueError(
                f"config_overrides may not change {key!r} (the evaluation set fixes it)"
            )
    document = {**FAMILY_DEFAULTS[family], **config_overrides, **task_keys}
    return config_from_dict(document)


def train_model(
    eval_set: EvaluationSet,
    *,
    family: str,
    config_overrides: Mapping[str, object],
    epochs: int,
    seed: int,
    learning_rate: float = 0.01,
    batch_size: int = 64,
) -> tuple[nn.Module, ModelConfig]:
    """Train a ``family`` model with Adam + cross-entropy on ``eval_set``'s train split.

    Returns ``(model, config)`` ready for :func:`tasks.models.artifacts.save_submission`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not learning_rate > 0.0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    config = model_config_for(eval_set, family=family, config_overrides=config_overrides)
    features_np, labels_np = eval_set.arrays("train")
    n_rows = features_np.shape[0]
    if n_rows == 0:
        raise ValueError(f"evaluation set {eval_set.name!r} has an empty train split")
    features = torch.from_numpy(features_np)
    labels = torch.from_numpy(labels_np)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config)
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()

    model.train()
    for _ in range(epochs):
        order = torch.randperm(n_rows, generator=shuffle)
        for start in range(0, n_rows, batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(features[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    return model, config


def train_mlp(
    eval_set: EvaluationSet,
    *,
    hidden_sizes: tuple[int, ...],
    epochs: int,
    seed: int,
    learning_rate: float = 0.01,
    batch_size: int = 64,
) -> tuple[nn.Module, ModelConfig]:
    """Train an ``"mlp"`` (``train_model`` with ``family="mlp"``); kept for existing callers."""
    return train_model(
        eval_set,
        family=MLP_FAMILY,
        config_overrides={"hidden_sizes": tuple(hidden_sizes)},
        epochs=epochs,
        seed=seed,
        learning_rate=learning_rate,
        batch_size=batch_size,
    )
