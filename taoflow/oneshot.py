"""A one-shot epoch's fixed start-up, overlapped: the Prefect server and the Dask cluster start
while the command imports the flow stack and backfills MLflow.

Used by ``taoflow epoch run`` when it has no running services to reuse (``taoflow up``'s, or a
``PREFECT_API_URL`` / ``--dask-address`` the user chose: those always win).

Invariants:
- The temporary Prefect server is the one Prefect's own ephemeral mode would start (uvicorn on
  Prefect's app factory, UI off, on 127.0.0.1, the home's ``PREFECT_HOME`` database), but it is
  started first, as a guarded child (``taoflow.services.guarded_command``: it dies with this
  process, even on SIGKILL), before prefect is imported here; ``PREFECT_API_URL`` is exported
  for this process only. So this process never imports Prefect's server code, and the server
  boots while the command does its own work. It must answer ``/api/health`` within
  ``start_timeout_s()`` (Prefect's ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` if set,
  else ``PREFECT_START_TIMEOUT_S``), else one line names its log; it is stopped (SIGTERM, then
  SIGKILL after ``STOP_TIMEOUT_S``) when the command ends, after Prefect's log and event
  workers have sent what they hold (``drain_prefect_workers``). Its output goes to
  ``<home>/logs/prefect-temporary.log``.
- The Dask cluster is ``tasks.evaluate.fanout.local_cluster_client``'s (worker processes, fault
  isolation, bounded close), started before the flow; its worker imports the evaluation code
  (torch) in its own process while this one imports the flow stack. The flow is given the
  cluster's address, exactly as with ``--dask-address``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taoflow.services import HOST, PREFECT_API_URL_ENV, answers, guarded_command
from taoflow.settings import Settings

PREFECT_START_TIMEOUT_S: Final = 120.0
"""How long the temporary server may take to answer (Prefect's own default, 20 s, is too short
for a loaded machine)."""
PREFECT_TIMEOUT_ENV: Final = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STOP_TIMEOUT_S: Final = 10.0
DRAIN_TIMEOUT_S: Final = 10.0
"""How long Prefect's log and event workers may take to send what they hold."""
POLL_INTERVAL_S: Final = 0.1
HEALTH_REQUEST_TIMEOUT_S: Final = 2.0
LOG_NAME: Final = "prefect-temporary.log"
WORKER_WARM_MODULE: Final = "taoflow.tasks.evaluate.batched"
"""What a fresh worker imports before its first evaluation (torch and the model families)."""
_EPHEMERAL_ENV: Final = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}


class TemporaryServerFailed(RuntimeError):
    """The temporary Prefect server exited or did not answer in time (one line)."""


def start_timeout_s() -> float:
    """Prefect's ephemeral start-up timeout if the user set one, else the default above."""
    try:
        return float(os.environ.get(PREFECT_TIMEOUT_ENV, PREFECT_START_TIMEOUT_S))
    except ValueError:
        return PREFECT_START_TIMEOUT_S


def free_port() -> int:
    """A port on 127.0.0.1 that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TemporaryPrefect:
    process: subprocess.Popen[bytes]
    api_url: str
    log_path: Path

    def wait_ready(self, *, timeout_s: float | None = None) -> None:
        """Return once ``/api/health`` answers; ``TemporaryServerFailed`` if it cannot."""
        bound_s = start_timeout_s() if timeout_s is None else timeout_s
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise TemporaryServerFailed(
                    f"the temporary Prefect server exited with code {code}; "
                    f"its output: {self.log_path}"
                )
            if answers(f"{self.api_url}/health", timeout_s=HEALTH_REQUEST_TIMEOUT_S):
                return
            time.sleep(POLL_INTERVAL_S)
        raise TemporaryServerFailed(
            f"the temporary Prefect server did not answer within {bound_s:g} s "
            f"(set {PREFECT_TIMEOUT_ENV} to wait longer); its output: {self.log_path}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``STOP_TIMEOUT_S``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _server_command(port: int) -> list[str]:
    spec = importlib.util.find_spec("prefect")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise TemporaryServerFailed("prefect is not installed")
    app_dir = Path(spec.origin).parent.parent
    uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory"]
    uvicorn += ["prefect.server.api.server:create_app", "--host", HOST, "--port", str(port)]
    uvicorn += ["--log-level", "error", "--lifespan", "on"]
    return guarded_command(uvicorn, parent_pid=os.getpid())


@contextlib.contextmanager
def temporary_prefect_server(settings: Settings) -> Iterator[TemporaryPrefect | None]:
    """Start a temporary Prefect server unless one is configured (then yield ``None``).

    Call before prefect is imported: ``PREFECT_API_URL`` is exported for this process while the
    context lasts. The server is stopped on exit.
    """
    if os.environ.get(PREFECT_API_URL_ENV):
        yield None
        return
    port = free_port()
    settings.service_logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.service_logs_dir / LOG_NAME
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _server_command(port),
            env={**os.environ, **_EPHEMERAL_ENV},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches this command, which stops the server
        )
    server = TemporaryPrefect(process, f"http://{HOST}:{port}/api", log_path)
    os.environ[PREFECT_API_URL_ENV] = server.api_url
    try:
        yield server
    finally:
        drain_prefect_workers()
        os.environ.pop(PREFECT_API_URL_ENV, None)
        server.stop()


def drain_prefect_workers() -> None:
    """Let Prefect send the logs and events it still holds (within ``DRAIN_TIMEOUT_S`` each)
    while its server is up: Prefect itself would try at exit, after the server is gone."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # draining is best effort; the run is recorded
            worker.drain_all(timeout=DRAIN_TIMEOUT_S)


def _import(module: str) -> None:
    importlib.import_module(module)


@contextlib.contextmanager
def epoch_cluster(dask_address: str | None) -> Iterator[str]:
    """``dask_address``, or the address of a fresh local cluster (closed on exit) whose worker
    starts importing the evaluation code at once."""
    if dask_address:
        yield dask_address
        return
    import distributed

    from taoflow.tasks.evaluate.fanout import local_cluster_client

    with local_cluster_client(n_workers=1, threads_per_worker=1) as client:
        distributed.fire_and_forget(client.submit(_import, WORKER_WARM_MODULE, pure=False))
        scheduler = client.scheduler
        if scheduler is None:  # a connected client always has one
            raise RuntimeError("the local Dask cluster has no scheduler")
        yield str(scheduler.address)
