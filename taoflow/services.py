"""Local services: a Prefect server and the MLflow UI on 127.0.0.1, and serving the epochs.

Imperative shell. Fault model: a child service that fails to come up within its start-up bound is
stopped and reported; on Ctrl-C (SIGINT) or SIGTERM every child is terminated, then killed after
``STOP_TIMEOUT_S``. Nothing here touches the ledger.

Children die with us: every server child (ours, and the temporary API server Prefect starts
when no server is configured, see :func:`make_ephemeral_prefect_server_die_with_parent`) runs
under a guard (``python -m taoflow.services --die-with-parent PID -- python -m MODULE …``) that
runs the module in-process and, from a watchdog thread, sends itself SIGTERM (then exits after
``ORPHAN_STOP_GRACE_S``) as soon as its parent is no longer PID — so a CLI killed with SIGTERM or
SIGKILL leaves no server behind. The watchdog polls every ``ORPHAN_POLL_S``.
"""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from taoflow.settings import Settings

HOST = "127.0.0.1"
PREFECT_PORT_DEFAULT = 4200
MLFLOW_PORT_DEFAULT = 5000
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5
BLOCK_TIME_S_DEFAULT = 12.0
BLOCK_TIME_S_FAST = 0.1
EPOCH_INTERVAL_S_MIN = 5.0
ORPHAN_POLL_S = 0.5
ORPHAN_STOP_GRACE_S = 10.0
GUARD_FLAG = "--die-with-parent"


class ServiceError(RuntimeError):
    """A service could not be started."""


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    health_url: str
    process: subprocess.Popen[bytes]


def _module_command(module: str, *args: str) -> list[str]:
    return guarded_command([sys.executable, "-m", module, *args], parent_pid=os.getpid())


def guarded_command(command: list[str], *, parent_pid: int) -> list[str]:
    """``command`` (``python -m MODULE …``) wrapped so that it stops when ``parent_pid`` dies.

    Any other command is returned unchanged.
    """
    if len(command) < 3 or command[0] != sys.executable or command[1] != "-m":
        return list(command)
    return [sys.executable, "-m", "taoflow.services", GUARD_FLAG, str(parent_pid), "--", *command]


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(ORPHAN_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_STOP_GRACE_S)
    os._exit(1)


def run_guarded(argv: list[str]) -> None:
    """``--die-with-parent PID -- python -m MODULE ARGS…``: run MODULE here, watched."""
    if len(argv) < 6 or argv[0] != GUARD_FLAG or argv[2] != "--" or argv[4] != "-m":
        raise SystemExit(f"usage: {GUARD_FLAG} PID -- python -m MODULE [ARGS…]")
    parent_pid, module, args = int(argv[1]), argv[5], argv[6:]
    if os.getppid() != parent_pid:
        raise SystemExit(f"parent {parent_pid} is already gone")
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class _GuardedSubprocess:
    """``subprocess`` as seen by Prefect's server module: ``Popen`` children are guarded."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args: Any, *rest: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        if isinstance(args, list):
            args = guarded_command([str(a) for a in args], parent_pid=os.getpid())
        return subprocess.Popen(args, *rest, **kwargs)


def make_ephemeral_prefect_server_die_with_parent() -> None:
    """Make the temporary Prefect API server (started when no server is configured) a guarded
    child, so it dies with this process. Idempotent; call after ``Settings.apply_environment``.
    """
    from prefect.server.api import server as prefect_server

    if not isinstance(prefect_server.__dict__.get("subprocess"), _GuardedSubprocess):
        prefect_server.__dict__["subprocess"] = _GuardedSubprocess()


def _wait_healthy(service: Service, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceError(f"{service.name} exited with code {service.process.returncode}")
        try:
            with urllib.request.urlopen(service.health_url, timeout=2) as response:
                if response.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(POLL_INTERVAL_S)
    raise ServiceError(f"{service.name} did not answer on {service.health_url} in {timeout_s} s")


def _stop(services: list[Service]) -> None:
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            service.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def start_prefect(settings: Settings, *, port: int) -> Service:
    env = {**os.environ, "PREFECT_HOME": str(settings.prefect_home)}
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        _module_command("prefect", "server", "start", "--host", HOST, "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{HOST}:{port}"
    return Service("Prefect", url, f"{url}/api/health", process)


def start_mlflow(settings: Settings, *, port: int) -> Service:
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        _module_command(
            "mlflow",
            "server",
            "--backend-store-uri",
            settings.mlflow_tracking_uri,
            "--default-artifact-root",
            settings.mlflow_artifacts_dir.resolve().as_uri(),
            "--host",
            HOST,
            "--port",
            str(port),
        ),
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{HOST}:{port}"
    return Service("MLflow", url, f"{url}/health", process)


@contextmanager
def running(
    settings: Settings,
    *,
    prefect_port: int | None,
    mlflow_port: int | None,
    report: Callable[[str], None],
) -> Iterator[list[Service]]:
    """Start the requested services, wait until healthy, stop them on exit."""
    services: list[Service] = []
    try:
        if prefect_port is not None:
            services.append(start_prefect(settings, port=prefect_port))
        if mlflow_port is not None:
            services.append(start_mlflow(settings, port=mlflow_port))
        for service in services:
            report(f"starting {service.name} …")
            _wait_healthy(service, timeout_s=START_TIMEOUT_S)
            report(f"{service.name}: {service.url}")
        yield services
    finally:
        _stop(services)


def wait_forever() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = False

    def _handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        while not stop:
            time.sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def epoch_interval(*, tempo_blocks: int, block_time_s: float) -> timedelta:
    return timedelta(seconds=max(EPOCH_INTERVAL_S_MIN, tempo_blocks * block_time_s))


def serve_epochs(settings: Settings, *, block_time_s: float, dask_address: str | None) -> None:
    """One deployment per subnet, scheduled every tempo × block time; serve until stopped."""
    from prefect import serve

    from taoflow.flows.epoch import epoch_flow
    from taoflow.ledger.store import Ledger

    state = Ledger.open(settings.ledger_dir).state()
    if not state.subnets:
        raise ServiceError(f"no subnet in {settings.home}: run `taoflow demo` or create one")
    deployments: list[Any] = [
        epoch_flow.to_deployment(
            name=f"epoch-{name}",
            interval=epoch_interval(
                tempo_blocks=info.config.tempo_blocks, block_time_s=block_time_s
            ),
            parameters={"subnet": name, "home": str(settings.home), "dask_address": dask_address},
            concurrency_limit=1,
            tags=["taoflow", f"subnet-{name}"],
            description=f"Yuma epochs of subnet {name!r} ({info.config.task})",
        )
        for name, info in sorted(state.subnets.items())
    ]
    serve(*deployments)


if __name__ == "__main__":
    run_guarded(sys.argv[1:])
