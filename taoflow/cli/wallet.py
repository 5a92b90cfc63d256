"""``taoflow wallet …``: create and inspect wallets (one coldkey, many hotkeys).

Invariants:
- Output never contains private material: only names and account ids (public keys) are printed.
- The coldkey passphrase comes from ``$TAOFLOW_WALLET_PASSPHRASE`` or a hidden, confirmed prompt;
  it is never echoed, printed or passed on the command line.
- Wallets live under ``<home>/wallets`` where ``<home>`` is ``--home`` / ``$TAOFLOW_HOME`` /
  ``./.taoflow``, as for every other taoflow command.
- A failure prints one red ``error: …`` line on stderr (``taoflow.cli.common.fail``) and exits
  with status 1, never a traceback.
- ``--json`` output is a stable, sorted JSON document on stdout and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from taoflow.cli.common import HomeOption, JsonOption
from taoflow.cli.common import fail as _fail
from taoflow.settings import Settings

if TYPE_CHECKING:  # taoflow.wallet (cryptography) is imported by the commands that use it
    from taoflow.wallet import WalletInfo

WALLETS_DIR = "wallets"
TABLE_WIDTH_MIN = 150
"""Width used when stdout is not a terminal, so 64-character account ids are never folded."""

wallet_app = typer.Typer(
    no_args_is_help=True, help="Create and inspect wallets (coldkey + hotkeys)"
)

NameOption = Annotated[str, typer.Option("--name", "-n", help="Wallet name")]


def _wallets_root(home: Path | None) -> Path:
    return Settings.load(home).home / WALLETS_DIR


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=TABLE_WIDTH_MIN)
    return console


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


def _wallet_table(wallets: list[WalletInfo], *, title: str) -> Table:
    table = Table(title=title)
    table.add_column("wallet", style="bold")
    table.add_column("key")
    table.add_column("account id (public)", no_wrap=True)
    for info in wallets:
        table.add_row(info.name, "coldkey", info.coldkey_public_hex)
        for hotkey, public_hex in info.hotkeys.items():
            table.add_row("", f"hotkey {hotkey}", public_hex)
    return table


@wallet_app.command("create")
def create_command(
    name: NameOption,
    hotkey: Annotated[
        list[str] | None,
        typer.Option("--hotkey", help="Hotkey to create (repeatable; default: 'default')"),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a wallet: a passphrase-encrypted coldkey and one or more hotkeys."""
    from taoflow.wallet import (
        PASSPHRASE_ENV,
        WalletError,
        check_name,
        create_wallet,
        passphrase_from_env_or_prompt,
    )

    root = _wallets_root(home)
    hotkeys = tuple(hotkey) if hotkey else ("default",)
    try:
        # Validate before prompting, so a typo does not cost the user a passphrase entry.
        check_name(name, kind="wallet")
        for hotkey_name in hotkeys:
            check_name(hotkey_name, kind="hotkey")
        if (root / name).exists():
            raise WalletError(f"wallet {name!r} already exists; refusing to overwrite it")
        passphrase = passphrase_from_env_or_prompt(env_var=PASSPHRASE_ENV, confirm=True)
        info = create_wallet(root, name=name, passphrase=passphrase, hotkeys=hotkeys)
    except WalletError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(info.to_json())
        return
    _console().print(_wallet_table([info], title=f"created wallet {info.name}"))


@wallet_app.command("new-hotkey")
def new_hotkey_command(
    name: NameOption,
    hotkey: Annotated[str, typer.Option("--hotkey", help="Name of the new hotkey")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a fresh hotkey to an existing wallet (no passphrase needed)."""
    from taoflow.wallet import WalletError, create_hotkey

    try:
        public_hex = create_hotkey(_wallets_root(home), wallet=name, hotkey=hotkey)
    except WalletError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json({"wallet": name, "hotkey": hotkey, "public_hex": public_hex})
        return
    typer.echo(f"hotkey {hotkey} of wallet {name}: {public_hex}")


@wallet_app.command("list")
def list_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List every wallet with its coldkey and hotkey account ids."""
    from taoflow.wallet import WalletError, list_wallets

    root = _wallets_root(home)
    try:
        wallets = list_wallets(root)
    except WalletError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json([info.to_json() for info in wallets])
        return
    if not wallets:
        typer.echo(f"no wallets under {root}")
        return
    _console().print(_wallet_table(wallets, title=f"wallets under {root}"))


@wallet_app.command("show")
def show_command(name: NameOption, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Show one wallet's coldkey and hotkey account ids."""
    from taoflow.wallet import WalletError, wallet_info

    try:
        info = wallet_info(_wallets_root(home), name=name)
    except WalletError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(info.to_json())
        return
    _console().print(_wallet_table([info], title=f"wallet {info.name}"))
