"""Batched (vmapped, same-architecture) evaluation agrees with evaluating each model alone.

Every comparison is on whole :class:`EvalResult` values: score, error, digest and the per-row
correctness bits must be identical to :func:`tasks.evaluate.runner.evaluate_job`'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import taoflow.tasks.evaluate.batched as batched
from taoflow.tasks.evaluate.batched import evaluate_group
from taoflow.tasks.evaluate.runner import (
    EvalJob,
    EvalResult,
    correct_vector,
    evaluate_job,
    full_precision,
    pack_correct,
    subset_accuracy,
)
from taoflow.tasks.models import FamilyLimits, ModelConfig, build_model, save_submission

REPO_ROOT = Path(__file__).resolve().parents[1]
MLP_LIMITS = FamilyLimits(
    params_max=50_000, bytes_max=300_000, layers_max=4, input_dim=64, num_classes=10
)
ARCHITECTURES = ((8,), (16,), (32, 16), ())
N_ROWS = 257  # not a multiple of the batch sizes used below


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _digit_like(seed: int, rows: int = N_ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.uniform(0.0, 16.0, size=(rows, 64)).astype(np.float32)
    labels = rng.integers(0, 10, size=rows).astype(np.int64)
    return features, labels


def _save(model: nn.Module, config: ModelConfig, root: Path, uid: int) -> EvalJob:
    model_path, config_path = save_submission(model, config, root / f"uid{uid}")
    return EvalJob(uid, str(model_path), str(config_path))


def _random_mlp(uid: int, hidden: tuple[int, ...], *, scale: float = 1.0) -> nn.Module:
    torch.manual_seed(uid)
    model = build_model(ModelConfig("mlp", 64, hidden, 10))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(scale)
    return model


def _linear(model: nn.Module, index: int) -> nn.Linear:
    layer = model.get_submodule(f"layers.{index}")
    assert isinstance(layer, nn.Linear)
    return layer


def _alone(jobs: list[EvalJob], **kwargs: object) -> list[EvalResult]:
    return [evaluate_job(job, **kwargs) for job in jobs]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def many_mlps(tmp_path_factory: pytest.TempPathFactory) -> list[EvalJob]:
    """60 random MLPs over 4 architectures, with varied weight scales (incl. tiny logits)."""
    root = tmp_path_factory.mktemp("mlps")
    jobs = []
    for uid in range(60):
        hidden = ARCHITECTURES[uid % len(ARCHITECTURES)]
        scale = (0.01, 0.3, 1.0, 3.0)[(uid // 4) % 4]
        config = ModelConfig("mlp", 64, hidden, 10)
        jobs.append(_save(_random_mlp(uid, hidden, scale=scale), config, root, uid))
    return jobs


@pytest.mark.parametrize(("batch_size", "group_models_max"), [(1024, 64), (50, 7)])
def test_group_equals_each_model_alone_on_many_random_mlps(
    many_mlps: list[EvalJob], batch_size: int, group_models_max: int
) -> None:
    features, labels = _digit_like(1)
    shuffled = [many_mlps[i] for i in np.random.default_rng(2).permutation(len(many_mlps))]
    grouped = evaluate_group(
        shuffled,
        features=features,
        labels=labels,
        limits=MLP_LIMITS,
        batch_size=batch_size,
        group_models_max=group_models_max,
    )
    alone = _alone(
        shuffled, features=features, labels=labels, limits=MLP_LIMITS, batch_size=batch_size
    )
    assert [r.uid for r in grouped] == [job.uid for job in shuffled]  # order of the jobs
    assert grouped == alone
    assert all(r.error is None and r.correct is not None for r in grouped)
    assert len({r.score for r in grouped}) > 10  # the models really differ


def _tied_models(root: Path) -> tuple[list[EvalJob], list[nn.Module]]:
    """MLPs whose logits tie exactly: duplicated output rows, and an all-constant head."""
    jobs, models = [], []
    config = ModelConfig("mlp", 64, (16,), 10)
    for uid in range(8):
        model = _random_mlp(100 + uid, (16,))
        head = _linear(model, 1)
        with torch.no_grad():
            if uid == 0:  # every class ties on every row: argmax must be class 0
                head.weight.zero_()
                head.bias.fill_(0.25)
            else:  # class 9 duplicates class k; class 9 ties with it wherever they lead
                k = uid % 9
                head.weight[9] = head.weight[k]
                head.bias[9] = head.bias[k]
                head.bias[k] += 1.0  # make class k (and its twin) lead often
                head.bias[9] += 1.0
        jobs.append(_save(model, config, root, 200 + uid))
        models.append(model)
    return jobs, models


def test_argmax_ties_resolve_to_the_lowest_class_in_both_paths(tmp_path: Path) -> None:
    jobs, models = _tied_models(tmp_path)
    features, labels = _digit_like(3)
    grouped = evaluate_group(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    assert grouped == _alone(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    for result, model in zip(grouped, models, strict=True):
        with torch.inference_mode():
            logits = model(torch.from_numpy(features))
        first_max = (logits == logits.max(dim=1, keepdim=True).values).int().argmax(dim=1)
        assert np.array_equal(correct_vector(result), first_max.numpy() == labels)
    assert np.array_equal(correct_vector(grouped[0]), labels == 0)


def test_near_tie_guard_keeps_results_exact_when_stacked_rounding_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate a backend whose stacked kernels round differently: nudge higher classes up."""
    jobs, _ = _tied_models(tmp_path)
    features, labels = _digit_like(4)
    reference = _alone(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    original = batched.functional_call

    def rounding_differently(*args: object, **kwargs: object) -> torch.Tensor:
        logits = original(*args, **kwargs)  # type: ignore[arg-type]
        nudge = 1e-7 * torch.arange(logits.shape[-1], dtype=logits.dtype)
        return logits + nudge * (1.0 + logits.abs())

    monkeypatch.setattr(batched, "functional_call", rounding_differently)
    guarded = evaluate_group(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    assert guarded == reference

    monkeypatch.setattr(batched, "NEAR_TIE_RELATIVE", -1.0)  # guard off: ties now flip
    unguarded = evaluate_group(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    assert unguarded != reference


def test_bad_models_fail_alone_inside_a_group(tmp_path: Path, many_mlps: list[EvalJob]) -> None:
    features, labels = _digit_like(5)
    config = ModelConfig("mlp", 64, (16,), 10)
    overflow = _random_mlp(300, (16,))
    with torch.no_grad():
        _linear(overflow, 0).weight.fill_(3e38)  # finite parameters, infinite logits
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.safetensors").write_bytes(b"\x80\x04not safetensors")
    (garbage / "config.json").write_bytes(config.to_json())
    bad = [
        _save(overflow, config, tmp_path, 300),
        EvalJob(301, str(garbage / "model.safetensors"), str(garbage / "config.json")),
        EvalJob(302, str(tmp_path / "missing.safetensors"), many_mlps[1].config_path),
    ]
    jobs = [*many_mlps[:12], *bad]
    grouped = evaluate_group(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    assert grouped == _alone(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    by_uid = {r.uid: r for r in grouped}
    assert by_uid[300].error is not None and by_uid[300].error.startswith("bad_output:")
    assert by_uid[301].error is not None and by_uid[301].error.startswith("bad_header:")
    assert by_uid[302].error is not None and by_uid[302].error.startswith("unreadable:")
    assert all(by_uid[r].score == 0.0 and by_uid[r].correct is None for r in (300, 301, 302))
    assert all(by_uid[job.uid].error is None for job in many_mlps[:12])


def test_a_failing_stacked_pass_falls_back_to_each_model_alone(
    many_mlps: list[EvalJob], monkeypatch: pytest.MonkeyPatch
) -> None:
    features, labels = _digit_like(6)
    calls: list[int] = []

    def broken(stack: list[object], **_: object) -> None:
        calls.append(len(stack))
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(batched, "_stacked_pass", broken)
    jobs = many_mlps[:10]
    grouped = evaluate_group(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    assert calls and sum(calls) == len(jobs)  # the stacked pass was really tried
    assert grouped == _alone(jobs, features=features, labels=labels, limits=MLP_LIMITS)
    assert all(r.error is None for r in grouped)


# --- the other families ------------------------------------------------------------------------


def _family_cases(root: Path) -> dict[str, tuple[list[EvalJob], FamilyLimits, np.ndarray]]:
    rng = np.random.default_rng(7)
    vocab_size, tokens = 50, 12
    token_features = rng.integers(0, vocab_size, size=(90, tokens)).astype(np.int64)
    token_features[:, 8:] = 0  # padding (id 0) is left out of the mean
    token_features[5] = 0  # an all-padding row
    cases: dict[str, tuple[list[EvalJob], FamilyLimits, np.ndarray]] = {}
    configs = {
        "cnn": [
            ModelConfig("cnn", 64, (), 10, image_size=8, channels=channels)
            for channels in ((4,), (4, 8), (4,), (4, 8), (6,), (4,))
        ],
        "embedding_bag": [
            ModelConfig(
                "embedding_bag", tokens, hidden, 10, vocab_size=vocab_size, embedding_dim=dim
            )
            for hidden, dim in (((8,), 6), ((8,), 6), ((), 6), ((8,), 6), ((), 4), ((8,), 6))
        ],
    }
    for family, family_configs in configs.items():
        jobs = []
        for index, config in enumerate(family_configs):
            torch.manual_seed(1000 + index)
            model = build_model(config)
            jobs.append(_save(model, config, root / family, index))
        limits = FamilyLimits(
            params_max=100_000,
            bytes_max=500_000,
            layers_max=4,
            input_dim=64 if family == "cnn" else tokens,
            num_classes=10,
            vocab_size=None if family == "cnn" else vocab_size,
            families=frozenset({family}),
        )
        features = _digit_like(8, rows=90)[0] if family == "cnn" else token_features
        cases[family] = (jobs, limits, features)
    return cases


@pytest.mark.parametrize("family", ["cnn", "embedding_bag"])
def test_group_equals_each_model_alone_for_other_families(tmp_path: Path, family: str) -> None:
    jobs, limits, features = _family_cases(tmp_path)[family]
    labels = np.random.default_rng(9).integers(0, 10, size=(len(features),), dtype=np.int64)
    for batch_size in (1024, 16):
        grouped = evaluate_group(
            jobs, features=features, labels=labels, limits=limits, batch_size=batch_size
        )
        alone = _alone(jobs, features=features, labels=labels, limits=limits, batch_size=batch_size)
        assert grouped == alone
        assert all(r.error is None for r in grouped)


# --- per-row correctness -----------------------------------------------------------------------


def test_subset_accuracy_equals_evaluating_those_rows_alone(many_mlps: list[EvalJob]) -> None:
    features, labels = _digit_like(10)
    positions = np.sort(np.random.default_rng(11).choice(N_ROWS, size=100, replace=False))
    full = evaluate_group(many_mlps[:16], features=features, labels=labels, limits=MLP_LIMITS)
    for result, job in zip(full, many_mlps[:16], strict=True):
        on_rows = evaluate_job(
            job, features=features[positions], labels=labels[positions], limits=MLP_LIMITS
        )
        assert subset_accuracy(result, positions) == on_rows.score
        assert np.array_equal(correct_vector(result)[positions], correct_vector(on_rows))
        assert correct_vector(result).sum() / N_ROWS == result.score


def test_correctness_packing_round_trips_and_refuses_bad_input() -> None:
    mask = np.random.default_rng(12).random(13) < 0.5
    result = EvalResult(
        uid=1,
        score=float(mask.mean()),
        n_samples=13,
        error=None,
        artifact_digest="d",
        correct=pack_correct(mask),
    )
    assert len(result.correct or b"") == 2
    assert np.array_equal(correct_vector(result), mask)
    assert subset_accuracy(result, np.array([0, 12])) == (int(mask[0]) + int(mask[12])) / 2
    failed = EvalResult(uid=2, score=0.0, n_samples=13, error="bad_output: x", artifact_digest=None)
    assert subset_accuracy(failed, np.array([3])) == 0.0
    with pytest.raises(ValueError, match="no per-row correctness"):
        correct_vector(failed)
    with pytest.raises(ValueError, match="positions"):
        subset_accuracy(result, np.array([13]))
    with pytest.raises(ValueError, match="positions"):
        subset_accuracy(result, np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="bool"):
        pack_correct(mask.astype(np.int8))


def test_caller_errors_raise(many_mlps: list[EvalJob]) -> None:
    features, labels = _digit_like(13)
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_group(
            [many_mlps[0], many_mlps[0]], features=features, labels=labels, limits=MLP_LIMITS
        )
    with pytest.raises(ValueError, match="group_models_max"):
        evaluate_group(
            many_mlps[:2], features=features, labels=labels, limits=MLP_LIMITS, group_models_max=0
        )
    with pytest.raises(ValueError, match="float32"):
        evaluate_group(
            many_mlps[:2], features=features.astype(np.float64), labels=labels, limits=MLP_LIMITS
        )
    assert evaluate_group([], features=features, labels=labels, limits=MLP_LIMITS) == []


def test_full_precision_turns_tf32_off_on_cuda_only_and_restores() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with full_precision(torch.device("cpu")):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with full_precision(torch.device("cuda")):  # flags only: needs no GPU
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_batched_source_never_imports_orchestration() -> None:
    from test_architecture import FORBIDDEN_IN_GPU_RUNNER, imported_roots

    path = REPO_ROOT / "tasks" / "evaluate" / "batched.py"
    assert not imported_roots(path) & FORBIDDEN_IN_GPU_RUNNER


def test_batched_imports_without_orchestration() -> None:
    code = (
        "import sys\n"
        "for name in ('prefect', 'dask', 'distributed', 'mlflow', 'duckdb'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "import taoflow.tasks.evaluate.batched\n"
        "print('ok')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, check=False
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout.decode().strip() == "ok"


@pytest.mark.parametrize("strategy", ["loop", "auto"])
def test_loop_and_auto_strategies_equal_the_stacked_pass(
    many_mlps: list[EvalJob], strategy: str
) -> None:
    features, labels = _digit_like(12)
    stacked = evaluate_group(many_mlps[:24], features=features, labels=labels, limits=MLP_LIMITS)
    other = evaluate_group(
        many_mlps[:24], features=features, labels=labels, limits=MLP_LIMITS, strategy=strategy
    )
    assert [(r.uid, r.score, r.correct, r.error) for r in other] == [
        (r.uid, r.score, r.correct, r.error) for r in stacked
    ]


def test_unknown_strategy_is_refused(many_mlps: list[EvalJob]) -> None:
    features, labels = _digit_like(13)
    with pytest.raises(ValueError, match="strategy"):
        evaluate_group(
            many_mlps[:2], features=features, labels=labels, limits=MLP_LIMITS, strategy="fastest"
        )
