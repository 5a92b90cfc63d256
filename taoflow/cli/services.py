"""``taoflow demo``, ``up`` and ``serve``: a local network, its UIs and its scheduled epochs."""

from __future__ import annotations

from typing import Annotated

import typer

from taoflow.cli.common import (
    HomeOption,
    MlflowUriOption,
    console,
    fail,
)
from taoflow.cli.common import settings_for as _settings
from taoflow.settings import Settings, require_network


def demo(
    home: HomeOption = None,
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="Epochs to run")] = 3,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the home and start over")] = False,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Join an existing Dask scheduler")
    ] = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Run a local network: genesis (once), then EPOCHS real epochs."""
    from taoflow.demo import run_demo
    from taoflow.services import (
        make_ephemeral_prefect_server_die_with_parent,
        recorded_services,
        reuse_running_services,
    )

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    running_up = recorded_services(settings) if fresh else None
    if running_up is not None:  # --fresh would delete the databases under its servers
        raise _refuse(f"taoflow up runs for {settings.home} (pid {running_up.pid}): stop it first")
    settings.apply_environment()
    reuse = reuse_running_services(settings)  # `taoflow up`'s Prefect server and Dask cluster
    for line in reuse.lines():
        _say(line)
    settings = reuse.settings
    make_ephemeral_prefect_server_die_with_parent()
    run_demo(settings, epochs=epochs, fresh=fresh, console=console)


def up(
    home: HomeOption = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect UI/API port")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port")] = 5000,
    dask_port: Annotated[int, typer.Option(help="Dask scheduler port")] = 8786,
    dask_dashboard_port: Annotated[int, typer.Option(help="Dask dashboard port")] = 8787,
    dask_workers: Annotated[
        int, typer.Option(min=0, max=64, help="Dask worker processes (0: no Dask cluster)")
    ] = 2,
    explorer_port: Annotated[int, typer.Option(help="Explorer (read-only web page) port")] = 8790,
) -> None:
    """Start Prefect, MLflow, the explorer and a Dask cluster on 127.0.0.1 for this home;
    Ctrl-C stops them.

    While it runs, `epoch run`, `demo` and `serve` on the same home use these services.
    """
    from taoflow.services import ServiceError, UpPlan
    from taoflow.services import up as run_up

    settings = _settings(home)
    plan = UpPlan(
        prefect_port=prefect_port,
        mlflow_port=mlflow_port,
        dask_port=dask_port,
        dask_dashboard_port=dask_dashboard_port,
        dask_workers=dask_workers,
        explorer_port=explorer_port,
    )
    try:
        run_up(settings, plan=plan, report=_say)
    except ServiceError as exc:
        raise _refuse(str(exc)) from None
    console.print("stopped")


def _say(line: str) -> None:
    console.print(line, soft_wrap=True, markup=False, highlight=False)


def _refuse(message: str) -> typer.Exit:
    """``message`` as one unwrapped line on stderr; exit code 1."""
    return fail(message, 1)


def serve(
    home: HomeOption = None,
    fast: Annotated[bool, typer.Option("--fast", help="0.1 s blocks for local use")] = False,
    block_time_s: Annotated[float, typer.Option(min=0.01, help="Seconds per block")] = 12.0,
    prefect_port: Annotated[
        int, typer.Option(help="Port of the Prefect server started when none is configured")
    ] = 4200,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Join an existing Dask scheduler")
    ] = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Serve the epoch deployments (one per subnet, every tempo × block time) and the audits.

    Beside the epochs: the replay, explain, whatif and audit deployments (read-only).

    Uses PREFECT_API_URL if set, else the Prefect server of a running `taoflow up` on this home,
    else starts one on --prefect-port. The home is fixed for every run of these deployments.
    """
    from taoflow.services import BLOCK_TIME_S_FAST, ServiceError
    from taoflow.services import serve as run_serve

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    require_network(settings)
    settings.apply_environment()
    seconds = BLOCK_TIME_S_FAST if fast else block_time_s
    try:
        run_serve(settings, block_time_s=seconds, prefect_port=prefect_port, report=_say)
    except ServiceError as exc:
        raise _refuse(str(exc)) from None
