"""Miner training kit: train an allow-listed model on an evaluation set's TRAIN split.

Purpose: give miners (and tests, demos and benchmarks) a fast, reproducible way to produce a
submission: ``model, config = train_mlp(...)`` then ``save_submission(model, config, dir)``.

Invariants:

* only the ``train`` split is read -- the held-out ``test`` split is the validators';
* deterministic: the same evaluation set, arguments and seed give bit-identical parameters
  (and therefore identical safetensors bytes) on the same torch build and thread count.  The
  seed drives parameter initialisation (inside ``torch.random.fork_rng``, so the caller's
  global RNG state is left untouched) and a dedicated ``torch.Generator`` for shuffling.
  ``torch.set_num_threads`` is the caller's business;
* the returned module is float32, on CPU, in ``eval()`` mode.

Fault model: inputs are the miner's own; invalid arguments raise ``ValueError``.
"""

from __future__ import annotations

import torch
from torch import nn

from evaluation_sets.base import EvaluationSet
from tasks.models.families import MLP_FAMILY, ModelConfig, build_model


def train_mlp(
    eval_set: EvaluationSet,
    *,
    hidden_sizes: tuple[int, ...],
    epochs: int,
    seed: int,
    learning_rate: float = 0.01,
    batch_size: int = 64,
) -> tuple[nn.Module, ModelConfig]:
    """Train an ``"mlp"`` with Adam + cross-entropy on ``eval_set``'s train split.

    Returns ``(model, config)`` ready for :func:`tasks.models.artifacts.save_submission`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not learning_rate > 0.0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    config = ModelConfig(
        family=MLP_FAMILY,
        input_dim=eval_set.input_dim,
        hidden_sizes=tuple(hidden_sizes),
        num_classes=eval_set.num_classes,
    )
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
