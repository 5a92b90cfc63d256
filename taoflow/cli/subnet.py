"""``taoflow subnet …`` and the subnet-wide views: create, list, register, metagraph."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

import typer
from rich.table import Table

from taoflow.cli.common import (
    HomeOption,
    HotkeyOption,
    JsonOption,
    SubnetOption,
    WalletOption,
    console,
)
from taoflow.cli.common import amount_rao as _amount_rao
from taoflow.cli.common import emit as _emit
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import print_json as _print_json
from taoflow.cli.common import settings_for as _settings
from taoflow.cli.common import tao_text as _tao_text

subnet_app = typer.Typer(no_args_is_help=True, help="Create and list subnets")


@subnet_app.command("create")
def subnet_create(
    name: Annotated[str, typer.Option("--name", help="Subnet name")],
    wallet: WalletOption,
    evaluation_set: Annotated[str, typer.Option("--evaluation-set", help="digits, …")] = "digits",
    hotkey: HotkeyOption = "default",
    tempo: Annotated[int, typer.Option(min=1, max=100_000, help="Blocks per epoch")] = 100,
    lock_tao: Annotated[
        str, typer.Option("--lock-tao", help="Lock cost to burn, τ (at most 9 decimals)")
    ] = "100",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a subnet owned by WALLET: burns the lock cost and records its configuration."""
    from taoflow.actions import ActionError, coldkey, commit_signed
    from taoflow.actions import hotkey as load_hot
    from taoflow.evaluation_sets import UnknownEvaluationSet, load_evaluation_set
    from taoflow.ledger.names import check_subnet_name
    from taoflow.ledger.schema import Kind, Tx, canonical_json
    from taoflow.network import subnet_config

    name_problem = check_subnet_name(name)
    if name_problem is not None:  # before anything is unlocked, signed or written
        raise _fail(name_problem)
    settings = _settings(home)
    try:
        eval_set = load_evaluation_set(evaluation_set)
    except UnknownEvaluationSet as exc:
        raise _fail(str(exc)) from None
    config = subnet_config(eval_set, tempo_blocks=tempo)
    lock_rao = _amount_rao(lock_tao, allow_zero=True)
    try:
        owner = coldkey(settings, wallet)
        hot = load_hot(settings, wallet, hotkey)
        tx = Tx(
            f"subnet/{name}",
            Kind.SUBNET_CREATE,
            subnet=name,
            coldkey=owner.public_hex,
            hotkey=hot.public_hex,
            amount_rao=lock_rao,
            payload=canonical_json(config),
        )
        result = commit_signed(settings, tx, owner)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    _emit(
        {"subnet": name, "batch_no": result.batch_no, "config": config},
        as_json=as_json,
        text=f"[green]created[/] subnet {name!r} (batch {result.batch_no}); evaluation set "
        f"{eval_set.name} {eval_set.content_hash[:16]}…",
    )


@subnet_app.command("list")
def subnet_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Every subnet with its task, evaluation set, size and current registration cost."""
    settings = _settings(home, read_only=True)

    from taoflow.ledger.store import Ledger

    state = Ledger.open(settings.ledger_dir).state()
    rows: list[dict[str, Any]] = [
        {
            "subnet": name,
            "task": info.config.task,
            "evaluation_set": info.config.evaluation_set,
            "evaluation_set_hash": info.config.evaluation_set_hash,
            "uids": len(state.neurons.get(name, {})),
            "uids_max": info.uids_max,
            "registration_cost_rao": state.registration_cost(name),
            "last_epoch": state.last_epoch.get(name),
        }
        for name, info in sorted(state.subnets.items())
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from taoflow.render import tao_rounded

    table = Table(title="subnets", header_style="bold cyan")
    for column in ("subnet", "task", "evaluation set", "uids", "reg cost τ", "last epoch"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["subnet"],
            str(r["task"]),
            str(r["evaluation_set"]),
            f"{r['uids']}/{r['uids_max']}",
            tao_rounded(r["registration_cost_rao"], decimals=4),
            str(r["last_epoch"]),
        )
    console.print(table)


@subnet_app.command("params")
def subnet_params(
    subnet: Annotated[str, typer.Argument(help="Subnet name")],
    as_of_epoch: Annotated[
        int | None,
        typer.Option("--as-of-epoch", min=0, help="The parameters this epoch ran with"),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """SUBNET's hyper-parameters now (or in effect for epoch N) and the proposals that set them."""
    from taoflow.cli.governance import subnet_params_view

    subnet_params_view(home, subnet=subnet, as_of_epoch=as_of_epoch, as_json=as_json)


def register(
    subnet: SubnetOption,
    wallet: WalletOption,
    hotkey: HotkeyOption = "default",
    role: Annotated[str, typer.Option(help="miner or validator")] = "miner",
    external: Annotated[
        bool, typer.Option("--external", help="Validator sets its own weights (commit → reveal)")
    ] = False,
    max_cost_tao: Annotated[
        str | None,
        typer.Option("--max-cost", help="Refuse if the burn exceeds this, τ (≤ 9 decimals)"),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register HOTKEY on SUBNET, burning the current registration cost."""
    from taoflow.actions import ActionError, coldkey, commit_signed
    from taoflow.actions import hotkey as load_hot
    from taoflow.ledger.schema import Kind, Tx, canonical_json
    from taoflow.ledger.store import Ledger

    max_cost_rao = None if max_cost_tao is None else _amount_rao(max_cost_tao, allow_zero=True)
    settings = _settings(home)
    state = Ledger.open(settings.ledger_dir).state()
    if subnet not in state.subnets:
        raise _fail(f"no subnet {subnet!r}")
    cost = state.registration_cost(subnet)
    if max_cost_rao is not None and cost > max_cost_rao:
        raise _fail(
            f"registration costs {_tao_text(cost)} τ, above --max-cost {_tao_text(max_cost_rao)} τ"
        )
    payload: dict[str, Any] = {"role": role}
    if external:
        payload["validator_settings"] = {"hosted": False}
    try:
        cold = coldkey(settings, wallet)
        hot = load_hot(settings, wallet, hotkey)
        tx = Tx(
            f"register/{subnet}/{hot.public_hex}/{secrets.token_hex(6)}",
            Kind.REGISTER,
            subnet=subnet,
            coldkey=cold.public_hex,
            hotkey=hot.public_hex,
            amount_rao=cost,
            payload=canonical_json(payload),
        )
        result = commit_signed(settings, tx, cold)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    uid = Ledger.open(settings.ledger_dir).state().uid_of(subnet=subnet, hotkey=hot.public_hex)
    _emit(
        {"subnet": subnet, "uid": uid, "burned_rao": cost, "batch_no": result.batch_no},
        as_json=as_json,
        text=f"[green]registered[/] {wallet}/{hotkey} on {subnet!r} as uid {uid} "
        f"(burned {_tao_text(cost)} τ)",
    )


def metagraph(
    subnet: Annotated[str, typer.Option("--subnet", help="Subnet name")] = "digits",
    epoch: Annotated[
        int | None,
        typer.Option("--epoch", min=0, help="The state right after this epoch (default: now)"),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The subnet's metagraph: stake now (or right after --epoch) and that epoch's consensus."""
    settings = _settings(home, read_only=True)

    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels
    from taoflow.queries import NoSuchEpoch, NoSuchSubnet
    from taoflow.queries import metagraph as query
    from taoflow.render import metagraph_table, metagraph_title

    ledger = Ledger.open(settings.ledger_dir)
    try:
        rows = query(ledger, subnet=subnet, epoch=epoch)
    except NoSuchSubnet:
        raise _fail(f"no subnet {subnet!r} in {settings.home}") from None
    except NoSuchEpoch as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(rows)
        return
    shown = rows[0]["epoch"] if rows else ledger.state().last_epoch.get(subnet)
    later = 0
    if epoch is None and shown is not None:
        later = len(ledger.records()) - (ledger.batch_of_epoch(subnet, shown) or 0)
    title = metagraph_title(subnet, epoch=shown, later_batches=later)
    labels = account_labels(settings.wallets_dir)
    console.print(metagraph_table(rows, title=title, labels=labels))
