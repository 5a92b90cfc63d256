"""Local services on 127.0.0.1 (Prefect, MLflow, a Dask cluster, the explorer), their reuse, and
the epochs served as Prefect deployments.

Imperative shell; nothing here writes to the ledger.

``taoflow up`` (:func:`up`):
- every port it will bind (Prefect, MLflow, the explorer, the Dask scheduler and its dashboard)
  is checked before anything starts; a taken port is refused with one line that names the option
  moving it;
- the Prefect server is told the API URL of the port it really uses, so its UI reaches its API;
- the explorer (``taoflow explorer``, read-only) is told the Prefect and MLflow UI URLs of this
  ``up`` for its links, and counts as up once ``/api/network`` answers;
- each child's output goes to ``<home>/logs/<name>.log``; a child that does not answer its health
  check within ``START_TIMEOUT_S`` stops the start-up, and every child is stopped;
- once all answer, the services are recorded in ``<home>/services.json`` (written atomically,
  removed when ``up`` stops) and the ``export`` lines for other shells are printed;
- ``up`` watches its children: if one exits, it names it, stops the others and fails.

Reuse (:func:`reuse_running_services`): a later command in the same home uses that Prefect server
and Dask scheduler instead of starting its own, only if the recording process is alive, the
record names this home, and the service answers a health request within
``REUSE_HEALTH_TIMEOUT_S``; a stale or malformed record is ignored. Only loopback URLs are read
from the record. A choice the user made (``PREFECT_API_URL``, ``--dask-address``) wins.

Deployments (:func:`serve_epochs`): one per subnet, whose only run parameter is the subnet
(``taoflow.flows.deployed``); the home and the Dask scheduler are bound by the serving process.

Children die with us: every server child (ours, and the temporary API server Prefect starts
when no server is configured, see :func:`make_ephemeral_prefect_server_die_with_parent`) runs
under a guard (``python -m taoflow.services --die-with-parent PID -- python -m MODULE …``) that
runs the module in-process and, from a watchdog thread, sends itself SIGTERM (then exits after
``ORPHAN_STOP_GRACE_S``) as soon as its parent is no longer PID — so a CLI killed with SIGTERM or
SIGKILL leaves no server behind. The watchdog polls every ``ORPHAN_POLL_S``. Our children run in
their own session, so a Ctrl-C reaches ``up`` alone, which then stops them in order.
"""

from __future__ import annotations

import errno
import json
import os
import re
import runpy
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from taoflow.settings import DASK_ADDRESS_ENV, HOME_ENV, Settings, require_network

HOST = "127.0.0.1"
PREFECT_PORT_DEFAULT = 4200
MLFLOW_PORT_DEFAULT = 5000
DASK_PORT_DEFAULT = 8786
DASK_DASHBOARD_PORT_DEFAULT = 8787
EXPLORER_PORT_DEFAULT = 8790
"""``taoflow.dashboards.explorer.app.DEFAULT_PORT`` (a test checks that both agree)."""
EXPLORER_HEALTH_PATH = "/api/network"
DASK_WORKERS_DEFAULT = 2
DASK_WORKERS_MAX = 64
DASK_THREADS_PER_WORKER = 1
MLFLOW_SERVER_WORKERS = 1
PORT_MAX = 65535
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5
HEALTH_REQUEST_TIMEOUT_S = 2.0
REUSE_HEALTH_TIMEOUT_S = 0.5
"""How long a command waits for a recorded service's health answer before starting its own."""
HEALTH_BODY_BYTES_MAX = 65_536
SERVICES_FORMAT = 1
SERVICES_FILE_BYTES_MAX = 16_384
BLOCK_TIME_S_DEFAULT = 12.0
BLOCK_TIME_S_FAST = 0.1
EPOCH_INTERVAL_S_MIN = 5.0
ORPHAN_POLL_S = 0.5
ORPHAN_STOP_GRACE_S = 10.0
GUARD_FLAG = "--die-with-parent"
PREFECT_API_URL_ENV = "PREFECT_API_URL"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Health requests go straight to 127.0.0.1, never through a proxy from the environment."""


class ServiceError(RuntimeError):
    """A service could not be started, or one stopped (one line)."""


class PortInUse(ServiceError):
    """A port ``up`` or ``serve`` would bind is taken."""


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    health_url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    workers_min: int = 0
    """> 0: healthy once ``health_url`` (a Dask scheduler's counts JSON) lists this many workers."""


@dataclass(frozen=True)
class UpPlan:
    """What ``up`` (or ``serve``) starts: ``None`` ports and 0 Dask workers start nothing."""

    prefect_port: int | None = PREFECT_PORT_DEFAULT
    mlflow_port: int | None = MLFLOW_PORT_DEFAULT
    dask_port: int = DASK_PORT_DEFAULT
    dask_dashboard_port: int = DASK_DASHBOARD_PORT_DEFAULT
    dask_workers: int = DASK_WORKERS_DEFAULT
    explorer_port: int | None = None
    """``None``: no explorer (``taoflow up`` passes ``--explorer-port``, default 8790)."""

    def bindings(self) -> list[tuple[str, int]]:
        """(option, port) of every port this plan binds."""
        pairs: list[tuple[str, int]] = []
        if self.prefect_port is not None:
            pairs.append(("--prefect-port", self.prefect_port))
        if self.mlflow_port is not None:
            pairs.append(("--mlflow-port", self.mlflow_port))
        if self.explorer_port is not None:
            pairs.append(("--explorer-port", self.explorer_port))
        if self.dask_workers > 0:
            pairs.append(("--dask-port", self.dask_port))
            pairs.append(("--dask-dashboard-port", self.dask_dashboard_port))
        return pairs


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


# --- ports -------------------------------------------------------------------------------------


def port_problem(port: int, *, host: str = HOST) -> str | None:
    """Why ``port`` on ``host`` (default 127.0.0.1) cannot be bound now (one phrase), or ``None``
    if it is free. A host that does not resolve is a problem too (the resolver's phrase)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except (OSError, UnicodeError) as exc:
        return getattr(exc, "strerror", None) or type(exc).__name__
    with socket.socket(family, kind, protocol) as sock:
        # As the servers do: a port left in TIME_WAIT by a stopped server is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.strerror or type(exc).__name__
    return None


def check_plan(plan: UpPlan) -> None:
    """``ServiceError`` (one line) unless every port is valid and distinct and every port is
    free; nothing is started either way."""
    if not 0 <= plan.dask_workers <= DASK_WORKERS_MAX:
        raise ServiceError(f"--dask-workers must be 0 to {DASK_WORKERS_MAX}")
    seen: dict[int, str] = {}
    for option, port in plan.bindings():
        if not 1 <= port <= PORT_MAX:
            raise ServiceError(f"{option} {port} is not a port (1 to {PORT_MAX})")
        if port in seen:
            raise ServiceError(f"{seen[port]} and {option} are both {port}: pick different ports")
        seen[port] = option
    for option, port in plan.bindings():
        problem = port_problem(port)
        if problem is None:
            continue
        taken = problem == os.strerror(errno.EADDRINUSE)
        state = "is in use" if taken else "cannot be bound"
        raise PortInUse(f"port {port} on {HOST} {state} ({problem}); pick another with {option}")


# --- children ----------------------------------------------------------------------------------


def _spawn(
    settings: Settings, *, log_name: str, module: str, args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``python -m module args…`` guarded, in its own session, output to its log file."""
    settings.service_logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.service_logs_dir / f"{log_name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _module_command(module, *args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log_path


def prefect_environment(settings: Settings, *, port: int) -> dict[str, str]:
    """The Prefect server's environment: its home, and its own URL for the API and the UI."""
    url = f"http://{HOST}:{port}"
    api_url = f"{url}/api"
    env = {**os.environ, "PREFECT_HOME": str(settings.prefect_home)}
    env.update(
        {
            PREFECT_API_URL_ENV: api_url,
            "PREFECT_SERVER_UI_API_URL": api_url,
            "PREFECT_UI_API_URL": api_url,
            "PREFECT_UI_URL": url,
            "PREFECT_SERVER_API_HOST": HOST,
            "PREFECT_SERVER_API_PORT": str(port),
        }
    )
    return env


def start_prefect(settings: Settings, *, port: int) -> Service:
    args = ["server", "start", "--host", HOST, "--port", str(port)]
    env = prefect_environment(settings, port=port)
    process, log = _spawn(settings, log_name="prefect", module="prefect", args=args, env=env)
    url = f"http://{HOST}:{port}"
    return Service("Prefect", url, f"{url}/api/health", process, log)


def start_mlflow(settings: Settings, *, port: int) -> Service:
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "server",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--default-artifact-root",
        settings.mlflow_artifacts_dir.resolve().as_uri(),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(MLFLOW_SERVER_WORKERS),
    ]
    process, log = _spawn(
        settings, log_name="mlflow", module="mlflow", args=args, env=dict(os.environ)
    )
    url = f"http://{HOST}:{port}"
    return Service("MLflow", url, f"{url}/health", process, log)


def start_dask_scheduler(settings: Settings, *, port: int, dashboard_port: int) -> Service:
    args = ["--host", HOST, "--port", str(port), "--dashboard-address", f"{HOST}:{dashboard_port}"]
    process, log = _spawn(
        settings,
        log_name="dask-scheduler",
        module="distributed.cli.dask_scheduler",
        args=args,
        env=dict(os.environ),
    )
    return Service(
        "Dask scheduler",
        f"tcp://{HOST}:{port}",
        f"http://{HOST}:{dashboard_port}/health",
        process,
        log,
    )


def start_dask_workers(settings: Settings, *, plan: UpPlan) -> Service:
    scheduler = f"tcp://{HOST}:{plan.dask_port}"
    args = [scheduler, "--nworkers", str(plan.dask_workers)]
    args += ["--nthreads", str(DASK_THREADS_PER_WORKER), "--host", HOST, "--no-dashboard"]
    process, log = _spawn(
        settings,
        log_name="dask-workers",
        module="distributed.cli.dask_worker",
        args=args,
        env=dict(os.environ),
    )
    counts_url = f"http://{HOST}:{plan.dask_dashboard_port}/json/counts.json"
    name = f"Dask workers ({plan.dask_workers})"
    return Service(name, scheduler, counts_url, process, log, workers_min=plan.dask_workers)


def start_explorer(settings: Settings, *, plan: UpPlan, port: int) -> Service:
    """``taoflow explorer`` on ``port``, linking to the Prefect and MLflow UIs of ``plan``."""
    args = ["explorer", "--home", str(settings.home), "--port", str(port)]
    if plan.prefect_port is not None:
        args += ["--prefect-url", f"http://{HOST}:{plan.prefect_port}"]
    if plan.mlflow_port is not None:
        args += ["--mlflow-url", f"http://{HOST}:{plan.mlflow_port}"]
    process, log = _spawn(
        settings, log_name="explorer", module="taoflow.cli", args=args, env=dict(os.environ)
    )
    url = f"http://{HOST}:{port}"
    return Service("Explorer", url, f"{url}{EXPLORER_HEALTH_PATH}", process, log)


def answers(url: str, *, timeout_s: float, workers_min: int = 0) -> bool:
    """Whether ``url`` answers 2xx/3xx within ``timeout_s`` (and, with ``workers_min``, whether
    the Dask counts JSON it returns lists at least that many workers)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            if workers_min <= 0:
                return True
            counts = json.loads(response.read(HEALTH_BODY_BYTES_MAX))
    except (urllib.error.URLError, OSError, ValueError):
        return False
    workers = counts.get("workers") if isinstance(counts, dict) else None
    return isinstance(workers, int) and workers >= workers_min


def _exited(service: Service, code: int) -> str:
    where = f"; its output: {service.log_path}" if service.log_path else ""
    return f"{service.name} exited with code {code}{where}"


def _wait_healthy(service: Service, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = service.process.poll()
        if code is not None:
            raise ServiceError(_exited(service, code))
        if answers(
            service.health_url, timeout_s=HEALTH_REQUEST_TIMEOUT_S, workers_min=service.workers_min
        ):
            return
        time.sleep(POLL_INTERVAL_S)
    raise ServiceError(f"{service.name} did not answer on {service.health_url} in {timeout_s} s")


def _stop(services: Sequence[Service]) -> None:
    """SIGTERM each (in the order given), then wait; kill any still running after the bound."""
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            service.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@contextmanager
def running(
    settings: Settings, *, plan: UpPlan, report: Callable[[str], None]
) -> Iterator[list[Service]]:
    """Start the services of ``plan`` (checked first), wait until each answers, stop them all
    (workers first) on exit. ``ServiceError`` if one does not come up."""
    check_plan(plan)
    services: list[Service] = []
    try:
        if plan.prefect_port is not None:
            services.append(start_prefect(settings, port=plan.prefect_port))
        if plan.mlflow_port is not None:
            services.append(start_mlflow(settings, port=plan.mlflow_port))
        if plan.explorer_port is not None:
            services.append(start_explorer(settings, plan=plan, port=plan.explorer_port))
        if plan.dask_workers > 0:
            services.append(
                start_dask_scheduler(
                    settings, port=plan.dask_port, dashboard_port=plan.dask_dashboard_port
                )
            )
        report(f"starting {', '.join(service.name for service in services)} …")
        for service in services:
            _wait_healthy(service, timeout_s=START_TIMEOUT_S)
        if plan.dask_workers > 0:
            services.append(start_dask_workers(settings, plan=plan))
            _wait_healthy(services[-1], timeout_s=START_TIMEOUT_S)
        yield services
    finally:
        _stop(services[::-1])


def supervise(services: Sequence[Service], *, max_wait_s: float | None = None) -> None:
    """Return on SIGINT or SIGTERM (or after ``max_wait_s``); ``ServiceError`` naming the first
    child that exits. Polls every ``POLL_INTERVAL_S``."""
    stop = False

    def _handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, _handler)
    deadline = None if max_wait_s is None else time.monotonic() + max_wait_s
    try:
        while not stop and (deadline is None or time.monotonic() < deadline):
            for service in services:
                code = service.process.poll()
                if code is not None:
                    raise ServiceError(f"{_exited(service, code)}; stopped the others")
            time.sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the record of a running `up` --------------------------------------------------------------

_PORT = r"[0-9]{1,5}"
_LOOPBACK = re.escape(HOST)
_URL_PATTERNS: dict[str, re.Pattern[str]] = {
    "prefect_api_url": re.compile(rf"http://{_LOOPBACK}:{_PORT}/api"),
    "mlflow_tracking_uri": re.compile(rf"http://{_LOOPBACK}:{_PORT}"),
    "dask_address": re.compile(rf"tcp://{_LOOPBACK}:{_PORT}"),
    "dask_dashboard_url": re.compile(rf"http://{_LOOPBACK}:{_PORT}"),
    "explorer_url": re.compile(rf"http://{_LOOPBACK}:{_PORT}"),
}
"""Every URL field of the record; a field missing from an older record reads as ``None``."""


@dataclass(frozen=True)
class RunningServices:
    """What a running ``taoflow up`` serves for its home (``<home>/services.json``)."""

    pid: int
    home: str
    prefect_api_url: str | None
    mlflow_tracking_uri: str | None
    dask_address: str | None
    dask_dashboard_url: str | None
    explorer_url: str | None = None

    @classmethod
    def of_plan(cls, settings: Settings, plan: UpPlan) -> RunningServices:
        dask = plan.dask_workers > 0
        return cls(
            pid=os.getpid(),
            home=str(settings.home),
            prefect_api_url=(
                f"http://{HOST}:{plan.prefect_port}/api" if plan.prefect_port is not None else None
            ),
            mlflow_tracking_uri=(
                f"http://{HOST}:{plan.mlflow_port}" if plan.mlflow_port is not None else None
            ),
            dask_address=f"tcp://{HOST}:{plan.dask_port}" if dask else None,
            dask_dashboard_url=f"http://{HOST}:{plan.dask_dashboard_port}" if dask else None,
            explorer_url=(
                f"http://{HOST}:{plan.explorer_port}" if plan.explorer_port is not None else None
            ),
        )

    def to_json(self) -> str:
        fields = {"format": SERVICES_FORMAT, "pid": self.pid, "home": self.home}
        fields.update({name: getattr(self, name) for name in _URL_PATTERNS})
        return json.dumps(fields, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunningServices:
        """Parse a record; ``ValueError`` (one line) unless every field is as ``up`` writes it."""
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != SERVICES_FORMAT:
            raise ValueError(f"not a services record of format {SERVICES_FORMAT}")
        pid, home = document.get("pid"), document.get("home")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ValueError("services record: pid is not a process id")
        if not isinstance(home, str) or not home:
            raise ValueError("services record: home is not a path")
        urls: dict[str, str | None] = {}
        for name, pattern in _URL_PATTERNS.items():
            value = document.get(name)
            if value is not None and (not isinstance(value, str) or not pattern.fullmatch(value)):
                raise ValueError(f"services record: {name} is not a {HOST} address")
            urls[name] = value
        return cls(pid=pid, home=home, **urls)

    def export_lines(self) -> list[str]:
        """Shell lines that point another shell's tools at these services."""
        lines = [f"export {HOME_ENV}={shlex.quote(self.home)}"]
        if self.prefect_api_url:
            lines.append(f"export {PREFECT_API_URL_ENV}={self.prefect_api_url}")
        if self.mlflow_tracking_uri:
            lines.append(f"export MLFLOW_TRACKING_URI={self.mlflow_tracking_uri}")
        if self.dask_address:
            lines.append(f"export {DASK_ADDRESS_ENV}={self.dask_address}")
        return lines


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def write_services_file(settings: Settings, record: RunningServices) -> None:
    """Write ``record`` to the home's services file atomically (temporary file, then rename)."""
    path = settings.services_file
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(record.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_services_file(settings: Settings) -> RunningServices | None:
    """The home's services record if it exists and parses, else ``None``."""
    try:
        with settings.services_file.open("rb") as handle:
            raw = handle.read(SERVICES_FILE_BYTES_MAX + 1)
    except OSError:
        return None
    if len(raw) > SERVICES_FILE_BYTES_MAX:
        return None
    try:
        return RunningServices.from_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def remove_services_file(settings: Settings, *, pid: int) -> None:
    """Remove the home's services record if process ``pid`` wrote it (another's is left)."""
    record = read_services_file(settings)
    if record is not None and record.pid == pid:
        settings.services_file.unlink(missing_ok=True)


def recorded_services(settings: Settings) -> RunningServices | None:
    """The home's services record if it names this home and its ``up`` process is alive."""
    record = read_services_file(settings)
    if record is None or Path(record.home) != settings.home or not _process_alive(record.pid):
        return None
    return record


@dataclass(frozen=True)
class Reuse:
    """What a command took over from a running ``taoflow up``."""

    settings: Settings
    prefect_api_url: str | None = None
    dask_address: str | None = None

    def lines(self) -> list[str]:
        found = []
        if self.prefect_api_url:
            found.append(f"Prefect server {self.prefect_api_url}")
        if self.dask_address:
            found.append(f"Dask cluster {self.dask_address}")
        return [f"using taoflow up's {' and '.join(found)}"] if found else []


def reuse_running_services(
    settings: Settings, *, timeout_s: float = REUSE_HEALTH_TIMEOUT_S
) -> Reuse:
    """Point this process at the home's running ``up`` services that answer within
    ``timeout_s``: exports ``PREFECT_API_URL`` (unless the user set it; call before Prefect is
    imported) and returns settings whose ``dask_address`` is ``up``'s (unless one was chosen)."""
    record = recorded_services(settings)
    if record is None:
        return Reuse(settings)
    prefect_api_url = None
    if (
        not os.environ.get(PREFECT_API_URL_ENV)
        and record.prefect_api_url
        and answers(f"{record.prefect_api_url}/health", timeout_s=timeout_s)
    ):
        prefect_api_url = record.prefect_api_url
        os.environ[PREFECT_API_URL_ENV] = prefect_api_url
    dask_address = None
    if (
        settings.dask_address is None
        and record.dask_address
        and record.dask_dashboard_url
        and answers(f"{record.dask_dashboard_url}/health", timeout_s=timeout_s)
    ):
        dask_address = record.dask_address
        settings = replace(settings, dask_address=dask_address)
    return Reuse(settings, prefect_api_url=prefect_api_url, dask_address=dask_address)


# --- up and serve ------------------------------------------------------------------------------


UI_LANDING = {"MLflow": "/#/experiments?workflowType=machine_learning", "Explorer": "/"}
"""Where a person lands: MLflow 3 opens its GenAI view unless the link picks model training."""


def summary_lines(record: RunningServices, *, services: Sequence[Service]) -> list[str]:
    lines = [
        f"{service.name}: {service.url}{UI_LANDING.get(service.name, '')}" for service in services
    ]
    if record.dask_dashboard_url:
        lines.append(f"Dask dashboard: {record.dask_dashboard_url}/status")
    lines.append(
        f"taoflow commands on {record.home} use these services while this runs; "
        "for other tools, in another shell:"
    )
    return [*lines, *record.export_lines(), "Ctrl-C stops them."]


def up(settings: Settings, *, plan: UpPlan, report: Callable[[str], None]) -> None:
    """Start ``plan``'s services, record them in the home, watch them until Ctrl-C or SIGTERM.

    ``ServiceError`` (one line, nothing left running, no record left) if this home already has
    a running ``up``, a port is taken, a service does not come up, or one exits later.
    """
    running_up = recorded_services(settings)
    if running_up is not None:
        raise ServiceError(
            f"taoflow up already runs for {settings.home} (pid {running_up.pid}); stop it first"
        )
    with running(settings, plan=plan, report=report) as services:
        record = RunningServices.of_plan(settings, plan)
        write_services_file(settings, record)
        try:
            for line in summary_lines(record, services=services):
                report(line)
            supervise(services)
        finally:
            remove_services_file(settings, pid=record.pid)


def epoch_interval(*, tempo_blocks: int, block_time_s: float) -> timedelta:
    return timedelta(seconds=max(EPOCH_INTERVAL_S_MIN, tempo_blocks * block_time_s))


def serve(
    settings: Settings,
    *,
    block_time_s: float,
    prefect_port: int,
    report: Callable[[str], None],
) -> None:
    """Serve the epoch deployments against ``PREFECT_API_URL``, else the home's running ``up``,
    else a Prefect server started here on ``prefect_port`` (checked free first).

    Call before Prefect is imported: Prefect reads ``PREFECT_API_URL`` once, at import.
    """
    require_network(settings)
    reuse = reuse_running_services(settings)
    for line in reuse.lines():
        report(line)
    make_ephemeral_prefect_server_die_with_parent()  # imports Prefect
    if os.environ.get(PREFECT_API_URL_ENV):
        serve_epochs(reuse.settings, block_time_s=block_time_s)
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    plan = UpPlan(prefect_port=prefect_port, mlflow_port=None, dask_workers=0)
    with running(settings, plan=plan, report=report):
        api_url = f"http://{HOST}:{prefect_port}/api"
        os.environ[PREFECT_API_URL_ENV] = api_url  # for the flow runs it spawns
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            serve_epochs(reuse.settings, block_time_s=block_time_s)


def audit_deployments(settings: Settings) -> list[Any]:
    """The read-only audit flows, served beside the epochs: replay, explain, what-if, audit.

    Each reads the home this process is bound to (never a run parameter); every run parameter
    is validated against the flow's signature before the run starts.
    """
    from taoflow.flows.audit import audit_flow
    from taoflow.flows.deployed import deployed_replay_flow
    from taoflow.flows.explain import explain_flow
    from taoflow.flows.whatif import whatif_flow

    where = f"the network in {settings.home}"
    described = (
        (
            deployed_replay_flow,
            "replay",
            f"Replay committed epochs of {where} from their "
            "stored inputs and compare with the ledger row by row (read-only).",
        ),
        (
            explain_flow,
            "explain",
            f"Explain one neuron's reward in one epoch of {where}: "
            "from the artifact to the ledger rows (read-only; a markdown artifact).",
        ),
        (
            whatif_flow,
            "whatif",
            f"Recompute stored epochs of {where} under other consensus "
            "parameters or split (read-only); logs an MLflow run with plots.",
        ),
        (
            audit_flow,
            "audit",
            f"Audit the validators of stored epochs of {where}: rank "
            "correlation with the reference, copiers, laggards (read-only); logs an MLflow run.",
        ),
    )
    return [
        flow.to_deployment(
            name=name,
            enforce_parameter_schema=True,
            tags=["taoflow", "audit"],
            description=description,
        )
        for flow, name, description in described
    ]


def serve_epochs(settings: Settings, *, block_time_s: float) -> None:
    """One deployment per subnet, scheduled every tempo × block time; serve until stopped.

    The runs' home and Dask scheduler are this process's (exported for the runs it spawns);
    the subnet is the deployment's only parameter, validated against the flow's signature.
    """
    require_network(settings)
    os.environ[HOME_ENV] = str(settings.home)
    if settings.dask_address:
        os.environ[DASK_ADDRESS_ENV] = settings.dask_address
    else:
        os.environ.pop(DASK_ADDRESS_ENV, None)

    from prefect import serve as prefect_serve

    from taoflow.flows.deployed import deployed_epoch_flow
    from taoflow.ledger.store import Ledger

    state = Ledger.open(settings.ledger_dir).state()
    if not state.subnets:
        raise ServiceError(f"no subnet in {settings.home}: run `taoflow demo` or create one")
    deployments: list[Any] = [
        deployed_epoch_flow.to_deployment(
            name=f"epoch-{name}",
            interval=epoch_interval(
                tempo_blocks=info.config.tempo_blocks, block_time_s=block_time_s
            ),
            parameters={"subnet": name},
            enforce_parameter_schema=True,
            concurrency_limit=1,
            tags=["taoflow", f"subnet-{name}"],
            description=(
                f"Yuma epochs of subnet {name!r} ({info.config.task}) of the network in "
                f"{settings.home}. Everything that changes an epoch's result is a subnet "
                "setting in the ledger; the home is fixed by `taoflow serve`."
            ),
        )
        for name, info in sorted(state.subnets.items())
    ]
    deployments.extend(audit_deployments(settings))
    prefect_serve(*deployments)


if __name__ == "__main__":
    run_guarded(sys.argv[1:])
