"""``taoflow whatif``: stored epochs recomputed under other consensus parameters or split.

Runs ``tasks.audit.whatif.whatif`` in this process (no Prefect needed) and prints the hotkeys
with the largest emission deltas (names where a local wallet holds them) and summary lines:
total emission both ways ("conserved to the rao" when equal), the owner's cut, mean incentive
Gini and validator-trust spread. ``--copier`` adds what a validator copying last epoch's
consensus would have earned over the same epochs (``tasks.audit.copier.copier_comparison``:
with the stored parameters, and with the overrides when given). ``--track`` also logs the MLflow
run (plots and delta table) that the Prefect ``whatif`` flow logs. Bad input (an unknown subnet,
a malformed range or ``--set``) is one line on stderr and exit 2, before anything runs; the
ledger is only read.
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
    from taoflow.tasks.audit.copier import CopierComparison
    from taoflow.tasks.audit.whatif import WhatIfReport

USAGE_EXIT_CODE: Final = 2
TOP_DEFAULT: Final = 15
TOP_MAX: Final = 10_000


def whatif(
    subnet: SubnetOption,
    epochs: Annotated[str, typer.Option("--epochs", help="A committed range A..B (or N)")],
    set_: Annotated[
        str,
        typer.Option(
            "--set",
            help="Overrides: kappa=0.6,bonds_moving_average=0.8,yuma3=true,liquid_alpha=true,"
            "split=18/41/41 (empty: the recorded parameters)",
        ),
    ] = "",
    top: Annotated[int, typer.Option("--top", help="Hotkeys listed (largest |Δ| first)")] = (
        TOP_DEFAULT
    ),
    track: Annotated[bool, typer.Option("--track", help="Also log an MLflow run")] = False,
    copier: Annotated[
        bool,
        typer.Option("--copier", help="Also show what copying last epoch's consensus earns"),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute consensus and payouts of stored epochs under other parameters; compare."""
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.copier import copier_comparison
    from taoflow.tasks.audit.history import HistoryError, parse_epoch_range
    from taoflow.tasks.audit.whatif import WhatIfError, parse_overrides
    from taoflow.tasks.audit.whatif import whatif as run_whatif

    if not 1 <= top <= TOP_MAX:
        raise fail(f"--top must be between 1 and {TOP_MAX}, got {top}", USAGE_EXIT_CODE)
    settings = Settings.load(home)
    require_network(settings)
    settings.apply_environment()
    try:
        overrides = parse_overrides(set_)
        first, last = parse_epoch_range(epochs)
        ledger = Ledger.open(settings.ledger_dir)
        report = run_whatif(ledger, subnet=subnet, first=first, last=last, overrides=overrides)
        copying = (
            copier_comparison(ledger, subnet=subnet, first=first, last=last, overrides=overrides)
            if copier
            else None
        )
    except (HistoryError, WhatIfError) as exc:
        raise fail(str(exc), USAGE_EXIT_CODE) from None
    run_id = _track(settings, report, copying) if track else None
    if as_json:
        result = report.to_dict()
        result["hotkeys"] = result["hotkeys"][:top]
        result["mlflow_run_id"] = run_id
        if copying is not None:
            result["copier"] = copying.to_dict()
        print_json(result)
        return
    _print_report(settings, report, top=top)
    if copying is not None:
        console.print(escape(copying.line()), soft_wrap=True)
        console.print(escape(copying.detail()), soft_wrap=True)
    if run_id is not None:
        console.print(f"MLflow run {run_id} ({settings.mlflow_tracking_uri})")


def _track(settings: Settings, report: WhatIfReport, copying: CopierComparison | None) -> str:
    from taoflow.tasks.audit.whatif_track import log_whatif_run

    return log_whatif_run(
        report,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=settings.mlflow_artifacts_dir,
        copier=copying,
    )


def _print_report(settings: Settings, report: WhatIfReport, *, top: int) -> None:
    from taoflow.names import account_labels, label

    labels = account_labels(settings.wallets_dir)
    table = Table(
        title=f"{report.subnet} epochs {report.first}..{report.last}: "
        f"{escape(report.overrides.label())}"
    )
    for column in ("uid", "hotkey", "role", "stored τ", "what-if τ", "Δ τ", "Δ %"):
        table.add_column(column, justify="left" if column in ("hotkey", "role") else "right")
    for h in report.hotkeys[:top]:
        pct = "—" if h.delta_pct is None else f"{h.delta_pct:+.2f}"
        table.add_row(
            str(h.uid),
            escape(label(h.hotkey, labels)),
            h.role,
            _tao(h.baseline_rao),
            _tao(h.whatif_rao),
            _tao(h.delta_rao),
            pct,
        )
    console.print(table)
    for line in summary_lines(report):
        console.print(line, soft_wrap=True)


def summary_lines(report: WhatIfReport) -> list[str]:
    """The summary under the table (plain text)."""
    s = report.summary()
    if report.conserved:
        verdict = "conserved to the rao"
    else:
        verdict = f"differs by {_tao(s['whatif_rao'] - s['baseline_rao'])} τ (left unissued)"
    lines = [
        f"total emission: stored {_tao(s['baseline_rao'])} τ, what-if {_tao(s['whatif_rao'])} τ "
        f"— {verdict}",
        f"owner: stored {_tao(s['baseline_owner_rao'])} τ, what-if {_tao(s['whatif_owner_rao'])} τ",
        f"incentive Gini (mean over {s['epochs']} epochs): {s['baseline_gini_mean']:.4f} stored, "
        f"{s['whatif_gini_mean']:.4f} what-if",
        f"validator-trust spread (mean max − min): {s['baseline_vt_spread_mean']:.4f} stored, "
        f"{s['whatif_vt_spread_mean']:.4f} what-if",
    ]
    if report.overrides.is_empty:
        same = "yes, every uid to the rao" if report.reproduces_ledger else "NO"
        lines.append(f"recorded parameters reproduce the ledger: {same}")
    return lines
