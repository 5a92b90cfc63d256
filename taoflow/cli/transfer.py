"""``taoflow transfer``: move τ between coldkeys."""

from __future__ import annotations

from typing import Annotated

import typer

from taoflow.cli.common import (
    AmountOption,
    HomeOption,
    JsonOption,
    WalletOption,
)
from taoflow.cli.common import account_label as _account_label
from taoflow.cli.common import account_of as _account_of
from taoflow.cli.common import amount_rao as _amount_rao
from taoflow.cli.common import emit as _emit
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import settings_for as _settings
from taoflow.cli.common import tao_text as _tao_text


def transfer(
    wallet: WalletOption,
    dest: Annotated[str, typer.Option("--dest", help="Destination: account id or wallet name")],
    amount: AmountOption,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Transfer AMOUNT τ from WALLET's coldkey to DEST."""
    from taoflow.actions import ActionError, coldkey, commit_signed, new_tx_id
    from taoflow.ledger.schema import Kind, Tx

    amount_rao = _amount_rao(amount)
    settings = _settings(home)
    target = _account_of(settings, dest)
    try:
        cold = coldkey(settings, wallet)
        tx = Tx(
            new_tx_id(Kind.TRANSFER),
            Kind.TRANSFER,
            coldkey=cold.public_hex,
            dest=target,
            amount_rao=amount_rao,
        )
        result = commit_signed(settings, tx, cold)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    _emit(
        {
            "tx_id": tx.tx_id,
            "batch_no": result.batch_no,
            "amount_rao": tx.amount_rao,
            "dest": target,
        },
        as_json=as_json,
        text=f"[green]sent[/] {_tao_text(amount_rao)} τ to {_account_label(settings, target)} "
        f"(batch {result.batch_no})",
    )
