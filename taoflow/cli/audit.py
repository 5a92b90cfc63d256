"""``taoflow audit``: per-validator audit of a range of committed epochs.

Runs ``tasks.audit.validators.audit_validators`` in this process (read-only; no Prefect needed)
and prints one row per validator: uid, hotkey (a wallet name where a local wallet holds it),
stake τ, mean rank correlation with the reference scores, copy score and its sign-test p-value,
largest weight lag in blocks, flags and the τ it was paid over the range. External validators
only unless ``--all``. ``--verify-reference`` replays the evaluation of a seeded sample of the
epochs (``tasks.audit.replay``, a Dask cluster as ``taoflow replay`` uses) and reports whether
the stored reference scores reproduce; a simulated network (synthetic scores) refuses it.
Bad input (an unknown subnet, a malformed or uncommitted range, a negative lag) is one line on
stderr and exit 2; the ledger is only read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.markup import escape
from rich.table import Table

from taoflow.cli.common import HomeOption, JsonOption, SubnetOption, console, fail, print_json
from taoflow.cli.common import tao_text as _tao
from taoflow.settings import Settings, require_network

if TYPE_CHECKING:
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.validators import AuditReport

USAGE_EXIT_CODE: Final = 2


def audit(
    subnet: SubnetOption,
    epochs: Annotated[str, typer.Option("--epochs", help="A committed range A..B (or N)")],
    include_hosted: Annotated[
        bool, typer.Option("--all", help="Also audit hosted validators")
    ] = False,
    max_lag_blocks: Annotated[
        int | None,
        typer.Option("--max-lag-blocks", help="Laggard bound [default: 2 tempos]"),
    ] = None,
    verify_reference: Annotated[
        bool,
        typer.Option(
            "--verify-reference",
            help="Re-run the reference evaluation of a seeded sample of epochs (Dask)",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Audit validators: rank correlation with the reference, weight copiers, laggards."""
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.history import HistoryError, parse_epoch_range
    from taoflow.tasks.audit.replay import ReplayError

    if max_lag_blocks is not None and max_lag_blocks < 0:
        raise fail(f"--max-lag-blocks must be >= 0, got {max_lag_blocks}", USAGE_EXIT_CODE)
    settings = Settings.load(home)
    require_network(settings)
    try:
        first, last = parse_epoch_range(epochs)
        report = _audit(
            settings,
            Ledger.open(settings.ledger_dir),
            subnet=subnet,
            epochs=(first, last),
            include_hosted=include_hosted,
            max_lag_blocks=max_lag_blocks,
            verify_reference=verify_reference,
        )
    except (HistoryError, ReplayError) as exc:
        raise fail(str(exc), USAGE_EXIT_CODE) from None
    if as_json:
        print_json(report.to_dict())
        return
    print_report(settings, report)


def _audit(
    settings: Settings,
    ledger: Ledger,
    *,
    subnet: str,
    epochs: tuple[int, int],
    include_hosted: bool,
    max_lag_blocks: int | None,
    verify_reference: bool,
) -> AuditReport:
    """The audit; with ``verify_reference`` the sampled epochs' evaluation is replayed first
    (the first sampled epoch decides whether a cluster is needed: simulated ones refuse)."""
    from taoflow.cli.replay import _evaluation_client
    from taoflow.tasks.audit.history import stored_epoch
    from taoflow.tasks.audit.validators import (
        audit_validators,
        reference_sample,
        replay_reference_check,
    )

    first, last = epochs
    if not verify_reference:
        return audit_validators(
            ledger,
            subnet=subnet,
            first=first,
            last=last,
            include_hosted=include_hosted,
            max_lag_blocks=max_lag_blocks,
        )
    probe = stored_epoch(ledger, subnet=subnet, epoch=reference_sample(first, last)[0])
    with _evaluation_client(settings, needed=True, stored=probe) as client:
        check = replay_reference_check(
            client=client,
            artifacts_root=settings.artifacts_dir,
            fetch_policy=settings.fetch_policy(),
            ledger=ledger,
        )
        return audit_validators(
            ledger,
            subnet=subnet,
            first=first,
            last=last,
            include_hosted=include_hosted,
            max_lag_blocks=max_lag_blocks,
            reference_check=check,
        )


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_report(settings: Settings, report: AuditReport) -> None:
    """The rich table and the lines under it."""
    from taoflow.names import account_labels, label

    labels = account_labels(settings.wallets_dir)
    who = "all validators" if report.include_hosted else "external validators"
    table = Table(title=f"{report.subnet} epochs {report.first}..{report.last}: {who}")
    columns = ("uid", "hotkey", "stake τ", "rank corr", "copy score", "copy p", "lag blocks")
    for column in (*columns, "flags", "paid τ"):
        table.add_column(column, justify="left" if column in ("hotkey", "flags") else "right")
    for v in report.validators:
        table.add_row(
            str(v.uid),
            escape(label(v.hotkey, labels)) + (" (hosted)" if v.hosted else ""),
            _tao(v.stake_rao),
            _number(v.mean_rank_corr),
            _number(v.copy_score, 4),
            _number(v.copy_p_value, 4),
            "—" if v.max_lag_blocks is None else str(v.max_lag_blocks),
            ", ".join(v.flags) or "ok",
            _tao(v.dividends_rao),
        )
    console.print(table)
    for line in summary_lines(report):
        console.print(escape(line), soft_wrap=True)


def summary_lines(report: AuditReport) -> list[str]:
    """Plain lines under the table: thresholds, reference and what was flagged."""
    from taoflow.tasks.audit.validators import (
        COPY_P_VALUE_MAX,
        COPY_SCORE_MIN,
        STALE_EPOCHS_MIN,
    )

    lines = [
        f"reference: {report.reference}",
        f"copier: copy score >= {COPY_SCORE_MIN} and sign-test p <= {COPY_P_VALUE_MAX}; "
        f"laggard: weights older than {report.max_lag_blocks} blocks or one commit for "
        f">= {STALE_EPOCHS_MIN} epochs",
    ]
    if not report.validators:
        lines.append("no validator to audit in this range (--all includes hosted ones)")
    for flag in ("copier", "laggard", "no-weights"):
        uids = [str(v.uid) for v in report.flagged(flag)]
        if uids:
            lines.append(f"{flag}: uid {', '.join(uids)}")
    return lines
