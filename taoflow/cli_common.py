"""What every ``taoflow`` command module shares: consoles, the common options, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from taoflow.settings import HOME_ENV, Settings, require_network

TABLE_WIDTH_MIN = 150
console = Console()
if not console.is_terminal:
    console = Console(width=TABLE_WIDTH_MIN)
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Network data directory (default ./.taoflow)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
MlflowUriOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri",
        envvar="TAOFLOW_MLFLOW_URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI if set, else the home's SQLite)",
    ),
]


def settings_for(home: Path | None) -> Settings:
    """Settings of an existing network (fails with one line if there is none at ``home``)."""
    settings = Settings.load(home)
    require_network(settings)
    settings.apply_environment()
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
