"""Fan batched evaluation out over a Dask cluster, with per-model isolation and timeouts.

Purpose: evaluate every eligible submission of an epoch with a handful of coarse Dask tasks
(~2 ms each, versus ~100 ms per Prefect task): the jobs are grouped by architecture (read from
each job's ``config.json`` on the client; an unreadable config just goes to its own group) and
each group is cut into chunks of at most ``chunk_models_max`` models; one task per chunk runs
:func:`tasks.evaluate.batched.evaluate_group`, which stacks same-architecture models into one
vmapped pass.  The sample is scattered once (``broadcast=True``, unique keys) and released
afterwards.

Invariants:

* exactly one :class:`EvalResult` per job, sorted by ``uid``; duplicate uids raise ``ValueError``;
* results do not depend on the number of workers: the chunks are a function of the jobs only,
  each chunk is a deterministic function of its files and the shared sample (Dask's nanny pins
  BLAS/OpenMP pools to one thread per worker process; ``batch_size`` is the same everywhere), and
  a chunk's results equal those of evaluating each member alone (``batched`` guarantees it), so
  the re-runs below change nothing but who fails;
* GPU routing: if any worker advertises a ``GPU`` resource (``resources={"GPU": n}`` when it was
  started) and ``device`` is left to ``None``, every task is submitted with
  ``resources={"GPU": 1}`` and runs on ``"cuda"``; otherwise on ``"cpu"`` (an explicit
  ``device="cuda..."`` without GPU workers raises ``ValueError``).

Fault model -- two phases, each task under its own deadline:

1. *batched*: one task per chunk.  A chunk task that raises, kills its worker (Dask retries,
   then ``KilledWorker``), returns something malformed, runs longer than ``timeout_s``, or has
   not even started when the phase's queue bound ``timeout_s * ceil(tasks / slots)`` passes, is
   cancelled and its members go to phase 2.  (A bad artifact or a model whose own forward pass
   fails never gets here: ``evaluate_group`` already fails such a model alone.)
2. *isolated*: each member of a failed chunk is re-run alone (:func:`evaluate_job`), one task
   per model, under the same rules; a model that still fails scores 0.0 with its reason
   (``worker_error: ...`` or ``timeout: ...``) -- only itself.  These tasks carry the sample
   inline instead of depending on the scattered copy, so a worker that crashes (and is
   restarted by its nanny) takes no other model's input with it.

"Running" time is measured on the worker (``TaskState.start_time``, polled every
``POLL_INTERVAL_S`` once ``timeout_s`` has passed; each worker gets ``POLL_REPLY_TIMEOUT_S`` to
answer, so a stopped worker cannot stall the poll), so a deadline may be overshot by about one
poll; no phase outlives ``timeout_s * (ceil(tasks / slots) + 1)`` plus one poll, whatever the
workers do, and the whole call never outlives ``stage_deadline_s``
(:func:`evaluation_deadline_s`: the sample transfer plus both phases, capped at
``EVALUATION_DEADLINE_S_MAX``) plus one poll.  ``slots`` is the number of worker threads (GPU
slots when routing to GPUs).

The cluster's own failures are one-line :class:`EvaluationFailed` errors, never a raw Dask
exception: the sample not accepted within ``timeout_s`` (stopped or unreachable workers), or no
worker left (none connected within ``min(timeout_s, WORKERS_RETURN_S_MAX)`` after failures:
``every Dask worker was lost …``).  Cancelling does NOT interrupt a task already running inside
a worker thread: a hung evaluation keeps that thread busy until it returns, which can make later
tasks miss their queue bound; :func:`local_cluster_client` closes its cluster within a bound
and kills worker processes that do not stop (a ``SIGSTOP``ped worker never does).
Invalid caller inputs (shapes, dtypes, duplicate uids, non-positive timeout or chunk size)
raise ``ValueError`` before anything is submitted.  Fetching an already finished result gets
at least ``FETCH_GRACE_S``, so a result computed in time is not lost to a slow transfer.

This module imports ``distributed``; the code it ships to workers (``batched``, ``runner``) does
not.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

import distributed
import numpy as np
import torch
from distributed.client import FuturesCancelledError

from taoflow.tasks.errors import StageError
from taoflow.tasks.evaluate.batched import GROUP_MODELS_MAX, evaluate_group_auto
from taoflow.tasks.evaluate.runner import (
    EvalJob,
    EvalResult,
    check_inputs,
    evaluate_job,
    failed_result,
    one_line,
    read_capped,
)
from taoflow.tasks.models.families import CONFIG_BYTES_MAX, FamilyLimits, parse_config
from taoflow.tasks.run_logs import quiet_dask

GPU_RESOURCE: Final = "GPU"
CHUNK_MODELS_MAX: Final = GROUP_MODELS_MAX
"""Models per Dask task (one batched pass each on the worker)."""
POLL_INTERVAL_S: Final = 0.1
POLL_REPLY_TIMEOUT_S: Final = 2.0
"""How long one worker may take to say what it is running (a stopped worker never does)."""
FETCH_GRACE_S: Final = 5.0
WORKERS_RETURN_S_MAX: Final = 30.0
"""After failures, how long to wait for at least one worker (a nanny restarts a dead one)."""
EVALUATION_DEADLINE_S_MAX: Final = 3600.0
"""Cap on the whole evaluation stage, however many models there are."""
CLUSTER_CLOSE_TIMEOUT_S: Final = 10.0
SCHEDULER_HTTP_ADDRESS: Final = "127.0.0.1:0"
"""The local scheduler's HTTP endpoint (health, metrics): loopback, any free port."""
_FINISHED: Final = "finished"
_UNGROUPED: Final = b""


@dataclass(frozen=True)
class _Bounds:
    """Per-task timeout, parallel slots and the stage's ``time.monotonic()`` deadline."""

    timeout_s: float
    slots: int
    stage_deadline_s: float


class EvaluationFailed(StageError):
    """The cluster itself failed (every worker lost, none answering): nothing was scored."""


@dataclass(frozen=True)
class Route:
    """Where the tasks run: ``device`` on the workers, Dask ``resources``, parallel ``slots``."""

    device: str
    resources: dict[str, float] | None
    slots: int


def cluster_route(client: distributed.Client, device: str | None = None) -> Route:
    """GPU if a worker advertises a ``GPU`` resource (and ``device`` allows it), else CPU.

    ``device`` is ``None`` (automatic), ``"cpu"`` or ``"cuda[:n]"``; anything else, or CUDA
    without GPU workers, raises ``ValueError``.
    """
    if device is not None:
        try:
            kind = torch.device(device).type
        except RuntimeError as exc:
            raise ValueError(f"invalid device {device!r}: {exc}") from None
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"unsupported device type {kind!r}")
    workers: dict[str, Any] = client.scheduler_info(n_workers=-1).get("workers", {})
    gpu_slots = sum(
        int(info.get("resources", {}).get(GPU_RESOURCE, 0)) for info in workers.values()
    )
    cpu_slots = sum(int(info.get("nthreads", 1)) for info in workers.values())
    wants_gpu = device is None or device.startswith("cuda")
    if wants_gpu and gpu_slots > 0:
        return Route(device=device or "cuda", resources={GPU_RESOURCE: 1}, slots=gpu_slots)
    if device is not None and device.startswith("cuda"):
        raise ValueError(f"device {device!r} requested but no worker advertises a GPU resource")
    return Route(device=device or "cpu", resources=None, slots=max(cpu_slots, 1))


def architecture_key(job: EvalJob) -> bytes:
    """The canonical config of ``job`` (what ``batched`` groups by); ``b""`` if unreadable."""
    try:
        raw = read_capped(job.config_path, bytes_max=CONFIG_BYTES_MAX, what="config.json")
        return parse_config(raw).to_json()
    except Exception:  # the worker fails the model with the precise reason
        return _UNGROUPED


def plan_chunks(
    jobs: Sequence[EvalJob], *, chunk_models_max: int = CHUNK_MODELS_MAX
) -> list[list[EvalJob]]:
    """Same-architecture chunks of at most ``chunk_models_max`` jobs, uid-ordered inside.

    A function of the jobs (and their config files) only -- never of the cluster.
    """
    if chunk_models_max < 1:
        raise ValueError(f"chunk_models_max must be >= 1, got {chunk_models_max}")
    groups: dict[bytes, list[EvalJob]] = {}
    for job in sorted(jobs, key=lambda job: job.uid):
        groups.setdefault(architecture_key(job), []).append(job)
    return [
        groups[key][start : start + chunk_models_max]
        for key in sorted(groups)
        for start in range(0, len(groups[key]), chunk_models_max)
    ]


def _running_tasks_s(dask_worker: distributed.Worker) -> dict[str, float]:
    """Runs on a worker: seconds each executing task has been running, by key."""
    now_s = time.time()
    return {
        str(ts.key): now_s - ts.start_time
        for ts in dask_worker.state.executing | dask_worker.state.long_running
        if ts.start_time is not None
    }


async def _poll_workers(
    client: distributed.Client, addresses: list[str], reply_timeout_s: float
) -> list[object]:
    async def one(address: str) -> object:
        try:
            return await asyncio.wait_for(
                client._run(_running_tasks_s, workers=[address], on_error="return"),
                reply_timeout_s,
            )
        except Exception:  # a stopped or dead worker says nothing
            return None

    return list(await asyncio.gather(*(one(address) for address in addresses)))


def _poll_running(client: distributed.Client) -> dict[str, float]:
    """Seconds each task has been running, from every worker that answers in time."""
    running: dict[str, float] = {}
    with contextlib.suppress(Exception):  # a dead scheduler connection runs nothing
        addresses = list(client.scheduler_info(n_workers=-1).get("workers", {}))
        replies = client.sync(_poll_workers, client, addresses, POLL_REPLY_TIMEOUT_S)
        for reply in replies:
            if isinstance(reply, dict):
                for value in reply.values():
                    if isinstance(value, dict):
                        running.update(value)
    return running


def _future_error(future: distributed.Future) -> str:
    try:
        exception = future.exception(timeout=1)
    except Exception as exc:  # the future may have been lost with its worker
        return one_line(f"worker_error: {type(exc).__name__}: {exc}")
    return one_line(f"worker_error: {type(exception).__name__}: {exception}")


def _await_tasks(
    client: distributed.Client,
    futures: list[distributed.Future],
    *,
    timeout_s: float,
    slots: int,
    stage_deadline_s: float,
) -> list[object]:
    """Each future's value, or an error string (``worker_error:``/``timeout:``) in its place.

    Cancels every future that did not finish (see the module's fault model for the bounds);
    nothing waits past ``stage_deadline_s`` (a ``time.monotonic()`` instant) plus one poll.
    """
    started_s = time.monotonic()
    waves = math.ceil(len(futures) / max(slots, 1))
    queue_deadline_s = min(started_s + timeout_s * waves, stage_deadline_s)
    hard_deadline_s = min(started_s + timeout_s * (waves + 1), stage_deadline_s)
    outcomes: dict[int, object] = {}
    pending = dict(enumerate(futures))
    seen_running: set[str] = set()
    try:
        while pending:
            now_s = time.monotonic()
            # Nothing can have run for timeout_s before timeout_s has passed: no polling yet.
            first_check_s = started_s + timeout_s
            wait_s = first_check_s - now_s if now_s < first_check_s else POLL_INTERVAL_S
            # A future cancelled because its inputs were lost raises here; its status says so.
            with contextlib.suppress(TimeoutError, FuturesCancelledError):
                distributed.wait(
                    list(pending.values()), timeout=max(wait_s, 1e-3), return_when="FIRST_COMPLETED"
                )
            for index, future in list(pending.items()):
                if future.status == _FINISHED:
                    fetch_timeout_s = max(hard_deadline_s - time.monotonic(), FETCH_GRACE_S)
                    try:
                        outcomes[index] = future.result(timeout=fetch_timeout_s)
                    except Exception as exc:  # lost data counts as a worker error
                        outcomes[index] = one_line(f"worker_error: result not fetched: {exc}")
                    del pending[index]
                elif future.status in ("error", "cancelled", "lost"):
                    outcomes[index] = _future_error(future)
                    del pending[index]
            now_s = time.monotonic()
            if not pending or now_s < min(started_s + timeout_s, hard_deadline_s):
                continue
            running = _poll_running(client)
            now_s = time.monotonic()
            for index, future in list(pending.items()):
                key = str(future.key)
                if key in running:
                    seen_running.add(key)
                if running.get(key, 0.0) > timeout_s:
                    reason = f"timeout: evaluation still running after {timeout_s:g} s"
                elif now_s > hard_deadline_s or (
                    key not in seen_running and now_s > queue_deadline_s
                ):
                    reason = (
                        f"timeout: evaluation not finished within {now_s - started_s:.3g} s "
                        f"(workers busy or not answering; status {future.status})"
                    )
                else:
                    continue
                outcomes[index] = one_line(reason)
                del pending[index]
        return [outcomes[index] for index in range(len(futures))]
    finally:
        client.cancel([future for future in futures if future.status != _FINISHED])


def _valid_group(value: object, chunk: list[EvalJob]) -> TypeGuard[list[EvalResult]]:
    return (
        isinstance(value, list)
        and len(value) == len(chunk)
        and all(
            isinstance(result, EvalResult) and result.uid == job.uid
            for result, job in zip(value, chunk, strict=True)
        )
    )


def evaluation_deadline_s(*, timeout_s: float, models: int, slots: int) -> float:
    """The bound on a whole :func:`evaluate_all` call: the sample transfer plus two phases of
    ``ceil(models / slots) + 1`` per-task timeouts each, capped at ``EVALUATION_DEADLINE_S_MAX``.
    """
    waves = math.ceil(max(models, 1) / max(slots, 1))
    return min(timeout_s * (2 * (waves + 1) + 1), EVALUATION_DEADLINE_S_MAX)


def _lost_every_worker(wait_s: float) -> EvaluationFailed:
    return EvaluationFailed(
        f"every Dask worker was lost (none came back within {wait_s:g} s); "
        "nothing was scored, run the epoch again"
    )


def _require_workers(client: distributed.Client, *, wait_s: float) -> None:
    """Return once at least one worker is connected; ``EvaluationFailed`` after ``wait_s``."""
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except (TimeoutError, OSError):
        raise _lost_every_worker(wait_s) from None


def _scatter_inputs(
    client: distributed.Client, arrays: list[np.ndarray], *, timeout_s: float
) -> list[distributed.Future]:
    """Broadcast the sample to every worker, within ``timeout_s`` (a stopped worker never
    acknowledges: the whole transfer is bounded, not each connection)."""
    _require_workers(client, wait_s=timeout_s)
    try:
        futures: list[distributed.Future] = client.sync(
            client._scatter,  # the public ``scatter`` bounds only the wait for workers
            arrays,
            broadcast=True,
            hash=False,
            timeout=timeout_s,
            callback_timeout=timeout_s,
        )
    except (TimeoutError, OSError, FuturesCancelledError) as exc:
        raise EvaluationFailed(
            f"Dask workers did not take the evaluation sample within {timeout_s:g} s "
            f"(stopped or unreachable workers: {type(exc).__name__}); nothing was scored"
        ) from None
    return futures


def evaluate_all(
    client: distributed.Client,
    jobs: list[EvalJob],
    *,
    features: np.ndarray,
    labels: np.ndarray,
    limits: FamilyLimits,
    timeout_s: float,
    batch_size: int = 1024,
    device: str | None = None,
    chunk_models_max: int = CHUNK_MODELS_MAX,
    stage_deadline_s: float | None = None,
) -> list[EvalResult]:
    """Evaluate ``jobs`` on the cluster behind ``client``; one result per job, sorted by uid.

    ``timeout_s`` bounds each task's running time (a batched chunk, or one model re-run alone);
    ``stage_deadline_s`` bounds the whole call (default :func:`evaluation_deadline_s`);
    ``device=None`` picks CUDA when the workers advertise a GPU resource, else CPU.  Raises
    :class:`EvaluationFailed` when the cluster itself fails (no worker left, none answering).
    """
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive finite number, got {timeout_s}")
    uids = [job.uid for job in jobs]
    if len(set(uids)) != len(uids):
        raise ValueError("duplicate uids in jobs")
    check_inputs(features=features, labels=labels, limits=limits, batch_size=batch_size)
    chunks = plan_chunks(jobs, chunk_models_max=chunk_models_max)
    if not jobs:
        return []
    route = cluster_route(client, device)
    if stage_deadline_s is None:
        stage_deadline_s = evaluation_deadline_s(
            timeout_s=timeout_s, models=len(jobs), slots=route.slots
        )
    deadline_s = time.monotonic() + stage_deadline_s
    options: dict[str, Any] = {
        "limits": limits,
        "batch_size": batch_size,
        "device": route.device,
        "resources": route.resources,
        "pure": False,
    }
    phase = _Bounds(timeout_s=timeout_s, slots=route.slots, stage_deadline_s=deadline_s)
    results, retry = _evaluate_batched(
        client, chunks, features=features, labels=labels, options=options, bounds=phase
    )
    results.update(
        _evaluate_alone(
            client, retry, features=features, labels=labels, options=options, bounds=phase
        )
    )
    return [results[uid] for uid in sorted(results)]


def _evaluate_batched(
    client: distributed.Client,
    chunks: list[list[EvalJob]],
    *,
    features: np.ndarray,
    labels: np.ndarray,
    options: dict[str, Any],
    bounds: _Bounds,
) -> tuple[dict[int, EvalResult], list[EvalJob]]:
    """Phase 1: one task per chunk reading the scattered sample; (results, jobs to rerun)."""
    inputs = _scatter_inputs(client, [features, labels], timeout_s=bounds.timeout_s)
    try:
        futures = [
            client.submit(
                evaluate_group_auto, chunk, features=inputs[0], labels=inputs[1], **options
            )
            for chunk in chunks
        ]
        values = _await_tasks(
            client,
            futures,
            timeout_s=bounds.timeout_s,
            slots=bounds.slots,
            stage_deadline_s=bounds.stage_deadline_s,
        )
    finally:
        client.cancel(inputs)
    results: dict[int, EvalResult] = {}
    retry: list[EvalJob] = []
    for chunk, value in zip(chunks, values, strict=True):
        if _valid_group(value, chunk):
            results.update((result.uid, result) for result in value)
        else:
            retry.extend(chunk)
    return results, retry


def _evaluate_alone(
    client: distributed.Client,
    retry: list[EvalJob],
    *,
    features: np.ndarray,
    labels: np.ndarray,
    options: dict[str, Any],
    bounds: _Bounds,
) -> dict[int, EvalResult]:
    """Phase 2: each member of a failed chunk alone.  The sample travels inside each task (no
    shared input a crashing worker could take down with it), so Dask can rerun a task whose
    worker died on a restarted one."""
    if not retry:
        return {}
    _require_workers(client, wait_s=min(bounds.timeout_s, WORKERS_RETURN_S_MAX))
    futures = [
        client.submit(evaluate_job, job, features=features, labels=labels, **options)
        for job in retry
    ]
    values = _await_tasks(
        client,
        futures,
        timeout_s=bounds.timeout_s,
        slots=bounds.slots,
        stage_deadline_s=bounds.stage_deadline_s,
    )
    results: dict[int, EvalResult] = {}
    for job, value in zip(retry, values, strict=True):
        if isinstance(value, EvalResult) and value.uid == job.uid:
            results[job.uid] = value
        else:
            reason = value if isinstance(value, str) else "worker_error: malformed result"
            results[job.uid] = failed_result(
                uid=job.uid, n_samples=int(labels.shape[0]), error=reason
            )
    if any(
        result.error is not None and result.error.startswith(("worker_error", "timeout"))
        for result in results.values()
    ):  # models failed for the cluster's sake, not their own, if no worker is left
        _require_workers(client, wait_s=min(bounds.timeout_s, WORKERS_RETURN_S_MAX))
    return results


def _worker_pids(cluster: distributed.LocalCluster) -> list[int]:
    pids = []
    for worker in cluster.workers.values():
        pid = getattr(worker, "pid", None)
        if isinstance(pid, int) and pid != os.getpid():
            pids.append(pid)
    return pids


def _call_bounded(function: Callable[[], object], *, timeout_s: float) -> bool:
    """Run ``function`` on a daemon thread; ``True`` iff it returned within ``timeout_s``."""
    thread = threading.Thread(target=_quiet, args=(function,), daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


def _quiet(function: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        function()


@contextlib.contextmanager
def local_cluster_client(
    *,
    n_workers: int = 1,
    threads_per_worker: int = 1,
    close_timeout_s: float = CLUSTER_CLOSE_TIMEOUT_S,
) -> Iterator[distributed.Client]:
    """A client on a fresh ``LocalCluster`` of worker processes bound to 127.0.0.1.

    Quiet: Dask logs WARNING and up only (:func:`tasks.run_logs.quiet_dask`), there is no
    dashboard, and the scheduler's HTTP endpoint takes a free loopback port (never a shared
    default such as 8787, which would warn when taken). The client is closed before the cluster.
    Closing is bounded: if the client and cluster do not close within ``close_timeout_s`` each
    (a stopped worker never acknowledges), the worker processes are killed (``SIGKILL``, which
    also ends a stopped process) and the cluster is closed again under the same bound.
    """
    quiet_dask()
    cluster = distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": SCHEDULER_HTTP_ADDRESS},
    )
    pids: list[int] = []
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            pids = _worker_pids(cluster)
            _call_bounded(client.close, timeout_s=close_timeout_s)
    finally:
        pids = pids or _worker_pids(cluster)
        if not _call_bounded(cluster.close, timeout_s=close_timeout_s):
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            _call_bounded(cluster.close, timeout_s=close_timeout_s)
