"""``taoflow replay``: re-run committed epochs from the ledger's inputs and compare, row by row.

One epoch (``--epoch N``) is replayed in this process; a range (``--epochs A..B``) runs as the
Prefect flow ``replay`` (``flows.replay``) with a progress bar per finished epoch. Output for
people: ``epoch N of S: identical`` and the hashes compared, or the first stage that differs and
a table of the differences (exit 1). ``--json`` for scripts. Bad input (an unknown subnet or
stage, an epoch that is not committed, a malformed range, both or neither of ``--epoch`` and
``--epochs``) is one line on stderr and exit 2, before anything runs; nothing is ever written to
the ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from taoflow.cli.common import HomeOption, JsonOption, SubnetOption, console, err, fail
from taoflow.cli.common import print_json as _print_json
from taoflow.settings import Settings, require_network

if TYPE_CHECKING:
    from taoflow.tasks.audit.replay import ReplayReport

USAGE_EXIT_CODE: Final = 2
DIFFERS_EXIT_CODE: Final = 1
STAGE_NAMES: Final = ("evaluate", "consensus", "emit")
HASH_CHARS_SHOWN: Final = 16
VALUE_CHARS_SHOWN: Final = 40


def replay(
    subnet: SubnetOption,
    epoch: Annotated[int | None, typer.Option("--epoch", help="One committed epoch")] = None,
    epochs: Annotated[
        str | None, typer.Option("--epochs", help="A range A..B, run as a Prefect flow")
    ] = None,
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            help="Start at evaluate (artifacts), consensus (stored scores) or emit (stored shares)",
        ),
    ] = "evaluate",
    home: HomeOption = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Evaluate on an existing Dask scheduler")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-run committed epochs from their stored inputs and compare with the ledger."""
    settings = Settings.load(home, dask_address)
    require_network(settings)
    settings.apply_environment()
    first, last = _checked_request(settings, subnet=subnet, epoch=epoch, epochs=epochs, stage=stage)
    if epochs is None:
        reports = [_replay_one(settings, subnet=subnet, epoch=first, stage=stage)]
    else:
        reports = _replay_range(
            settings, subnet=subnet, first=first, last=last, stage=stage, quiet=as_json
        )
    if as_json:
        _print_json(_json(reports, subnet=subnet, stage=stage, single=epochs is None))
    else:
        for report in reports:
            _print_report(report)
        if len(reports) > 1:
            same = sum(r.identical for r in reports)
            console.print(f"{subnet} epochs {first}..{last}: {same} of {len(reports)} identical")
    if not all(r.identical for r in reports):
        raise typer.Exit(DIFFERS_EXIT_CODE)


def _checked_request(
    settings: Settings, *, subnet: str, epoch: int | None, epochs: str | None, stage: str
) -> tuple[int, int]:
    """(first, last) of a valid request, else one line and exit 2."""
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.history import HistoryError, committed_epochs, parse_epoch_range

    if (epoch is None) == (epochs is None):
        raise fail("give either --epoch N or --epochs A..B", USAGE_EXIT_CODE)
    if stage not in STAGE_NAMES:
        raise fail(
            f"--stage must be one of {', '.join(STAGE_NAMES)}, got {stage!r}", USAGE_EXIT_CODE
        )
    try:
        first, last = parse_epoch_range(epochs) if epochs is not None else (epoch, epoch)
        committed = committed_epochs(Ledger.open(settings.ledger_dir), subnet=subnet)
    except HistoryError as exc:
        raise fail(str(exc), USAGE_EXIT_CODE) from None
    assert first is not None and last is not None
    if committed == 0:
        raise fail(f"subnet {subnet!r} has no committed epoch yet", USAGE_EXIT_CODE)
    if first < 0 or last >= committed:
        raise fail(
            f"subnet {subnet!r} has no committed epoch {last if first >= 0 else first} "
            f"(epochs 0..{committed - 1})",
            USAGE_EXIT_CODE,
        )
    return first, last


def _replay_one(settings: Settings, *, subnet: str, epoch: int, stage: str) -> ReplayReport:
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.history import stored_epoch
    from taoflow.tasks.audit.replay import ReplayError, replay_epoch

    ledger = Ledger.open(settings.ledger_dir)
    stored = stored_epoch(ledger, subnet=subnet, epoch=epoch)
    try:
        with _evaluation_client(settings, needed=stage == "evaluate", stored=stored) as client:
            return replay_epoch(
                stored,
                from_stage=stage,
                client=client,
                artifacts_root=settings.artifacts_dir,
                fetch_policy=settings.fetch_policy(),
                ledger=ledger,
            )
    except ReplayError as exc:
        raise fail(str(exc), USAGE_EXIT_CODE) from None


@contextlib.contextmanager
def _evaluation_client(settings: Settings, *, needed: bool, stored: Any) -> Iterator[Any]:
    """A Dask client when the evaluation is replayed (the configured scheduler or a local
    cluster), else ``None``; a simulated epoch is refused before a cluster starts."""
    from taoflow.tasks.audit.replay import SIMULATED_URI_PREFIX, ReplayError

    simulated = any(
        (n.artifact_uri or "").startswith(SIMULATED_URI_PREFIX) for n in stored.ctx.neurons
    )
    if not needed or simulated:
        if needed:
            raise ReplayError(
                f"epoch {stored.epoch} of {stored.subnet!r} has synthetic scores (a simulated "
                "network: no artifacts to evaluate); replay it with --stage consensus"
            )
        yield None
        return
    import distributed

    from taoflow.tasks.evaluate.fanout import local_cluster_client

    if settings.dask_address:
        with distributed.Client(settings.dask_address) as client:
            yield client
    else:
        with local_cluster_client(n_workers=1, threads_per_worker=1) as client:
            yield client


def _replay_range(
    settings: Settings, *, subnet: str, first: int, last: int, stage: str, quiet: bool
) -> list[ReplayReport]:
    from taoflow.oneshot import TemporaryServerFailed, temporary_prefect_server
    from taoflow.services import reuse_running_services

    reuse = reuse_running_services(settings)
    settings = reuse.settings
    progress = Progress(
        TextColumn("replay {task.fields[subnet]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )
    with temporary_prefect_server(settings) as prefect:
        from taoflow.flows.replay import on_progress
        from taoflow.flows.replay import replay as replay_flow

        try:
            if prefect is not None:
                prefect.wait_ready()
        except TemporaryServerFailed as exc:
            raise fail(str(exc)) from None
        with progress:
            bar = progress.add_task("replay", total=last - first + 1, subnet=subnet, last="")

            def advance(report: ReplayReport, done: int, total: int) -> None:
                text = "identical" if report.identical else f"differs at {report.first_difference}"
                progress.update(bar, completed=done, last=f"epoch {report.epoch}: {text}")

            with on_progress(advance):
                return replay_flow(
                    subnet=subnet,
                    first=first,
                    last=last,
                    home=str(settings.home),
                    dask_address=settings.dask_address,
                    stage=stage,
                )


def _json(reports: list[ReplayReport], *, subnet: str, stage: str, single: bool) -> dict[str, Any]:
    if single:
        return reports[0].to_dict()
    return {
        "subnet": subnet,
        "from_stage": stage,
        "first": reports[0].epoch,
        "last": reports[-1].epoch,
        "identical": all(r.identical for r in reports),
        "epochs_identical": sum(r.identical for r in reports),
        "reports": [r.to_dict() for r in reports],
    }


def _short(value: object) -> str:
    if value is None:
        return "—"
    text = repr(value) if isinstance(value, float) else str(value)
    return text if len(text) <= VALUE_CHARS_SHOWN else f"{text[: VALUE_CHARS_SHOWN - 1]}…"


def _print_report(report: ReplayReport) -> None:
    where = f"epoch {report.epoch} of {report.subnet}"
    if report.identical:
        console.print(
            f"{escape(where)}: [green]identical[/] (replayed {', '.join(report.stages)}; "
            f"{escape(report.tolerance)})",
            soft_wrap=True,
        )
        table = Table(header_style="bold cyan")
        for column in ("table", "stored sha256", "replayed sha256", ""):
            table.add_column(column)
        for h in report.hashes:
            replayed = h.replayed_sha256[:HASH_CHARS_SHOWN] if h.replayed_sha256 else "input"
            mark = "=" if h.identical else ("" if h.replayed_sha256 is None else "≠")
            table.add_row(h.name, h.stored_sha256[:HASH_CHARS_SHOWN], replayed, mark)
        console.print(table)
        return
    console.print(
        f"{escape(where)}: [red]differs at {report.first_difference}[/] "
        f"({report.differences_total} difference(s); {escape(report.tolerance)})",
        soft_wrap=True,
    )
    table = Table(header_style="bold cyan")
    for column in ("stage", "record", "column", "validator", "uid", "stored", "replayed", "delta"):
        table.add_column(column, justify="right" if column in ("validator", "uid") else "left")
    for d in report.differences:
        table.add_row(
            d.stage,
            d.record,
            d.column,
            _short(d.validator),
            _short(d.uid),
            escape(_short(d.stored)),
            escape(_short(d.replayed)),
            _short(d.delta),
        )
    console.print(table)
    if report.differences_total > len(report.differences):
        console.print(f"… {report.differences_total - len(report.differences)} more not shown")
