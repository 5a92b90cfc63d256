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


WalletOption = Annotated[str, typer.Option("--wallet", "-w", help="Wallet name")]
HotkeyOption = Annotated[str, typer.Option("--hotkey", help="Hotkey name in the wallet")]
SubnetOption = Annotated[str, typer.Option("--subnet", "-s", help="Subnet name")]


def emit(result: dict[str, Any], *, as_json: bool, text: str) -> None:
    """``result`` as JSON with ``--json``, else ``text`` (rich markup) on stdout."""
    if as_json:
        print_json(result)
    else:
        console.print(text)


AmountOption = Annotated[
    str, typer.Option("--amount", help="Amount in τ: positive, at most 9 decimals")
]
AMOUNT_USAGE_EXIT_CODE = 2


def amount_rao(text: str, *, allow_zero: bool = False) -> int:
    """A τ option as exact rao (``ledger.payouts.parse_tao``); one line and exit 2 if not."""
    from rich.markup import escape

    from taoflow.ledger.payouts import parse_tao

    try:
        return parse_tao(text, allow_zero=allow_zero)
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(AMOUNT_USAGE_EXIT_CODE) from None


def tao_text(amount_rao: int) -> str:
    """Exact τ text of ``amount_rao`` (no float rounding)."""
    whole, frac = divmod(amount_rao, 1_000_000_000)
    return f"{whole:,}.{frac:09d}"


def account_of(settings: Settings, value: str) -> str:
    """An account id from a hex id, a wallet name (its coldkey) or wallet/hotkey."""
    from taoflow.names import UnknownAccount, resolve_account

    try:
        return resolve_account(settings.wallets_dir, value)
    except UnknownAccount as exc:
        raise fail(str(exc)) from None
