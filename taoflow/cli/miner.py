"""``taoflow miner …``: train a valid submission, submit it, follow its state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from taoflow.cli.common import emit as _emit
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import settings_for as _settings

if TYPE_CHECKING:
    from taoflow.ledger.state import LedgerState

miner_app = typer.Typer(no_args_is_help=True, help="Miner kit: train, submit, follow submissions")


def _refuse_resubmission(state: LedgerState, *, subnet: str, hotkey_hex: str, digest: str) -> None:
    """``ActionError`` if ``digest`` is already the hotkey's newest commit on ``subnet`` (the
    ledger refuses it too), before anything is stored, published or committed."""
    from taoflow.actions import ActionError

    problem = state.resubmission_problem(subnet=subnet, hotkey=hotkey_hex, digest=digest)
    if problem is not None:
        raise ActionError(problem)


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
    for path in (model, config):  # before torch and the evaluation set are loaded
        if not path.is_file():
            raise _fail(f"cannot read the submission: {path} is not a file")
    from taoflow.actions import ActionError, commit_signed, new_tx_id, submission_payload
    from taoflow.actions import hotkey as load_hot
    from taoflow.ledger.schema import Kind, Tx
    from taoflow.ledger.store import Ledger
    from taoflow.tasks import artifact_store
    from taoflow.tasks.evaluate.stage import family_limits
    from taoflow.tasks.models.artifacts import ArtifactRejected, artifact_digest, load_submission

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
        _refuse_resubmission(
            state,
            subnet=subnet,
            hotkey_hex=hot.public_hex,
            digest=artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes),
        )
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
    settings = _settings(home, read_only=True)

    from taoflow.ledger.store import Ledger
    from taoflow.names import account_labels, label
    from taoflow.queries import NoSuchSubnet, submission_states

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
