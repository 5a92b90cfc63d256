"""``taoflow explorer``: the read-only web explorer over a home's network.

Invariants:
- Nothing is written: the home must already hold a ledger (else one line, exit 1, and the home is
  left as it was); the app only reads it.
- Importing this module loads no web stack: fastapi, uvicorn, starlette and jinja2 (and the ledger
  readers) are imported inside the command, once every check has passed.
- It serves on 127.0.0.1 unless ``--host`` says otherwise; any host that is not a loopback address
  gets one warning line on stderr (everyone who reaches it can read every ledger entry), then it
  serves.
- The address is checked before the app is built: a taken port is one line naming ``--port``, a
  host this machine cannot bind is one line naming ``--host``; exit 1 either way.
- The links to the Prefect and MLflow UIs come from ``--prefect-url`` / ``--mlflow-url`` when
  given (``http``/``https`` URLs only: they end up in ``href`` attributes), else from the home's
  running ``taoflow up`` (its ``services.json``), else there are none. Runs are looked up
  through that MLflow server (or ``--mlflow-uri``), never the home's SQLite store, which
  opening can create or migrate.
- Ctrl-C stops the server and the command exits 0.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from taoflow.cli.common import HomeOption, MlflowUriOption, console, err, fail
from taoflow.settings import NoNetwork, Settings, require_network

LOOPBACK_HOST = "127.0.0.1"
PORT_DEFAULT = 8790
"""``taoflow.dashboards.explorer.app.DEFAULT_PORT`` (a test checks that both agree)."""
PORT_MAX = 65535
UI_URL_CHARS_MAX = 2048
_UI_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/\-]*)?")
"""A UI address as it may appear in a link: scheme, host, port, a plain path; nothing else."""
_LOCAL_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Launch:
    """Everything the explorer is started with, decided before the web stack is imported."""

    home: Path
    host: str
    port: int
    prefect_ui_url: str | None
    mlflow_ui_url: str | None
    mlflow_tracking_uri: str | None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"


def explorer(
    home: HomeOption = None,
    port: Annotated[int, typer.Option(min=1, max=PORT_MAX, help="Port to serve on")] = PORT_DEFAULT,
    host: Annotated[
        str,
        typer.Option(help="Address to serve on; anything but loopback exposes the whole ledger"),
    ] = LOOPBACK_HOST,
    prefect_url: Annotated[
        str | None,
        typer.Option(
            "--prefect-url",
            help="Prefect UI for the flow-run links (default: the running `taoflow up`'s)",
        ),
    ] = None,
    mlflow_url: Annotated[
        str | None,
        typer.Option(
            "--mlflow-url", help="MLflow UI for the run links (default: the running `taoflow up`'s)"
        ),
    ] = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Serve the read-only explorer (network, subnets, neurons, ledger, governance) until Ctrl-C.

    Every page has a JSON twin under /api/. The pages link to the Prefect flow runs and MLflow
    runs of the epochs they show when the UIs are known (a running `taoflow up` or the options).
    """
    settings = Settings.load(home, mlflow_uri=mlflow_uri)
    try:
        require_network(settings)
    except NoNetwork:
        raise fail(f"no ledger at {settings.ledger_dir}: run `taoflow demo` first") from None
    launch = Launch(
        home=settings.home,
        host=host,
        port=port,
        prefect_ui_url=_ui_url("--prefect-url", prefect_url),
        mlflow_ui_url=_ui_url("--mlflow-url", mlflow_url),
        mlflow_tracking_uri=settings.mlflow_uri,
    )
    launch = _with_recorded_uis(settings, launch)
    if launch.mlflow_tracking_uri is None:
        # the run links are looked up through the MLflow server (never the home's SQLite file:
        # opening it can create or migrate the store, and the explorer writes nothing)
        launch = replace(launch, mlflow_tracking_uri=launch.mlflow_ui_url)
    _check_address(settings, launch)
    if not is_loopback(host):
        err.print(
            "[yellow]warning:[/] the explorer is read-only but exposes every ledger entry to "
            f"anyone who can reach {host}:{port}",
            soft_wrap=True,
            markup=True,
            highlight=False,
        )
    console.print(f"explorer: {launch.url}", soft_wrap=True, markup=False, highlight=False)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the server has stopped
        serve_launch(launch)
    console.print("stopped", markup=False, highlight=False)


def serve_launch(launch: Launch) -> None:
    """Build the app for ``launch`` and serve it until stopped (blocking)."""
    from taoflow.dashboards.explorer.app import ExplorerConfig, serve

    config = ExplorerConfig(
        home=launch.home,
        prefect_ui_url=launch.prefect_ui_url,
        mlflow_ui_url=launch.mlflow_ui_url,
        mlflow_tracking_uri=launch.mlflow_tracking_uri,
    )
    serve(config, host=launch.host, port=launch.port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only (``localhost``, 127/8, ::1)."""
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ui_url(option: str, value: str | None) -> str | None:
    """``value`` without a trailing slash if it is a plain http(s) URL, else one line, exit 1."""
    if value is None:
        return None
    if len(value) > UI_URL_CHARS_MAX or not _UI_URL.fullmatch(value):
        raise fail(
            f"{option} must be an http:// or https:// address such as http://127.0.0.1:4200 "
            f"(got {value[:80]!r})"
        )
    return value.rstrip("/")


def _with_recorded_uis(settings: Settings, launch: Launch) -> Launch:
    """``launch`` with the UIs of the home's running ``taoflow up`` where no option named one."""
    from taoflow.services import recorded_services

    record = recorded_services(settings)
    if record is None:
        return launch
    prefect_ui_url = launch.prefect_ui_url
    if prefect_ui_url is None and record.prefect_api_url is not None:
        prefect_ui_url = record.prefect_api_url.removesuffix("/api")
    mlflow_ui_url = launch.mlflow_ui_url or record.mlflow_tracking_uri
    return replace(launch, prefect_ui_url=prefect_ui_url, mlflow_ui_url=mlflow_ui_url)


def _check_address(settings: Settings, launch: Launch) -> None:
    """One line and exit 1 unless ``launch.host:launch.port`` can be bound now."""
    from taoflow.services import port_problem, recorded_services

    problem = port_problem(launch.port, host=launch.host)
    if problem is None:
        return
    port_phrases = {os.strerror(errno.EADDRINUSE), os.strerror(errno.EACCES)}
    if problem not in port_phrases:
        raise fail(f"cannot serve on {launch.host} ({problem}); pick another address with --host")
    record = recorded_services(settings)
    if record is not None and record.explorer_url == f"http://{LOOPBACK_HOST}:{launch.port}":
        raise fail(
            f"taoflow up (pid {record.pid}) already serves the explorer of {settings.home} "
            f"at {record.explorer_url}/"
        )
    state = "is in use" if problem == os.strerror(errno.EADDRINUSE) else "cannot be bound"
    raise fail(f"port {launch.port} on {launch.host} {state} ({problem}); pick another with --port")
