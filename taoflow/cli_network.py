"""Network commands: subnets, registration, submissions, the miner kit, external weights.

Each command signs with a local wallet (coldkey passphrase from ``TAOFLOW_WALLET_PASSPHRASE`` or a
prompt), commits one transaction, and prints the result; errors are one line and exit 1.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from taoflow.settings import HOME_ENV, Settings

console = Console() if Console().is_terminal else Console(width=150)
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar=HOME_ENV, help="Network data directory")
]
WalletOption = Annotated[str, typer.Option("--wallet", "-w", help="Wallet name")]
HotkeyOption = Annotated[str, typer.Option("--hotkey", help="Hotkey name in the wallet")]
SubnetOption = Annotated[str, typer.Option("--subnet", "-s", help="Subnet name")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]

subnet_app = typer.Typer(no_args_is_help=True, help="Create and list subnets")
miner_app = typer.Typer(no_args_is_help=True, help="Miner kit: train a valid submission")
weights_app = typer.Typer(no_args_is_help=True, help="External validators: commit → reveal")


def _settings(home: Path | None) -> Settings:
    """Settings of an existing network (fails with one line if there is none at ``home``)."""
    from taoflow.settings import require_network

    settings = Settings.load(home)
    require_network(settings)
    settings.apply_environment()
    return settings


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(1)


def _emit(result: dict[str, Any], *, as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        console.print(text)


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
    from taoflow.ledger.store import Ledger

    settings = _settings(home)
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
    table = Table(title="subnets", header_style="bold cyan")
    for column in ("subnet", "task", "evaluation set", "uids", "reg cost τ", "last epoch"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["subnet"],
            str(r["task"]),
            str(r["evaluation_set"]),
            f"{r['uids']}/{r['uids_max']}",
            f"{r['registration_cost_rao'] / 1e9:,.4f}",
            str(r["last_epoch"]),
        )
    console.print(table)


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
        f"(burned {cost / 1e9:,.4f} τ)",
    )


def submit(
    model: Annotated[Path, typer.Argument(help="model.safetensors")],
    config: Annotated[Path, typer.Argument(help="config.json")],
    subnet: SubnetOption,
    wallet: WalletOption,
    hotkey: HotkeyOption = "default",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a model against the subnet's rules, store it and commit it (signed by HOTKEY)."""
    from taoflow.actions import ActionError, commit_signed, new_tx_id, submission_payload
    from taoflow.actions import hotkey as load_hot
    from taoflow.ledger.schema import Kind, Tx
    from taoflow.ledger.store import Ledger
    from taoflow.tasks import artifact_store
    from taoflow.tasks.evaluate.stage import family_limits
    from taoflow.tasks.models.artifacts import ArtifactRejected, load_submission

    settings = _settings(home)
    state = Ledger.open(settings.ledger_dir).state()
    info = state.subnets.get(subnet)
    if info is None:
        raise _fail(f"no subnet {subnet!r}")
    from taoflow.evaluation_sets import load_evaluation_set

    eval_set = load_evaluation_set(info.config.evaluation_set)
    limits = family_limits(info.config, eval_set=eval_set)
    try:
        with model.open("rb") as handle:
            model_bytes = handle.read(limits.bytes_max + 1)
        config_bytes = config.read_bytes()[: 64 * 1024]
    except OSError as exc:
        raise _fail(f"cannot read the submission: {exc}") from None
    try:
        load_submission(model_bytes=model_bytes, config_bytes=config_bytes, limits=limits)
    except ArtifactRejected as exc:
        raise _fail(f"model rejected: {exc.reason}") from None
    try:
        hot = load_hot(settings, wallet, hotkey)
        stored = artifact_store.store(
            settings.artifacts_dir, model_bytes=model_bytes, config_bytes=config_bytes
        )
        uri = stored.uri
        if settings.artifact_store_url:
            from taoflow.tasks.remote_store import RemoteArtifactError, publish

            try:
                uri = publish(
                    settings.artifact_store_url,
                    model_bytes=model_bytes,
                    config_bytes=config_bytes,
                )
            except RemoteArtifactError as exc:
                raise ActionError(str(exc)) from None
        tx = Tx(
            new_tx_id(Kind.SUBMISSION_COMMIT),
            Kind.SUBMISSION_COMMIT,
            subnet=subnet,
            hotkey=hot.public_hex,
            payload=submission_payload(digest=stored.digest, uri=uri, hotkey_hex=hot.public_hex),
        )
        result = commit_signed(settings, tx, hot)
    except ActionError as exc:
        raise _fail(str(exc)) from None
    delay = info.config.evaluation_delay_blocks
    _emit(
        {
            "digest": stored.digest,
            "batch_no": result.batch_no,
            "eligible_from_block": state.block + delay,
        },
        as_json=as_json,
        text=f"[green]submitted[/] {stored.digest[:16]}… to {subnet!r}; eligible from block "
        f"{state.block + delay}",
    )


def submissions(subnet: SubnetOption, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Every submission's state (pending, eligible, evaluated, rejected) and the reason."""
    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels, label
    from taoflow.queries import NoSuchSubnet, submission_states

    settings = _settings(home)
    try:
        rows = submission_states(Ledger.open(settings.ledger_dir), subnet=subnet)
    except NoSuchSubnet:
        raise _fail(f"no subnet {subnet!r}") from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    labels = account_labels(settings.wallets_dir)
    table = Table(title=f"submissions — {subnet}", header_style="bold cyan")
    for column in ("uid", "hotkey", "digest", "block", "state", "score", "reason"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["uid"]),
            label(r["hotkey"], labels),
            r["digest"][:12] + "…",
            str(r["block"]),
            r["state"],
            "" if r["score"] is None else f"{r['score']:.4f}",
            r["reason"] or "",
        )
    console.print(table)


@miner_app.command("train")
def miner_train(
    subnet: SubnetOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for the submission files")],
    family: Annotated[
        str | None, typer.Option(help="Model family (default: the subnet's first family)")
    ] = None,
    hidden: Annotated[list[int], typer.Option("--hidden", help="Hidden layer sizes")] = [64],  # noqa: B006
    epochs: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    home: HomeOption = None,
) -> None:
    """Train a model for SUBNET's task and write model.safetensors + config.json."""
    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.miner_kit import train_model
    from taoflow.tasks.models.artifacts import save_submission

    settings = _settings(home)
    info = Ledger.open(settings.ledger_dir).state().subnets.get(subnet)
    if info is None:
        raise _fail(f"no subnet {subnet!r}")
    eval_set = load_evaluation_set(info.config.evaluation_set)
    configured = info.config.model_families or (info.config.model_family,)
    chosen = family or str(configured[0])
    overrides: dict[str, object] = {} if chosen == "cnn" else {"hidden_sizes": list(hidden)}
    try:
        with console.status(f"training a {chosen} on {eval_set.name} ({epochs} epochs)"):
            model, config = train_model(
                eval_set, family=chosen, config_overrides=overrides, epochs=epochs, seed=seed
            )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    model_path, config_path = save_submission(model, config, out)
    console.print(f"[green]wrote[/] {model_path} and {config_path}")


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
        digest = weights_commit_hash(uids=uids, weights=values, salt=salt)
        tx = Tx(
            new_tx_id(Kind.WEIGHTS_COMMIT),
            Kind.WEIGHTS_COMMIT,
            subnet=subnet,
            hotkey=hot.public_hex,
            payload=canonical_json({"commit_hash": digest}),
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


stake_app = typer.Typer(no_args_is_help=True, help="Stake, unstake, delegate, set your take")
AmountOption = Annotated[
    str, typer.Option("--amount", help="Amount in τ: positive, at most 9 decimals")
]
AMOUNT_USAGE_EXIT_CODE = 2


def _amount_rao(text: str, *, allow_zero: bool = False) -> int:
    """A τ option as exact rao (``ledger.payouts.parse_tao``); one line and exit 2 if not."""
    from rich.markup import escape

    from taoflow.ledger.payouts import parse_tao

    try:
        return parse_tao(text, allow_zero=allow_zero)
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(AMOUNT_USAGE_EXIT_CODE) from None


def _tao_text(amount_rao: int) -> str:
    """Exact τ text of ``amount_rao`` (no float rounding)."""
    whole, frac = divmod(amount_rao, 1_000_000_000)
    return f"{whole:,}.{frac:09d}"


def _account_of(settings: Settings, value: str) -> str:
    """An account id from a hex id, a wallet name (its coldkey) or wallet/hotkey."""
    from taoflow.names import UnknownAccount, resolve_account

    try:
        return resolve_account(settings.wallets_dir, value)
    except UnknownAccount as exc:
        raise _fail(str(exc)) from None


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
    return target, result.batch_no


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
        f"[green]staked[/] {_tao_text(amount_rao)} τ to {target[:16]}… (batch {batch}); "
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
    console.print(
        f"[green]unstaked[/] {_tao_text(amount_rao)} τ from {target[:16]}… (batch {batch})"
    )


@stake_app.command("list")
def stake_list(
    wallet: Annotated[str | None, typer.Option("--wallet", "-w", help="Only this wallet")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stakes per (coldkey, hotkey) with each hotkey's take."""
    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels, label

    settings = _settings(home)
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
            f"{r['stake_rao'] / 1e9:,.9f}",
            f"{r['take_ppm'] / 1e4:.2f} %",
        )
    console.print(table)


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
        cold = coldkey(settings, wallet)
        hot = load_hot(settings, wallet, hotkey)
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
        {"tx_id": tx.tx_id, "batch_no": result.batch_no, "amount_rao": tx.amount_rao},
        as_json=as_json,
        text=f"[green]sent[/] {_tao_text(amount_rao)} τ to {target[:16]}… "
        f"(batch {result.batch_no})",
    )
