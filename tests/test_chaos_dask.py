"""Chaos: stopped or lost Dask workers end the evaluation stage clearly, within its deadline.

Workers are real processes: a ``LocalCluster`` of nanny-managed workers for the stopped-worker
cases (the nanny cannot wake a ``SIGSTOP``ped process, and the cluster must still close), and
``dask worker --no-nanny`` processes for the lost-worker case (nothing restarts them).  The fault
is injected by the task itself (a test closure shipped to the worker by value), so it strikes
in the middle of the evaluation, after the sample was scattered.  Each test is guarded by
``signal.alarm``: a hang fails instead of blocking the suite; no assertion is about timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster
from hang_guard import hang_guard

import taoflow.tasks.evaluate.fanout as fanout
from taoflow.tasks.evaluate.fanout import EvaluationFailed, evaluate_all, local_cluster_client
from taoflow.tasks.evaluate.runner import EvalJob, EvalResult
from taoflow.tasks.models import FamilyLimits, ModelConfig, build_model, save_submission

ALARM_S: Final = 120
TIMEOUT_S: Final = 2.0
CLOSE_TIMEOUT_S: Final = 3.0
WORKERS_STARTED_S: Final = 60.0
LIMITS = FamilyLimits(
    params_max=50_000, bytes_max=300_000, layers_max=4, input_dim=64, num_classes=10
)


@pytest.fixture(autouse=True)
def alarm_guard() -> Iterator[None]:
    with hang_guard(ALARM_S):
        yield


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.uniform(0.0, 16.0, size=(60, 64)).astype(np.float32)
    return features, rng.integers(0, 10, size=(60,), dtype=np.int64)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[EvalJob]:
    root = tmp_path_factory.mktemp("chaos-dask")
    result = []
    for uid, hidden in enumerate(((8,), (8,), (16,))):
        config = ModelConfig("mlp", 64, hidden, 10)
        torch.manual_seed(uid)
        model_path, config_path = save_submission(build_model(config), config, root / str(uid))
        result.append(EvalJob(uid, str(model_path), str(config_path)))
    return result


def _inject(monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    """Every evaluation task (batched or alone) sends ``signum`` to its own worker process."""

    def group(chunk: list[EvalJob], **kwargs: object) -> list[EvalResult]:
        os.kill(os.getpid(), signum)
        raise RuntimeError("unreachable")

    def alone(job: EvalJob, **kwargs: object) -> EvalResult:
        os.kill(os.getpid(), signum)
        raise RuntimeError("unreachable")

    monkeypatch.setattr(fanout, "evaluate_group_auto", group)
    monkeypatch.setattr(fanout, "evaluate_job", alone)


def _evaluate(
    client: Client, jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray]
) -> list[EvalResult]:
    features, labels = sample
    return evaluate_all(
        client, jobs, features=features, labels=labels, limits=LIMITS, timeout_s=TIMEOUT_S
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_workers_stopped_mid_evaluation_time_out_and_the_cluster_still_closes(
    jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject(monkeypatch, signal.SIGSTOP)
    with local_cluster_client(n_workers=1, close_timeout_s=CLOSE_TIMEOUT_S) as client:
        [pid] = [worker.pid for worker in client.cluster.workers.values()]  # type: ignore[union-attr]
        results = _evaluate(client, jobs, sample)
    assert [result.uid for result in results] == [0, 1, 2]
    for result in results:
        assert result.score == 0.0 and result.correct is None
        assert result.error is not None and result.error.startswith(
            "timeout: evaluation not finished within"
        ), result.error
    assert not _alive(pid)  # the stopped worker was killed when the cluster closed


def test_workers_stopped_before_evaluation_are_a_clear_error(
    jobs: list[EvalJob], sample: tuple[np.ndarray, np.ndarray]
) -> None:
    with local_cluster_client(n_workers=2, close_timeout_s=CLOSE_TIMEOUT_S) as client:
        client.wait_for_workers(2, timeout=WORKERS_STARTED_S)
        pids = [worker.pid for worker in client.cluster.workers.values()]  # type: ignore[union-attr]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        with pytest.raises(EvaluationFailed) as caught:
            _evaluate(client, jobs, sample)
    assert str(caught.value) == (
        f"Dask workers did not take the evaluation sample within {TIMEOUT_S:g} s "
        "(stopped or unreachable workers: TimeoutError); nothing was scored"
    )
    assert not any(_alive(pid) for pid in pids)


@pytest.fixture
def bare_workers() -> Iterator[tuple[Client, list[subprocess.Popen[bytes]]]]:
    """A scheduler with two ``--no-nanny`` worker processes: a dead worker stays dead."""
    with (
        LocalCluster(
            n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        command = [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address]
        options = ["--no-nanny", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
        workers = [
            subprocess.Popen([*command, *options], stderr=subprocess.DEVNULL) for _ in range(2)
        ]
        try:
            client.wait_for_workers(2, timeout=WORKERS_STARTED_S)
            yield client, workers
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()


def test_every_worker_lost_is_one_clear_error(
    jobs: list[EvalJob],
    sample: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
    bare_workers: tuple[Client, list[subprocess.Popen[bytes]]],
) -> None:
    client, workers = bare_workers
    _inject(monkeypatch, signal.SIGKILL)
    with pytest.raises(EvaluationFailed) as caught:
        _evaluate(client, jobs, sample)
    assert str(caught.value) == (
        f"every Dask worker was lost (none came back within {TIMEOUT_S:g} s); "
        "nothing was scored, run the epoch again"
    )
    assert [worker.wait() for worker in workers] == [-signal.SIGKILL, -signal.SIGKILL]
