"""Miner kit: deterministic, fast training on the train split; capacity/training buys accuracy."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from taoflow.evaluation_sets import EvaluationSet, load_evaluation_set
from taoflow.tasks.miner_kit import train_mlp, train_model
from taoflow.tasks.models import InvalidModelConfig, ModelConfig, submission_bytes


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


# --- train_model: every family, every set ---------------------------------------------------

# (set, family, overrides, epochs, learning rate, batch size, accuracy floor)
RECIPES = [
    ("digits", "cnn", {"channels": [16, 32]}, 8, 0.03, 32, 0.85),
    ("reviews", "embedding_bag", {"embedding_dim": 32, "hidden_sizes": [32]}, 2, 0.01, 64, None),
    ("wine", "mlp", {"hidden_sizes": [16]}, 5, 0.01, 64, 0.8),
]


@pytest.mark.parametrize(
    ("name", "family", "overrides", "epochs", "learning_rate", "batch_size", "floor"),
    RECIPES,
    ids=[f"{r[0]}-{r[1]}" for r in RECIPES],
)
def test_trained_model_beats_chance_clearly(
    name: str,
    family: str,
    overrides: dict[str, object],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    floor: float | None,
) -> None:
    eval_set = load_evaluation_set(name)
    started = time.perf_counter()
    model, config = train_model(
        eval_set,
        family=family,
        config_overrides=overrides,
        epochs=epochs,
        seed=0,
        learning_rate=learning_rate,
        batch_size=batch_size,
    )
    assert time.perf_counter() - started < 10.0  # ~0.3-1 s on one thread
    assert config.family == family and not model.training
    _, labels = eval_set.arrays("test")
    majority = float(np.max(np.bincount(labels)) / len(labels))
    accuracy = _test_accuracy(model, eval_set)
    # Clearly better than always answering the most frequent class (0.66 for reviews).
    assert accuracy > majority + 0.08
    if floor is not None:
        assert accuracy > floor


@pytest.mark.parametrize(
    ("name", "family", "overrides"),
    [
        ("digits", "cnn", {"channels": [4]}),
        ("reviews", "embedding_bag", {"embedding_dim": 4, "hidden_sizes": []}),
    ],
)
def test_train_model_is_deterministic(name: str, family: str, overrides: dict[str, object]) -> None:
    eval_set = load_evaluation_set(name)
    runs = [
        submission_bytes(
            *train_model(eval_set, family=family, config_overrides=overrides, epochs=1, seed=seed)
        )
        for seed in (5, 5, 6)
    ]
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0] and runs[0][1] == runs[2][1]


def test_train_model_fills_task_keys_and_defaults() -> None:
    reviews = load_evaluation_set("reviews")
    _, config = train_model(reviews, family="embedding_bag", config_overrides={}, epochs=1, seed=0)
    assert config == ModelConfig(
        "embedding_bag", 128, (32,), 2, vocab_size=reviews.vocab_size, embedding_dim=32
    )
    digits = load_evaluation_set("digits")
    _, config = train_model(digits, family="cnn", config_overrides={}, epochs=1, seed=0)
    assert (config.image_size, config.channels, config.input_dim) == (8, (8, 16), 64)


def test_train_model_equals_train_mlp(digits: EvaluationSet) -> None:
    via_model = train_model(
        digits, family="mlp", config_overrides={"hidden_sizes": [8]}, epochs=1, seed=3
    )
    assert submission_bytes(*via_model) == submission_bytes(
        *train_mlp(digits, hidden_sizes=(8,), epochs=1, seed=3)
    )


@pytest.mark.parametrize(
    ("name", "family", "overrides", "error", "needle"),
    [
        ("digits", "embedding_bag", {}, ValueError, "int64"),
        ("reviews", "mlp", {}, ValueError, "float32"),
        ("reviews", "cnn", {}, ValueError, "float32"),
        ("wine", "cnn", {}, ValueError, "square"),
        ("digits", "resnet", {}, ValueError, "unknown model family"),
        ("digits", "cnn", {"input_dim": 49}, ValueError, "input_dim"),
        ("digits", "cnn", {"family": "mlp"}, ValueError, "family"),
        ("reviews", "embedding_bag", {"vocab_size": 10}, ValueError, "vocab_size"),
        ("digits", "cnn", {"kernel_size": 5}, InvalidModelConfig, "unknown config key"),
        ("digits", "cnn", {"channels": [0]}, InvalidModelConfig, r"\[1, "),
    ],
)
def test_train_model_rejects_bad_requests(
    name: str, family: str, overrides: dict[str, object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        train_model(
            load_evaluation_set(name), family=family, config_overrides=overrides, epochs=1, seed=0
        )
