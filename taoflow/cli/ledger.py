"""``taoflow ledger …``: inspect, verify, repair, snapshot and migrate the ledger.

Current balances, stakes and supply come from the ledger's state (the newest verified snapshot
plus the batches after it); "as of epoch N" from the newest snapshot at or before that epoch's
batch plus the batches up to it, so each answer costs the same whatever the ledger's age. The
entry log reads the batches through DuckDB views. Balances and stakes are listed largest first,
then by the name a person knows the account by (its wallet name, else its short id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from taoflow.cli.common import HomeOption, JsonOption, console, err
from taoflow.cli.common import fail as _fail
from taoflow.cli.common import print_json as _print_json
from taoflow.cli.common import settings_for as _settings
from taoflow.settings import Settings

if TYPE_CHECKING:
    from taoflow.ledger.state import LedgerState

ledger_app = typer.Typer(
    no_args_is_help=True, help="Inspect, verify, snapshot and migrate the ledger"
)


@ledger_app.command("verify")
def ledger_verify(
    home: HomeOption = None,
    as_json: JsonOption = False,
    cross_check: Annotated[
        bool,
        typer.Option(
            "--cross-check",
            help="Also compare each epoch's batch hash with what MLflow and Prefect published",
        ),
    ] = False,
    from_snapshot: Annotated[
        bool,
        typer.Option(
            "--from-snapshot",
            help="Replay the rules only after the newest verified snapshot (hashes and "
            "signatures are still checked for every batch)",
        ),
    ] = False,
) -> None:
    """Re-hash every batch, check every signature and replay the rules (from genesis, or from
    the newest verified snapshot with --from-snapshot)."""
    settings = _settings(home, read_only=not cross_check)

    from taoflow.ledger.errors import LedgerError
    from taoflow.ledger.store import Ledger

    try:
        ledger = Ledger(settings.ledger_dir)
        report = ledger.verify(from_snapshot=from_snapshot)
    except LedgerError as exc:
        raise _fail(str(exc), 2) from None
    checked = None
    if cross_check and report.ok:
        from taoflow.crosscheck import cross_check as run_cross_check

        checked = run_cross_check(settings)
    if as_json:
        body = {
            **{k: v for k, v in report.__dict__.items() if k != "finality"},
            "finality": {
                subnet: {**f.__dict__, "signed_ppm": f.signed_ppm}
                for subnet, f in report.finality.items()
            },
        }
        if checked is not None:
            body["cross_check"] = {
                "ok": checked.ok,
                "epochs": checked.epochs,
                "sources": {c.source: c.__dict__ for c in checked.sources},
            }
        _print_json(body)
    elif report.ok:
        from taoflow.render import verify_lines

        for line in ledger.last_snapshot_load.skipped:
            err.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
        for line in verify_lines(report, checked):
            console.print(line, soft_wrap=True)
    else:
        err.print(
            f"[red]FAILED[/] at batch {report.first_bad_batch}: {report.problem}", soft_wrap=True
        )
    if not report.ok or (checked is not None and not checked.ok):
        raise typer.Exit(1)


@ledger_app.command("repair")
def ledger_repair(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Rebuild a damaged or missing commit log from the batch files (never deletes data)."""
    from taoflow.ledger.store import Ledger

    settings = Settings.load(home)
    if not (settings.ledger_dir / "batches").is_dir():
        raise _fail(f"no ledger at {settings.ledger_dir}: nothing to repair")
    settings.apply_environment()
    ledger = Ledger(settings.ledger_dir)
    report = ledger.repair()
    records = ledger.records()
    head = records[-1].batch_hash if records else "-"
    if as_json:
        _print_json({**report.__dict__, "batches": len(records), "head_hash": head})
        return
    for action in report.actions:
        console.print(f"• {action}", soft_wrap=True)
    summary = "nothing to repair" if not report.actions else "repaired"
    console.print(f"[green]{summary}[/]: {len(records)} batches, head {head}", soft_wrap=True)


@ledger_app.command("log")
def ledger_log(
    home: HomeOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Newest entries to show")] = 30,
    kind: Annotated[str, typer.Option(help="Only entries of this kind")] = "",
    account: Annotated[str, typer.Option(help="Only entries touching this account")] = "",
    as_json: JsonOption = False,
) -> None:
    """The newest ledger entries."""
    from taoflow.ledger.schema import Kind
    from taoflow.names import account_labels, label

    settings = _settings(home)
    if kind and kind not in {k.value for k in Kind}:
        raise _fail(f"unknown kind {kind!r}; kinds: {', '.join(k.value for k in Kind)}")
    resolved = _resolve_account(settings, account) if account else ""
    rows = _views(settings).log(limit=limit, kind=kind, account=resolved)
    if as_json:
        _print_json(rows)
        return
    labels = account_labels(settings.wallets_dir)
    table = Table(title="ledger log (newest first)", header_style="bold cyan")
    for column in ("batch", "kind", "tx id", "from", "to / hotkey", "τ"):
        table.add_column(column, justify="right" if column == "τ" else "left")
    for row in rows:
        target = row["dest"] or row["hotkey"]
        table.add_row(
            str(row["batch_no"]),
            row["kind"],
            row["tx_id"],
            label(row["coldkey"], labels) if row["coldkey"] else "",
            label(target, labels) if target else "",
            _tao(row["amount_rao"]),
        )
    console.print(table)


AsOfEpochOption = Annotated[
    int | None,
    typer.Option("--as-of-epoch", min=0, help="State right after this epoch of --subnet"),
]
SubnetOption = Annotated[str, typer.Option("--subnet", help="Subnet for --as-of-epoch")]


def _views(settings: Settings) -> Any:
    from taoflow.ledger.store import Ledger
    from taoflow.ledger.views import LedgerViews

    return LedgerViews(Ledger(settings.ledger_dir).table())


def _state_as_of(settings: Settings, *, as_of_epoch: int | None, subnet: str) -> LedgerState:
    """The current state, or the state right after ``subnet``'s epoch ``as_of_epoch``."""
    from taoflow.ledger.store import Ledger

    ledger = Ledger(settings.ledger_dir)
    if as_of_epoch is None:
        return ledger.state()
    batch = ledger.batch_of_epoch(subnet, as_of_epoch)
    if batch is None:
        raise _fail(f"epoch {as_of_epoch} of subnet {subnet!r} is not in the ledger")
    return ledger.state_as_of(batch)


def _resolve_account(settings: Settings, value: str) -> str:
    """An account id from a hex id, a wallet name (its coldkey) or wallet/hotkey."""
    from taoflow.names import UnknownAccount, resolve_account

    try:
        return resolve_account(settings.wallets_dir, value)
    except UnknownAccount as exc:
        raise _fail(str(exc)) from None


def _tao(rao: int) -> str:
    from taoflow.ledger.payouts import tao_text

    return tao_text(rao)


@ledger_app.command("balance")
def ledger_balance(
    home: HomeOption = None,
    account: Annotated[str, typer.Option(help="Only this account (id or wallet name)")] = "",
    as_of_epoch: AsOfEpochOption = None,
    subnet: SubnetOption = "digits",
    as_json: JsonOption = False,
) -> None:
    """Free balances per coldkey (optionally as of an epoch)."""
    settings = _settings(home, read_only=True)

    from taoflow.names import account_labels, label

    resolved = _resolve_account(settings, account) if account else ""
    state = _state_as_of(settings, as_of_epoch=as_of_epoch, subnet=subnet)
    labels = account_labels(settings.wallets_dir)
    rows: list[dict[str, Any]] = [
        {"coldkey": coldkey, "balance_rao": amount}
        for coldkey, amount in state.balances.items()
        if amount and (not resolved or coldkey == resolved)
    ]
    if resolved and not rows:
        rows = [{"coldkey": resolved, "balance_rao": 0}]
    rows.sort(key=lambda r: (-r["balance_rao"], label(r["coldkey"], labels), r["coldkey"]))
    if as_json:
        _print_json(rows)
        return
    table = Table(title="balances (largest first)", header_style="bold cyan")
    table.add_column("coldkey")
    table.add_column("balance τ", justify="right")
    for row in rows:
        table.add_row(label(row["coldkey"], labels), _tao(row["balance_rao"]))
    console.print(table)


@ledger_app.command("stakes")
def ledger_stakes(
    home: HomeOption = None,
    account: Annotated[str, typer.Option(help="Only this coldkey or hotkey")] = "",
    as_of_epoch: AsOfEpochOption = None,
    subnet: SubnetOption = "digits",
    as_json: JsonOption = False,
) -> None:
    """Stake per (coldkey, hotkey) (optionally as of an epoch)."""
    settings = _settings(home, read_only=True)

    from taoflow.names import account_labels, label

    resolved = _resolve_account(settings, account) if account else ""
    state = _state_as_of(settings, as_of_epoch=as_of_epoch, subnet=subnet)
    labels = account_labels(settings.wallets_dir)
    rows: list[dict[str, Any]] = [
        {"coldkey": coldkey, "hotkey": hotkey, "stake_rao": amount}
        for (coldkey, hotkey), amount in state.stakes.items()
        if amount and (not resolved or resolved in (coldkey, hotkey))
    ]
    rows.sort(
        key=lambda r: (
            -r["stake_rao"],
            label(r["coldkey"], labels),
            label(r["hotkey"], labels),
            r["coldkey"],
            r["hotkey"],
        )
    )
    if as_json:
        _print_json(rows)
        return
    table = Table(title="stakes (largest first)", header_style="bold cyan")
    for column in ("coldkey", "hotkey", "stake τ"):
        table.add_column(column, justify="right" if column == "stake τ" else "left")
    for row in rows:
        table.add_row(
            label(row["coldkey"], labels), label(row["hotkey"], labels), _tao(row["stake_rao"])
        )
    console.print(table)


@ledger_app.command("supply")
def ledger_supply(
    home: HomeOption = None,
    as_of_epoch: AsOfEpochOption = None,
    subnet: SubnetOption = "digits",
    as_json: JsonOption = False,
) -> None:
    """Total issued, burned, Σ balances, Σ stakes, Σ locked (rao), and whether they agree."""
    settings = _settings(home, read_only=True)
    supply: dict[str, Any] = dict(
        _state_as_of(settings, as_of_epoch=as_of_epoch, subnet=subnet).supply()
    )
    held = supply["balances_rao"] + supply["stakes_rao"] + supply["locked_rao"]
    supply["identity_holds"] = supply["issued_rao"] - supply["burned_rao"] == held
    if as_json:
        _print_json(supply)
        return
    table = Table(title="supply", header_style="bold cyan")
    table.add_column("term")
    table.add_column("rao", justify="right")
    table.add_column("τ", justify="right")
    for key, value in supply.items():
        if key.endswith("_rao"):
            table.add_row(key.removesuffix("_rao"), f"{value:,}", _tao(value))
    console.print(table)
    console.print("identity " + ("[green]holds[/]" if supply["identity_holds"] else "[red]BROKEN"))
    if not supply["identity_holds"]:
        raise typer.Exit(1)


@ledger_app.command("snapshot")
def ledger_snapshot(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Write a snapshot of the current state now (one is also written every K batches)."""
    from taoflow.ledger.store import Ledger
    from taoflow.ledger.store.snapshots import snapshot_dir

    settings = _settings(home)
    ledger = Ledger.open(settings.ledger_dir)
    record = ledger.snapshot()
    if record is None:
        raise _fail("the ledger is empty: nothing to snapshot")
    directory = snapshot_dir(ledger.root, record.batch_no)
    size = sum(p.stat().st_size for p in directory.iterdir())
    if as_json:
        _print_json({"batch_no": record.batch_no, "head_hash": record.head_hash, "bytes": size})
        return
    console.print(
        f"[green]snapshot[/] of batch {record.batch_no} (head {record.head_hash[:16]}…): "
        f"{len(record.tables)} signed tables, {size:,} bytes in {directory}",
        soft_wrap=True,
    )


@ledger_app.command("migrate")
def ledger_migrate(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Convert a ledger written by an older taoflow (format 1) to this format, proving the new
    state equal to the old replay; the old ledger is kept beside it."""
    from taoflow.ledger.store.ledger import default_writer_key_path
    from taoflow.ledger.store.migrate import TO_FORMAT, migrate

    settings = Settings.load(home)
    if not (settings.ledger_dir / "batches").is_dir():
        raise _fail(f"no ledger at {settings.ledger_dir}: nothing to migrate")
    settings.apply_environment()
    report = migrate(
        settings.ledger_dir, writer_key_path=default_writer_key_path(settings.ledger_dir)
    )
    if as_json:
        _print_json({**report.__dict__, "format": TO_FORMAT})
        return
    if not report.migrated:
        console.print(f"[green]nothing to migrate[/]: the ledger is in format {TO_FORMAT}")
        return
    console.print(
        f"[green]migrated[/] {report.batches} batches ({report.rows} rows) to format {TO_FORMAT}; "
        f"the new state equals the old replay ({', '.join(report.compared[:6])}, … and every "
        f"transaction id); head {report.head_hash}",
        soft_wrap=True,
    )
    console.print(f"the format-1 ledger is kept at {report.old_dir}", soft_wrap=True)
