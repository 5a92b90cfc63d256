"""``taoflow weights …``: external validators commit, then reveal, a weight vector."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

import typer

from taoflow.cli.common import (
    HomeOption,
    HotkeyOption,
    SubnetOption,
    WalletOption,
    console,
)
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import settings_for as _settings
from taoflow.settings import Settings

weights_app = typer.Typer(no_args_is_help=True, help="External validators: commit → reveal")


def _checked_vector(
    settings: Settings,
    *,
    subnet: str,
    hotkey_hex: str,
    uids: list[int],
    weights: list[int],
) -> bool:
    """Check a weight vector against the ledger's rules now (``LedgerState.weights_problem``:
    the metagraph's uids, u16 weights, a validator with a permit unless it is a self-weight),
    before anything is committed; ``ActionError`` with the reason. True for a self-weight."""
    from taoflow.actions import ActionError, named
    from taoflow.ledger.roles import is_self_weight
    from taoflow.ledger.store import Ledger

    state = Ledger.open(settings.ledger_dir).state()
    problem = state.weights_problem(subnet=subnet, hotkey=hotkey_hex, uids=uids, weights=weights)
    if problem is not None:
        raise ActionError(named(settings, problem))
    uid = state.uid_of(subnet=subnet, hotkey=hotkey_hex)
    return uid is not None and is_self_weight(uid, uids)


@weights_app.command("commit")
def weights_commit(
    subnet: SubnetOption,
    wallet: WalletOption,
    weights: Annotated[str, typer.Option(help="uid:weight pairs, e.g. '4:65535,5:30000'")],
    hotkey: HotkeyOption = "default",
    home: HomeOption = None,
) -> None:
    """Commit a hash of your weights now; reveal them after the next epoch."""
    from taoflow.actions import (
        ActionError,
        commit_signed,
        new_tx_id,
        pending_weights_path,
        save_pending_weights,
        weights_commit_hash,
    )
    from taoflow.actions import hotkey as load_hot
    from taoflow.ledger.roles import SELF_WEIGHT_KEY
    from taoflow.ledger.schema import Kind, Tx, canonical_json

    settings = _settings(home)
    try:
        pairs = [item.split(":") for item in weights.split(",") if item.strip()]
        uids = [int(u) for u, _ in pairs]
        values = [int(w) for _, w in pairs]
    except ValueError:
        raise _fail("weights must look like '4:65535,5:30000'") from None
    salt = secrets.token_hex(16)
    try:
        hot = load_hot(settings, wallet, hotkey)
        pending = pending_weights_path(settings, subnet=subnet, hotkey_hex=hot.public_hex)
        self_weight = _checked_vector(
            settings,
            subnet=subnet,
            hotkey_hex=hot.public_hex,
            uids=uids,
            weights=values,
        )
        digest = weights_commit_hash(uids=uids, weights=values, salt=salt)
        payload: dict[str, object] = {"commit_hash": digest}
        if self_weight:
            payload[SELF_WEIGHT_KEY] = True
        tx = Tx(
            new_tx_id(Kind.WEIGHTS_COMMIT),
            Kind.WEIGHTS_COMMIT,
            subnet=subnet,
            hotkey=hot.public_hex,
            payload=canonical_json(payload),
        )
        commit_signed(settings, tx, hot)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    save_pending_weights(pending, {"uids": uids, "weights": values, "salt": salt})
    console.print(
        f"[green]committed[/] weights hash {digest[:16]}…; reveal with "
        f"`taoflow weights reveal --subnet {subnet} --wallet {wallet}`"
    )


@weights_app.command("reveal")
def weights_reveal(
    subnet: SubnetOption,
    wallet: WalletOption,
    hotkey: HotkeyOption = "default",
    home: HomeOption = None,
) -> None:
    """Reveal the weights committed earlier (they enter the next epoch's weight matrix)."""
    from taoflow.actions import ActionError, commit_signed, new_tx_id, pending_weights_path
    from taoflow.actions import hotkey as load_hot
    from taoflow.ledger.schema import Kind, Tx, canonical_json

    settings = _settings(home)
    try:
        hot = load_hot(settings, wallet, hotkey)
        path = pending_weights_path(settings, subnet=subnet, hotkey_hex=hot.public_hex)
        if not path.exists():
            raise ActionError("no committed weights to reveal for this hotkey")
        body = json.loads(path.read_text())
        tx = Tx(
            new_tx_id(Kind.WEIGHTS_REVEAL),
            Kind.WEIGHTS_REVEAL,
            subnet=subnet,
            hotkey=hot.public_hex,
            payload=canonical_json(body),
        )
        commit_signed(settings, tx, hot)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    path.unlink()
    console.print(f"[green]revealed[/] {len(body['uids'])} weights on {subnet!r}")
