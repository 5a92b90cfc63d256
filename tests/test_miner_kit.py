"""Miner kit: deterministic, fast training on the train split; capacity/training buys accuracy."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from evaluation_sets import EvaluationSet, load_evaluation_set
from tasks.miner_kit import train_mlp
from tasks.models import ModelConfig, submission_bytes


@pytest.fixture(scope="module")
def digits() -> EvaluationSet:
    return load_evaluation_set("digits")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread (and threads are the caller's business)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _test_accuracy(model: torch.nn.Module, eval_set: EvaluationSet) -> float:
    features, labels = eval_set.arrays("test")
    with torch.inference_mode():
        predictions = model(torch.from_numpy(features)).argmax(dim=1).numpy()
    return float(np.mean(predictions == labels))


def test_same_seed_gives_identical_bytes(digits: EvaluationSet) -> None:
    first = submission_bytes(*train_mlp(digits, hidden_sizes=(16,), epochs=3, seed=7))
    second = submission_bytes(*train_mlp(digits, hidden_sizes=(16,), epochs=3, seed=7))
    other = submission_bytes(*train_mlp(digits, hidden_sizes=(16,), epochs=3, seed=8))
    assert first == second
    assert first[0] != other[0]
    assert first[1] == other[1]


def test_returns_matching_config_in_eval_mode(digits: EvaluationSet) -> None:
    model, config = train_mlp(digits, hidden_sizes=(8, 4), epochs=1, seed=0)
    assert config == ModelConfig(family="mlp", input_dim=64, hidden_sizes=(8, 4), num_classes=10)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_leaves_the_global_rng_alone(digits: EvaluationSet) -> None:
    torch.manual_seed(99)
    before = torch.get_rng_state()
    train_mlp(digits, hidden_sizes=(4,), epochs=1, seed=1)
    assert torch.equal(before, torch.get_rng_state())


def test_bigger_longer_trained_model_scores_higher(digits: EvaluationSet) -> None:
    tiny, _ = train_mlp(digits, hidden_sizes=(4,), epochs=1, seed=0)
    strong, _ = train_mlp(digits, hidden_sizes=(64,), epochs=20, seed=0)
    tiny_accuracy = _test_accuracy(tiny, digits)
    strong_accuracy = _test_accuracy(strong, digits)
    assert strong_accuracy > 0.9
    assert strong_accuracy > tiny_accuracy + 0.2


def test_eight_models_train_in_a_few_seconds(digits: EvaluationSet) -> None:
    specs = [(4, 1), (8, 3), (16, 5), (24, 8), (32, 12), (48, 20), (64, 30), (64, 25)]
    started = time.perf_counter()
    for seed, (width, epochs) in enumerate(specs):
        train_mlp(digits, hidden_sizes=(width,), epochs=epochs, seed=seed)
    assert time.perf_counter() - started < 20.0  # ~2 s on 2 cores; generous for slow CI


@pytest.mark.parametrize(
    "kwargs",
    [{"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0}, {"hidden_sizes": (0,)}],
)
def test_invalid_arguments(digits: EvaluationSet, kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"hidden_sizes": (4,), "epochs": 1, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        train_mlp(digits, **arguments)  # type: ignore[arg-type]
