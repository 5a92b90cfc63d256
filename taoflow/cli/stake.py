"""``taoflow stake …``: stake, unstake, delegate, list stakes, set a validator's take."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from taoflow.cli.common import (
    AmountOption,
    HomeOption,
    HotkeyOption,
    JsonOption,
    WalletOption,
    console,
)
from taoflow.cli.common import account_label as _account_label
from taoflow.cli.common import account_of as _account_of
from taoflow.cli.common import amount_rao as _amount_rao
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import settings_for as _settings
from taoflow.cli.common import tao_text as _tao_text
from taoflow.settings import Settings

stake_app = typer.Typer(no_args_is_help=True, help="Stake, unstake, delegate, set your take")


def _stake_tx(
    kind_name: str, *, wallet: str, hotkey: str, amount_rao: int, home: Path | None
) -> tuple[str, int | None]:
    from taoflow.actions import ActionError, coldkey, commit_signed, new_tx_id
    from taoflow.ledger.schema import Kind, Tx

    settings = _settings(home)
    kind = Kind(kind_name)
    target = _account_of(settings, hotkey)
    try:
        cold = coldkey(settings, wallet)
        tx = Tx(
            new_tx_id(kind),
            kind,
            coldkey=cold.public_hex,
            hotkey=target,
            amount_rao=amount_rao,
        )
        result = commit_signed(settings, tx, cold)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    return _account_label(settings, target), result.batch_no


@stake_app.command("add")
def stake_add(
    wallet: WalletOption,
    hotkey: Annotated[str, typer.Option("--hotkey", help="Validator hotkey: id or wallet/hotkey")],
    amount: AmountOption,
    home: HomeOption = None,
) -> None:
    """Stake (or delegate) AMOUNT τ from WALLET's coldkey to a validator hotkey."""
    amount_rao = _amount_rao(amount)
    target, batch = _stake_tx(
        "add_stake", wallet=wallet, hotkey=hotkey, amount_rao=amount_rao, home=home
    )
    console.print(
        f"[green]staked[/] {_tao_text(amount_rao)} τ to {target} (batch {batch}); "
        "it counts from the next epoch"
    )


@stake_app.command("remove")
def stake_remove(
    wallet: WalletOption,
    hotkey: Annotated[str, typer.Option("--hotkey", help="Validator hotkey: id or wallet/hotkey")],
    amount: AmountOption,
    home: HomeOption = None,
) -> None:
    """Unstake AMOUNT τ from a hotkey back to WALLET's free balance."""
    amount_rao = _amount_rao(amount)
    target, batch = _stake_tx(
        "remove_stake", wallet=wallet, hotkey=hotkey, amount_rao=amount_rao, home=home
    )
    console.print(f"[green]unstaked[/] {_tao_text(amount_rao)} τ from {target} (batch {batch})")


@stake_app.command("list")
def stake_list(
    wallet: Annotated[str | None, typer.Option("--wallet", "-w", help="Only this wallet")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stakes per (coldkey, hotkey) with each hotkey's take."""
    settings = _settings(home, read_only=True)

    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels, label

    state = Ledger.open(settings.ledger_dir).state()
    only = _account_of(settings, wallet) if wallet else None
    rows: list[dict[str, Any]] = [
        {"coldkey": c, "hotkey": h, "stake_rao": v, "take_ppm": state.take_ppm(h)}
        for (c, h), v in sorted(state.stakes.items())
        if only is None or c == only
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    labels = account_labels(settings.wallets_dir)
    table = Table(title="stakes", header_style="bold cyan")
    for column in ("coldkey", "hotkey", "stake τ", "take"):
        table.add_column(column, justify="right" if column in ("stake τ", "take") else "left")
    for r in rows:
        table.add_row(
            label(r["coldkey"], labels),
            label(r["hotkey"], labels),
            _tao_text(r["stake_rao"]),
            f"{r['take_ppm'] / 1e4:.2f} %",
        )
    console.print(table)


def _require_validator(settings: Settings, *, hotkey_hex: str) -> None:
    """``ActionError`` unless the hotkey is a validator somewhere (take is a validator setting:
    ``ledger.roles``), checked before the coldkey is unlocked or anything is committed."""
    from taoflow.actions import ActionError, named
    from taoflow.ledger.roles import take_problem
    from taoflow.ledger.store import Ledger

    state = Ledger.open(settings.ledger_dir).state()
    problem = take_problem(hotkey=hotkey_hex, is_validator=state.is_validator(hotkey_hex))
    if problem is not None:
        raise ActionError(named(settings, problem))


@stake_app.command("take")
def stake_take(
    wallet: WalletOption,
    percent: Annotated[float, typer.Option("--percent", min=0, max=18, help="New take, %")],
    hotkey: HotkeyOption = "default",
    home: HomeOption = None,
) -> None:
    """Set your validator hotkey's take (decreases apply now; increases are rate-limited)."""
    from taoflow.actions import ActionError, coldkey, commit_signed, new_tx_id
    from taoflow.actions import hotkey as load_hot
    from taoflow.ledger.schema import Kind, Tx, canonical_json

    settings = _settings(home)
    try:
        hot = load_hot(settings, wallet, hotkey)
        _require_validator(settings, hotkey_hex=hot.public_hex)
        cold = coldkey(settings, wallet)
        tx = Tx(
            new_tx_id(Kind.SET_TAKE),
            Kind.SET_TAKE,
            coldkey=cold.public_hex,
            hotkey=hot.public_hex,
            payload=canonical_json({"take_ppm": round(percent * 10_000)}),
        )
        commit_signed(settings, tx, cold)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    console.print(f"[green]take set[/] to {percent:.2f} %")
