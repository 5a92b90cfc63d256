"""Evaluation runner, per-epoch sampling and the Dask fan-out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from taoflow.evaluation_sets import EvaluationSet, load_evaluation_set
from taoflow.tasks.evaluate import EvalJob, EvalResult, derive_seed, evaluate_job, sample_indices
from taoflow.tasks.evaluate.runner import _count_correct
from taoflow.tasks.miner_kit import train_mlp, train_model
from taoflow.tasks.models import FamilyLimits, ModelConfig, artifact_digest, save_submission

REPO_ROOT = Path(__file__).resolve().parents[1]
LIMITS = FamilyLimits(
    params_max=50_000, bytes_max=300_000, layers_max=4, input_dim=64, num_classes=10
)


@dataclass(frozen=True)
class Fixture:
    eval_set: EvaluationSet
    features: np.ndarray
    labels: np.ndarray
    good: list[tuple[EvalJob, nn.Module]]
    bad: list[EvalJob]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    root = tmp_path_factory.mktemp("submissions")
    eval_set = load_evaluation_set("digits")
    features, labels = eval_set.arrays("test")
    indices = sample_indices(seed=derive_seed("digits", 7), population=len(labels), sample_size=300)
    features, labels = features[indices], labels[indices]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    good: list[tuple[EvalJob, nn.Module]] = []
    for uid, (width, epochs) in enumerate([(4, 1), (16, 3), (32, 10)]):
        model, config = train_mlp(eval_set, hidden_sizes=(width,), epochs=epochs, seed=uid)
        model_path, config_path = save_submission(model, config, root / f"uid{uid}")
        good.append((EvalJob(uid, str(model_path), str(config_path)), model))
    torch.set_num_threads(previous)

    garbage = root / "uid10"
    garbage.mkdir()
    (garbage / "model.safetensors").write_bytes(b"\x80\x04this is not safetensors")
    (garbage / "config.json").write_bytes(b"not a config")
    bad = [
        EvalJob(10, str(garbage / "model.safetensors"), str(garbage / "config.json")),
        EvalJob(11, str(root / "missing" / "model.safetensors"), good[0][0].config_path),
    ]
    return Fixture(eval_set, features, labels, good, bad)


def _by_hand(model: nn.Module, features: np.ndarray, labels: np.ndarray) -> float:
    with torch.inference_mode():
        predictions = model(torch.from_numpy(features)).argmax(dim=1).numpy()
    return int((predictions == labels).sum()) / len(labels)


# --- runner ----------------------------------------------------------------------------------


def test_accuracy_matches_a_hand_computation(world: Fixture) -> None:
    scores = []
    for job, model in world.good:
        result = evaluate_job(job, features=world.features, labels=world.labels, limits=LIMITS)
        expected = _by_hand(model, world.features, world.labels)
        assert result.error is None
        assert result.score == expected
        assert result.n_samples == 300
        model_bytes = Path(job.model_path).read_bytes()
        config_bytes = Path(job.config_path).read_bytes()
        assert result.artifact_digest == artifact_digest(
            model_bytes=model_bytes, config_bytes=config_bytes
        )
        small_batches = evaluate_job(
            job, features=world.features, labels=world.labels, limits=LIMITS, batch_size=7
        )
        assert small_batches.score == result.score
        scores.append(result.score)
    assert scores == sorted(scores) and scores[-1] > 0.9


def test_bad_models_score_zero_with_a_reason(world: Fixture, tmp_path: Path) -> None:
    garbage, missing = world.bad
    result = evaluate_job(garbage, features=world.features, labels=world.labels, limits=LIMITS)
    assert (result.score, result.n_samples) == (0.0, 300)
    assert result.error is not None and result.error.startswith(
        "bad_config:"
    )  # config is checked before the weights
    assert result.artifact_digest is not None

    result = evaluate_job(missing, features=world.features, labels=world.labels, limits=LIMITS)
    assert result.score == 0.0 and result.artifact_digest is None
    assert result.error is not None and result.error.startswith("unreadable:")

    good_job = world.good[0][0]
    tiny = FamilyLimits(**{**LIMITS.__dict__, "bytes_max": 100})
    result = evaluate_job(good_job, features=world.features, labels=world.labels, limits=tiny)
    assert result.error is not None and result.error.startswith("too_large:")

    header_garbage = tmp_path / "model.safetensors"
    header_garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    job = EvalJob(5, str(header_garbage), good_job.config_path)
    result = evaluate_job(job, features=world.features, labels=world.labels, limits=LIMITS)
    assert result.error is not None and result.error.startswith("bad_header:")
    assert "\n" not in result.error


def test_special_files_do_not_hang_the_worker(world: Fixture, tmp_path: Path) -> None:
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    job = EvalJob(1, str(fifo), world.good[0][0].config_path)
    started = time.monotonic()
    result = evaluate_job(job, features=world.features, labels=world.labels, limits=LIMITS)
    assert time.monotonic() - started < 5
    assert result.error is not None and "not a regular file" in result.error
    job = EvalJob(2, str(tmp_path), world.good[0][0].config_path)  # a directory
    result = evaluate_job(job, features=world.features, labels=world.labels, limits=LIMITS)
    assert result.score == 0.0 and result.error is not None


class _WrongShape(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(inputs.shape[0], 3)


class _NonFinite(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(inputs.shape[0], 10)
        out[0, 0] = float("nan")
        return out


@pytest.mark.parametrize(
    ("model", "needle"), [(_WrongShape(), "output shape"), (_NonFinite(), "NaN")]
)
def test_bad_outputs_are_refused(world: Fixture, model: nn.Module, needle: str) -> None:
    from taoflow.tasks.models import ArtifactRejected

    with pytest.raises(ArtifactRejected, match=needle) as info:
        _count_correct(
            model,
            features=world.features,
            labels=world.labels,
            num_classes=10,
            batch_size=64,
            device=torch.device("cpu"),
        )
    assert info.value.code == "bad_output"


def test_caller_errors_raise(world: Fixture) -> None:
    job = world.good[0][0]
    with pytest.raises(ValueError, match="float32"):
        evaluate_job(
            job, features=world.features.astype(np.float64), labels=world.labels, limits=LIMITS
        )
    with pytest.raises(ValueError, match="shape"):
        evaluate_job(job, features=world.features[:, :10], labels=world.labels, limits=LIMITS)
    with pytest.raises(ValueError, match="same non-zero"):
        evaluate_job(job, features=world.features, labels=world.labels[:5], limits=LIMITS)
    with pytest.raises(ValueError, match="device"):
        evaluate_job(
            job, features=world.features, labels=world.labels, limits=LIMITS, device="tpu:0"
        )


def test_runner_imports_without_prefect_dask_or_mlflow() -> None:
    code = (
        "import sys\n"
        "for name in ('prefect', 'dask', 'distributed', 'mlflow'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "import taoflow.tasks.evaluate, tasks.evaluate.runner, tasks.evaluate.sampling\n"
        "import taoflow.tasks.models, evaluation_sets\n"
        "print('ok')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, check=False
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout.decode().strip() == "ok"


# --- sampling --------------------------------------------------------------------------------


def test_sample_indices_are_deterministic_sorted_and_bounded() -> None:
    seed = derive_seed(b"ledger-head", "digits", 42)
    first = sample_indices(seed=seed, population=360, sample_size=100)
    assert np.array_equal(first, sample_indices(seed=seed, population=360, sample_size=100))
    assert first.dtype == np.int64 and first.shape == (100,)
    assert np.all(np.diff(first) > 0)
    assert first[0] >= 0 and first[-1] < 360
    other = sample_indices(
        seed=derive_seed(b"ledger-head", "digits", 43), population=360, sample_size=100
    )
    assert not np.array_equal(first, other)
    assert np.array_equal(
        sample_indices(seed=seed, population=50, sample_size=50), np.arange(50, dtype=np.int64)
    )
    assert sample_indices(seed=seed, population=50, sample_size=0).shape == (0,)
    assert sample_indices(seed=seed, population=0, sample_size=0).shape == (0,)


def test_sample_indices_are_pinned() -> None:
    """Cross-version stability: only numpy's raw PCG64 stream is used, which numpy keeps fixed."""
    got = sample_indices(seed=b"taoflow", population=1000, sample_size=8).tolist()
    assert got == PINNED_SAMPLE


PINNED_SAMPLE = [163, 275, 391, 501, 653, 699, 765, 799]


def test_sample_indices_are_roughly_uniform() -> None:
    counts = np.zeros(20, dtype=np.int64)
    for trial in range(2000):
        counts[sample_indices(seed=derive_seed(trial), population=20, sample_size=5)] += 1
    expected = 2000 * 5 / 20
    assert np.all(np.abs(counts - expected) < 0.15 * expected)


@pytest.mark.parametrize(("population", "sample_size"), [(10, 11), (10, -1), (-1, 0)])
def test_sample_indices_reject_bad_sizes(population: int, sample_size: int) -> None:
    with pytest.raises(ValueError):
        sample_indices(seed=b"x", population=population, sample_size=sample_size)


def test_derive_seed_is_unambiguous() -> None:
    assert derive_seed("ab", "c") != derive_seed("a", "bc")
    assert len({derive_seed(1), derive_seed("1"), derive_seed(b"1")}) == 3
    assert derive_seed() != derive_seed(b"")
    assert derive_seed("a", 1) == derive_seed("a", 1) and len(derive_seed("a")) == 32
    with pytest.raises(TypeError):
        derive_seed(True)
    with pytest.raises(TypeError):
        derive_seed(1.5)  # type: ignore[arg-type]


# --- fan-out ---------------------------------------------------------------------------------


def test_fanout_matches_direct_results_for_one_and_two_workers(world: Fixture) -> None:
    from distributed import Client, LocalCluster

    from taoflow.tasks.evaluate.fanout import evaluate_all

    jobs = [job for job, _ in reversed(world.good)] + list(world.bad)
    direct = sorted(
        (
            evaluate_job(job, features=world.features, labels=world.labels, limits=LIMITS)
            for job in jobs
        ),
        key=lambda result: result.uid,
    )
    outcomes: dict[int, list[EvalResult]] = {}
    for n_workers in (1, 2):
        with (
            LocalCluster(
                n_workers=n_workers,
                processes=True,
                threads_per_worker=1,
                dashboard_address=None,
                host="127.0.0.1",
            ) as cluster,
            Client(cluster) as client,
        ):
            outcomes[n_workers] = evaluate_all(
                client,
                jobs,
                features=world.features,
                labels=world.labels,
                limits=LIMITS,
                timeout_s=60,
            )
            assert (
                evaluate_all(
                    client,
                    [],
                    features=world.features,
                    labels=world.labels,
                    limits=LIMITS,
                    timeout_s=1,
                )
                == []
            )
            with pytest.raises(ValueError, match="duplicate"):
                evaluate_all(
                    client,
                    [jobs[0], jobs[0]],
                    features=world.features,
                    labels=world.labels,
                    limits=LIMITS,
                    timeout_s=1,
                )
            if n_workers == 1:
                # Occupy the only worker thread for longer than both phases' bounds
                # (0.5 s x (2 tasks + 1) each): every job is still queued at its deadline.
                blocker = client.submit(time.sleep, 5, pure=False)
                timed_out = evaluate_all(
                    client,
                    jobs[:2],
                    features=world.features,
                    labels=world.labels,
                    limits=LIMITS,
                    timeout_s=0.5,
                )
                assert [r.uid for r in timed_out] == sorted(job.uid for job in jobs[:2])
                for result in timed_out:
                    assert result.score == 0.0 and result.n_samples == 300
                    assert result.error is not None and result.error.startswith("timeout:")
                blocker.result()
    assert outcomes[1] == outcomes[2] == direct
    assert [r.uid for r in direct] == [0, 1, 2, 10, 11]
    assert all(r.error is None for r in direct[:3])
    assert all(r.score == 0.0 and r.error for r in direct[3:])


# --- every family on its own set ------------------------------------------------------------


@dataclass(frozen=True)
class FamilyCase:
    eval_set: EvaluationSet
    job: EvalJob
    model: nn.Module
    config: ModelConfig
    limits: FamilyLimits


# (set, family, overrides, epochs, learning rate, batch size)
FAMILY_RECIPES: dict[str, tuple[str, dict[str, object], int, float, int]] = {
    "cnn": ("digits", {"channels": [8, 16]}, 6, 0.03, 32),
    "embedding_bag": ("reviews", {"embedding_dim": 16, "hidden_sizes": [16]}, 2, 0.01, 64),
    "mlp": ("wine", {"hidden_sizes": [16]}, 5, 0.01, 64),
}


@pytest.fixture(scope="module")
def family_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FamilyCase]:
    root = tmp_path_factory.mktemp("families")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    cases: dict[str, FamilyCase] = {}
    for uid, (family, recipe) in enumerate(sorted(FAMILY_RECIPES.items())):
        name, overrides, epochs, learning_rate, batch_size = recipe
        eval_set = load_evaluation_set(name)
        model, config = train_model(
            eval_set,
            family=family,
            config_overrides=overrides,
            epochs=epochs,
            seed=uid,
            learning_rate=learning_rate,
            batch_size=batch_size,
        )
        model_path, config_path = save_submission(model, config, root / family)
        limits = FamilyLimits(
            params_max=100_000,
            bytes_max=500_000,
            layers_max=4,
            input_dim=eval_set.input_dim,
            num_classes=eval_set.num_classes,
            vocab_size=eval_set.vocab_size,
            families=frozenset({family}),
        )
        job = EvalJob(uid, str(model_path), str(config_path))
        cases[family] = FamilyCase(eval_set, job, model, config, limits)
    torch.set_num_threads(previous)
    return cases


@pytest.mark.parametrize("family", sorted(FAMILY_RECIPES))
def test_evaluate_job_on_each_family(family_cases: dict[str, FamilyCase], family: str) -> None:
    case = family_cases[family]
    features, labels = case.eval_set.arrays("test")
    assert features.dtype == np.dtype(case.config.feature_dtype)
    result = evaluate_job(case.job, features=features, labels=labels, limits=case.limits)
    assert result.error is None and result.n_samples == len(labels)
    assert result.score == _by_hand(case.model, features, labels)
    majority = float(np.max(np.bincount(labels)) / len(labels))
    assert result.score > majority + 0.05
    again = evaluate_job(
        case.job, features=features, labels=labels, limits=case.limits, batch_size=13
    )
    assert again == result


def test_features_of_the_wrong_dtype_for_the_subnet_raise(
    family_cases: dict[str, FamilyCase],
) -> None:
    text, image = family_cases["embedding_bag"], family_cases["cnn"]
    ids, labels = text.eval_set.arrays("test")
    pixels, digit_labels = image.eval_set.arrays("test")
    with pytest.raises(ValueError, match="int64 numpy array"):
        evaluate_job(text.job, features=ids.astype(np.float32), labels=labels, limits=text.limits)
    with pytest.raises(ValueError, match="int64 numpy array"):
        evaluate_job(text.job, features=ids.astype(np.int32), labels=labels, limits=text.limits)
    with pytest.raises(ValueError, match="float32 numpy array"):
        evaluate_job(
            image.job, features=pixels.astype(np.int64), labels=digit_labels, limits=image.limits
        )


def test_out_of_range_token_ids_are_refused_not_clamped(
    family_cases: dict[str, FamilyCase],
) -> None:
    case = family_cases["embedding_bag"]
    ids, labels = case.eval_set.arrays("test")
    assert case.limits.vocab_size is not None
    for bad_id in (case.limits.vocab_size, -1):
        hostile = ids.copy()
        hostile[7, 0] = bad_id
        with pytest.raises(ValueError, match="token ids"):
            evaluate_job(case.job, features=hostile, labels=labels, limits=case.limits)
    # The model itself refuses too (a second line of defence on the worker).
    beyond = ids[:4].copy()
    beyond[0, 0] = case.limits.vocab_size
    with pytest.raises(ValueError, match="no clamping"):
        _count_correct(
            case.model,
            features=beyond,
            labels=labels[:4],
            num_classes=2,
            batch_size=4,
            device=torch.device("cpu"),
        )


def test_model_and_evaluation_set_mismatch_scores_zero_with_a_reason(
    family_cases: dict[str, FamilyCase],
) -> None:
    text, image, tabular = (family_cases[f] for f in ("embedding_bag", "cnn", "mlp"))
    pixels, digit_labels = image.eval_set.arrays("test")
    mlp_only = FamilyLimits(**{**image.limits.__dict__, "families": frozenset({"mlp"})})
    result = evaluate_job(image.job, features=pixels, labels=digit_labels, limits=mlp_only)
    assert result.score == 0.0 and result.error is not None
    assert result.error.startswith("over_limits:") and "'cnn' is not allowed" in result.error

    # A text model submitted to the digits subnet (which allows both float families).
    float_subnet = FamilyLimits(**{**image.limits.__dict__, "families": frozenset({"mlp", "cnn"})})
    result = evaluate_job(text.job, features=pixels, labels=digit_labels, limits=float_subnet)
    assert result.error is not None and "'embedding_bag' is not allowed" in result.error

    # A wine model on the digits subnet: its input_dim does not match the task.
    result = evaluate_job(tabular.job, features=pixels, labels=digit_labels, limits=float_subnet)
    assert result.error is not None and result.error.startswith("over_limits:")
    assert "input_dim" in result.error

    # A reviews model whose vocabulary differs from the subnet's.
    ids, labels = text.eval_set.arrays("test")
    assert text.limits.vocab_size is not None
    other_vocab = FamilyLimits(**{**text.limits.__dict__, "vocab_size": text.limits.vocab_size + 1})
    result = evaluate_job(text.job, features=ids, labels=labels, limits=other_vocab)
    assert result.error is not None and "vocab_size" in result.error


def test_input_kind_mismatch_is_a_model_failure(
    family_cases: dict[str, FamilyCase], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: should a float-only subnet ever load a token model, it scores 0."""
    import taoflow.tasks.evaluate.runner as runner

    text, image = family_cases["embedding_bag"], family_cases["cnn"]
    monkeypatch.setattr(
        runner,
        "load_submission_with_config",
        lambda **_: (text.model, text.config),
    )
    pixels, digit_labels = image.eval_set.arrays("test")
    result = evaluate_job(image.job, features=pixels, labels=digit_labels, limits=image.limits)
    assert result.score == 0.0 and result.error is not None
    assert result.error.startswith("input_mismatch:") and "int64" in result.error
