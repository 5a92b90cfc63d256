"""The ``whatif`` flow: a range of stored epochs recomputed under other parameters.

Every parameter is a plain typed value, editable in the Prefect UI: the subnet, the range, and
each override as its own optional field (``kappa`` and ``bonds_moving_average`` as fractions,
``yuma3`` and ``liquid_alpha`` as switches, ``split`` as ``owner/miners/validators`` percent or
ppm); an empty field keeps the subnet's recorded value. The flow computes the report
(``tasks.audit.whatif.whatif``), logs one MLflow run with the comparison plots and the delta
table (``tasks.audit.whatif_track``) and publishes a markdown artifact ``whatif-<subnet>`` and a
table artifact of the largest deltas. With ``copier`` (the default) it also reruns the range with
a hypothetical validator copying last epoch's consensus (``tasks.audit.copier``) and logs its
dividends ratio (``copier/ratio_stored``, ``copier/ratio_whatif``) and line.

Invariants: the flow only orders steps and never writes to the ledger. The home is the one the
serving process is bound to (``TAOFLOW_HOME``, as for the deployed epoch flow; the default home
when unset), never a run parameter. A bad override, subnet or range fails the run with one line
before anything is logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, Final

from prefect import flow
from pydantic import Field

from taoflow.flows.parameters import EpochNumber, SubnetName
from taoflow.ledger.store import Ledger
from taoflow.settings import HOME_ENV, Settings, require_network
from taoflow.tasks.audit.copier import CopierComparison, copier_comparison
from taoflow.tasks.audit.whatif import WhatIfParams, WhatIfReport, overrides_from, whatif
from taoflow.tasks.audit.whatif_track import log_whatif_run, markdown, run_name
from taoflow.tasks.summary import artifact_key

TABLE_ROWS_MAX: Final = 50
"""Rows of the table artifact (the largest deltas)."""
Publish = Callable[..., Any]

Fraction = Annotated[float | None, Field(ge=0.0, le=1.0)]


def compute(
    settings: Settings, *, subnet: str, first: int, last: int, overrides: WhatIfParams
) -> WhatIfReport:
    """The what-if on the network at ``settings`` (read-only)."""
    require_network(settings)
    ledger = Ledger.open(settings.ledger_dir)
    return whatif(ledger, subnet=subnet, first=first, last=last, overrides=overrides)


def compute_copier(
    settings: Settings, *, subnet: str, first: int, last: int, overrides: WhatIfParams
) -> CopierComparison:
    """What copying last epoch's consensus earns over the range (read-only)."""
    ledger = Ledger.open(settings.ledger_dir)
    return copier_comparison(ledger, subnet=subnet, first=first, last=last, overrides=overrides)


def publish(
    report: WhatIfReport,
    *,
    create_markdown: Publish,
    create_table: Publish,
    copier: CopierComparison | None = None,
) -> None:
    """The report as Prefect artifacts: markdown summary and a table of the largest deltas."""
    key = f"whatif-{artifact_key(report.subnet, 'summary')}"
    text = markdown(report, copier=copier)
    create_markdown(markdown=text, key=key, description=run_name(report))
    rows = [
        {
            "uid": h.uid,
            "hotkey": h.hotkey,
            "role": h.role,
            "baseline_rao": h.baseline_rao,
            "whatif_rao": h.whatif_rao,
            "delta_rao": h.delta_rao,
            "delta_pct": None if h.delta_pct is None else round(h.delta_pct, 4),
        }
        for h in report.hotkeys[:TABLE_ROWS_MAX]
    ]
    create_table(
        table=rows,
        key=f"whatif-{artifact_key(report.subnet, 'deltas')}",
        description=run_name(report),
    )


@flow(name="whatif", flow_run_name="whatif · {subnet} · epochs {first}..{last}")
def whatif_flow(
    subnet: SubnetName,
    first: EpochNumber,
    last: EpochNumber,
    kappa: Fraction = None,
    bonds_moving_average: Fraction = None,
    yuma3: bool | None = None,
    liquid_alpha: bool | None = None,
    split: str | None = None,
    copier: bool = True,
) -> dict[str, Any]:
    """Recompute consensus and payouts of stored epochs under other parameters.

    Args:
        subnet: The subnet whose committed epochs are recomputed.
        first: First epoch of the range.
        last: Last epoch of the range (inclusive).
        kappa: Consensus majority κ as a fraction (empty: the subnet's).
        bonds_moving_average: Bonds moving average as a fraction, at most 0.975 (empty: the
            subnet's).
        yuma3: Use the Yuma3 bond path (empty: the subnet's).
        liquid_alpha: Use liquid alpha (Yuma3 only; empty: the subnet's).
        split: Emission split owner/miners/validators in percent (18/41/41) or ppm (empty: the
            subnet's).
        copier: Also show what a validator copying last epoch's consensus would have earned.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    overrides = overrides_from(
        kappa=kappa,
        bonds_moving_average=bonds_moving_average,
        yuma3=yuma3,
        liquid_alpha=liquid_alpha,
        split=split,
    )
    settings = Settings.load(os.environ.get(HOME_ENV))
    report = compute(settings, subnet=subnet, first=first, last=last, overrides=overrides)
    copying = (
        compute_copier(settings, subnet=subnet, first=first, last=last, overrides=overrides)
        if copier
        else None
    )
    run_id = log_whatif_run(
        report,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=settings.mlflow_artifacts_dir,
        copier=copying,
    )
    publish(
        report,
        create_markdown=create_markdown_artifact,
        create_table=create_table_artifact,
        copier=copying,
    )
    result = {**report.summary(), "mlflow_run_id": run_id, "run_name": run_name(report)}
    return result | ({} if copying is None else {"copier": copying.line()})
