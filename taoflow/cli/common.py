"""What every ``taoflow`` command module shares: consoles, the common options, one-line errors.

Invariants:
- An error is exactly one line on stderr, ``error: <message>``: the message is printed without
  rich markup and without wrapping, and any line break in it is folded into a space
  (``error_line``), whatever the terminal width or the text a user typed.
- τ on the command line is parsed by one parser (``ledger.payouts.parse_tao``, via
  ``amount_rao``): exact, never rounded; a bad amount is one line and exit 2, before anything is
  read or written. τ shown to people is exact with 9 decimals (``tao_text``).
- Accounts are shown by wallet name (``wallet`` or ``wallet/hotkey``) where a local wallet holds
  them, by short id otherwise (``account_label``).
- Importing this package loads typer and rich, not the flow stack; a read-only command run as
  its own process (``app.main``) also runs without pandas (``settings_for(read_only=True)``).
"""

from __future__ import annotations

import importlib.abc
import json
import sys
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


def settings_for(home: Path | None, *, read_only: bool = False) -> Settings:
    """Settings of an existing network (fails with one line if there is none at ``home``).

    ``read_only``: the command only reads the ledger and never holds a pandas object; in a
    process that runs just this command, pandas is hidden (:func:`hide_pandas`).
    """
    settings = Settings.load(home)
    require_network(settings)
    settings.apply_environment()
    if read_only and _ONE_COMMAND_PROCESS:
        hide_pandas()
    return settings


_ONE_COMMAND_PROCESS = False
"""Set by :func:`one_command_process` (``taoflow.cli.app.main``); in-process callers keep it off."""


def one_command_process() -> None:
    """Declare that this process runs one command and exits (the console entry point)."""
    global _ONE_COMMAND_PROCESS
    _ONE_COMMAND_PROCESS = True


class _HidePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is hidden from this read-only command", name=name)


def hide_pandas() -> None:
    """Make pandas unimportable for the rest of this process, unless it is already imported.

    pyarrow imports pandas (0.3 s to 1 s) at its first conversion of a Python object, even of
    the empty columns of ``Schema.empty_table()``, only to recognise pandas objects and pandas'
    missing-value markers; a read-only command holds neither, so with pandas hidden pyarrow
    treats it as not installed. Only for a process that runs one such command and exits
    (``one_command_process``): in a longer-lived process a later caller may need pandas.
    """
    if "pandas" in sys.modules or any(isinstance(f, _HidePandas) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _HidePandas())


def error_line(message: str) -> None:
    """Print ``error: message`` as exactly one line on stderr (no markup, no wrapping)."""
    from rich.markup import escape

    one_line = " ".join(message.split())
    err.print(f"[red]error:[/] {escape(one_line)}", soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print the one-line error; the caller raises the returned ``typer.Exit``."""
    error_line(message)
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
    from taoflow.ledger.payouts import parse_tao

    try:
        return parse_tao(text, allow_zero=allow_zero)
    except ValueError as exc:
        raise fail(str(exc), AMOUNT_USAGE_EXIT_CODE) from None


def tao_text(amount_rao: int) -> str:
    """Exact τ text of ``amount_rao`` with 9 decimals, ``1,234.500000000`` (no float)."""
    from taoflow.ledger.payouts import tao_text as ledger_tao_text

    return ledger_tao_text(amount_rao)


def account_label(settings: Settings, account: str) -> str:
    """``account`` as a person knows it: ``wallet`` or ``wallet/hotkey``, else its short id."""
    from taoflow.names import account_labels, label

    return label(account, account_labels(settings.wallets_dir))


def account_of(settings: Settings, value: str) -> str:
    """An account id from a hex id, a wallet name (its coldkey) or wallet/hotkey."""
    from taoflow.names import UnknownAccount, resolve_account

    try:
        return resolve_account(settings.wallets_dir, value)
    except UnknownAccount as exc:
        raise fail(str(exc)) from None
