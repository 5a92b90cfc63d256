"""``taoflow demo``, ``up`` and ``serve``: a local network, its UIs and its scheduled epochs."""

from __future__ import annotations

from typing import Annotated

import typer

from taoflow.cli.common import (
    HomeOption,
    MlflowUriOption,
    console,
)
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import settings_for as _settings
from taoflow.settings import Settings


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
    from taoflow.services import make_ephemeral_prefect_server_die_with_parent

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    settings.apply_environment()
    make_ephemeral_prefect_server_die_with_parent()
    run_demo(settings, epochs=epochs, fresh=fresh, console=console)


def up(
    home: HomeOption = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect UI/API port")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port")] = 5000,
) -> None:
    """Start the Prefect server and the MLflow UI on 127.0.0.1; Ctrl-C stops both."""
    from taoflow.services import ServiceError, running, wait_forever

    settings = _settings(home)
    try:
        with running(
            settings, prefect_port=prefect_port, mlflow_port=mlflow_port, report=console.print
        ):
            console.print(
                f"serving {settings.home}; in another terminal: "
                f"PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api taoflow serve. Ctrl-C stops."
            )
            wait_forever()
    except ServiceError as exc:
        raise _fail(str(exc)) from None
    console.print("stopped")


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
    """Serve one scheduled epoch deployment per subnet (tempo × block time)."""
    import os

    from taoflow.services import (
        BLOCK_TIME_S_FAST,
        ServiceError,
        make_ephemeral_prefect_server_die_with_parent,
        running,
        serve_epochs,
    )

    settings = Settings.load(home, dask_address, mlflow_uri=mlflow_uri)
    settings.apply_environment()
    make_ephemeral_prefect_server_die_with_parent()
    seconds = BLOCK_TIME_S_FAST if fast else block_time_s
    try:
        if os.environ.get("PREFECT_API_URL"):
            serve_epochs(settings, block_time_s=seconds, dask_address=settings.dask_address)
            return
        with running(settings, prefect_port=prefect_port, mlflow_port=None, report=console.print):
            os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
            serve_epochs(settings, block_time_s=seconds, dask_address=settings.dask_address)
    except ServiceError as exc:
        raise _fail(str(exc)) from None
