"""The Dask fan-out of batched evaluation: chunking, worker-count independence, isolation, routing.

The identity test uses worker processes bound to 127.0.0.1 (as in production); the fault-injection
and routing tests use in-process workers (``processes=False``, ``inproc://``: no sockets) so that
a monkeypatched worker function is the one that runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster

import taoflow.tasks.evaluate.fanout as fanout
from taoflow.tasks.evaluate.fanout import cluster_route, evaluate_all, plan_chunks
from taoflow.tasks.evaluate.runner import EvalJob, EvalResult, evaluate_job
from taoflow.tasks.models import FamilyLimits, ModelConfig, build_model, save_submission

LIMITS = FamilyLimits(
    params_max=50_000, bytes_max=300_000, layers_max=4, input_dim=64, num_classes=10
)
ARCHITECTURES = ((8,), (16,), (32, 16))
SLOW_S = 4.0  # a "hung" evaluation: several times the timeouts used below


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.uniform(0.0, 16.0, size=(120, 64)).astype(np.float32)
    return features, rng.integers(0, 10, size=(120,), dtype=np.int64)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[EvalJob]:
    """17 random MLPs over 3 architectures, plus a garbage artifact and a missing one."""
    root = tmp_path_factory.mktemp("fanout")
    result = []
    for uid in range(17):
        hidden = ARCHITECTURES[uid % len(ARCHITECTURES)]
        config = ModelConfig("mlp", 64, hidden, 10)
        torch.manual_seed(uid)
        model_path, config_path = save_submission(build_model(config), config, root / str(uid))
        result.append(EvalJob(uid, str(model_path), str(config_path)))
    garbage = root / "garbage"
    garbage.mkdir()
    (garbage / "model.safetensors").write_bytes(b"junk")
    (garbage / "config.json").write_bytes(b"{not json")
    result.append(EvalJob(40, str(garbage / "model.safetensors"), str(garbage / "config.json")))
    result.append(EvalJob(41, str(root / "nowhere.safetensors"), result[0].config_path))
    return result


def _alone(jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray]) -> list[EvalResult]:
    features, labels = sample
    results = [evaluate_job(j, features=features, labels=labels, limits=LIMITS) for j in jobs]
    return sorted(results, key=lambda result: result.uid)


def test_plan_chunks_groups_by_architecture_with_bounded_uid_ordered_chunks(
    jobs: list[EvalJob],
) -> None:
    chunks = plan_chunks(jobs, chunk_models_max=4)
    assert sorted(job.uid for chunk in chunks for job in chunk) == sorted(j.uid for j in jobs)
    assert all(1 <= len(chunk) <= 4 for chunk in chunks)
    for chunk in chunks:
        assert [job.uid for job in chunk] == sorted(job.uid for job in chunk)
        assert len({fanout.architecture_key(job) for job in chunk}) == 1
    # uid 41 shares uid 0's config (its weights are missing): same architecture group.
    assert fanout.architecture_key(jobs[-1]) == fanout.architecture_key(jobs[0])
    assert fanout.architecture_key(jobs[-2]) == b""  # unreadable config: its own group
    assert plan_chunks(list(reversed(jobs)), chunk_models_max=4) == chunks
    with pytest.raises(ValueError, match="chunk_models_max"):
        plan_chunks(jobs, chunk_models_max=0)


def test_results_are_identical_for_one_and_two_worker_processes(
    jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray]
) -> None:
    features, labels = sample
    expected = _alone(jobs, sample)
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
            assert cluster_route(client) == fanout.Route("cpu", None, n_workers)
            outcomes[n_workers] = evaluate_all(
                client,
                list(reversed(jobs)),
                features=features,
                labels=labels,
                limits=LIMITS,
                timeout_s=60,
                chunk_models_max=4,
            )
    assert outcomes[1] == outcomes[2] == expected
    assert [r.uid for r in expected] == sorted(job.uid for job in jobs)
    assert all(r.error is None and r.correct is not None for r in expected[:17])
    assert all(r.error and r.score == 0.0 and r.correct is None for r in expected[17:])


@pytest.fixture
def threads_client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=1,
            processes=False,
            threads_per_worker=4,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_a_failing_group_is_rerun_member_by_member(
    jobs: list[EvalJob],
    sample: tuple[np.ndarray, np.ndarray],
    threads_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """uid 4 kills every batched pass it is in, and itself when alone: only uid 4 fails."""
    features, labels = sample
    real_group, real_job = fanout.evaluate_group_auto, fanout.evaluate_job
    rerun_log = tmp_path / "rerun.log"  # Dask may copy the closures: log through a file

    def crashing_group(chunk: list[EvalJob], **kwargs: object) -> list[EvalResult]:
        if any(job.uid == 4 for job in chunk):
            raise MemoryError("worker out of memory (simulated)")
        return real_group(chunk, **kwargs)  # type: ignore[arg-type]

    def crashing_job(job: EvalJob, **kwargs: object) -> EvalResult:
        with rerun_log.open("a") as log:
            log.write(f"{job.uid}\n")
        if job.uid == 4:
            raise MemoryError("worker out of memory (simulated)")
        return real_job(job, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fanout, "evaluate_group_auto", crashing_group)
    monkeypatch.setattr(fanout, "evaluate_job", crashing_job)
    results = evaluate_all(
        threads_client,
        jobs,
        features=features,
        labels=labels,
        limits=LIMITS,
        timeout_s=60,
        chunk_models_max=4,
    )
    chunk_of_4 = next(chunk for chunk in plan_chunks(jobs, chunk_models_max=4) if jobs[4] in chunk)
    rerun = sorted(int(line) for line in rerun_log.read_text().split())
    assert rerun == sorted(job.uid for job in chunk_of_4)  # only that chunk was re-run
    expected = {r.uid: r for r in _alone(jobs, sample)}
    by_uid = {r.uid: r for r in results}
    assert by_uid[4].score == 0.0 and by_uid[4].error is not None
    assert by_uid[4].error.startswith("worker_error: MemoryError")
    assert all(by_uid[uid] == expected[uid] for uid in by_uid if uid != 4)


def test_a_slow_model_times_out_alone(
    jobs: list[EvalJob],
    sample: tuple[np.ndarray, np.ndarray],
    threads_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    features, labels = sample
    real_group, real_job = fanout.evaluate_group_auto, fanout.evaluate_job

    def slow_group(chunk: list[EvalJob], **kwargs: object) -> list[EvalResult]:
        if any(job.uid == 7 for job in chunk):
            time.sleep(SLOW_S)
        return real_group(chunk, **kwargs)  # type: ignore[arg-type]

    def slow_job(job: EvalJob, **kwargs: object) -> EvalResult:
        if job.uid == 7:
            time.sleep(SLOW_S)
        return real_job(job, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fanout, "evaluate_group_auto", slow_group)
    monkeypatch.setattr(fanout, "evaluate_job", slow_job)
    results = evaluate_all(
        threads_client,
        jobs[:9],
        features=features,
        labels=labels,
        limits=LIMITS,
        timeout_s=1.0,
        chunk_models_max=2,
    )
    expected = {r.uid: r for r in _alone(jobs[:9], sample)}
    by_uid = {r.uid: r for r in results}
    assert sorted(by_uid) == list(range(9))
    assert by_uid[7].score == 0.0 and by_uid[7].error is not None
    assert by_uid[7].error.startswith("timeout:")
    assert all(by_uid[uid] == expected[uid] for uid in by_uid if uid != 7)


def test_gpu_workers_get_cuda_tasks_through_the_gpu_resource(
    jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray]
) -> None:
    """A worker advertising GPU=1 gets ``device="cuda"``; this machine has no CUDA, so every
    model fails with the worker's own refusal -- which proves where and how it was routed."""
    features, labels = sample
    with (
        LocalCluster(
            n_workers=1,
            processes=False,
            threads_per_worker=2,
            dashboard_address=None,
            resources={"GPU": 1},
        ) as cluster,
        Client(cluster) as client,
    ):
        assert cluster_route(client) == fanout.Route("cuda", {"GPU": 1}, 1)
        assert cluster_route(client, "cpu") == fanout.Route("cpu", None, 2)
        if torch.cuda.is_available():
            pytest.skip("this check needs a machine without CUDA")
        results = evaluate_all(
            client, jobs[:3], features=features, labels=labels, limits=LIMITS, timeout_s=60
        )
    assert all(r.error and "CUDA is not available" in r.error for r in results)


def test_cuda_without_gpu_workers_is_a_caller_error(
    jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray], threads_client: Client
) -> None:
    features, labels = sample
    with pytest.raises(ValueError, match="no worker advertises a GPU"):
        evaluate_all(
            threads_client,
            jobs[:2],
            features=features,
            labels=labels,
            limits=LIMITS,
            timeout_s=60,
            device="cuda",
        )
    with pytest.raises(ValueError, match="device"):
        evaluate_all(
            threads_client,
            jobs[:2],
            features=features,
            labels=labels,
            limits=LIMITS,
            timeout_s=60,
            device="tpu",
        )
    with pytest.raises(ValueError, match="chunk_models_max"):
        evaluate_all(
            threads_client,
            jobs[:2],
            features=features,
            labels=labels,
            limits=LIMITS,
            timeout_s=60,
            chunk_models_max=0,
        )
