"""The ``audit`` flow: validators of a range of committed epochs, audited (read-only).

Computes ``tasks.audit.validators.audit_validators`` on the network the serving process is bound
to (``TAOFLOW_HOME``, the default home when unset; never a run parameter), publishes a markdown
artifact ``audit-<subnet>`` and a table artifact of the per-validator rows, and logs one MLflow
run in the subnet's experiment (``subnet-<name>``) named ``audit · epochs A..B``: params = the
range and thresholds; metrics = per validator ``validator/<uid>/rank_corr``, ``copy_score``,
``copy_p_value``, ``lag_blocks``, ``paid_tao`` and the flag counts; artifacts = the per-validator
table as ``audit_validators.csv`` and ``audit.md``; tags ``taoflow.kind = audit``,
``taoflow.subnet``, ``taoflow.audit.range``.

Invariants: the flow only orders steps and never writes to the ledger; the MLflow run carries no
``taoflow.epoch``/``taoflow.run_key`` tag, so it is never taken for an epoch's run. A bad subnet
or range fails the run with one line before anything is logged.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pyarrow.csv as pa_csv
from prefect import flow

from taoflow.flows.parameters import EpochNumber, SubnetName
from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.ledger.store import Ledger
from taoflow.settings import HOME_ENV, Settings, require_network
from taoflow.tasks.audit.validators import (
    COPY_P_VALUE_MAX,
    COPY_SCORE_MIN,
    FLAGS,
    STALE_EPOCHS_MIN,
    AuditReport,
    audit_markdown,
    audit_table,
    audit_validators,
)
from taoflow.tasks.summary import artifact_key

KIND_TAG: Final = "taoflow.kind"
KIND: Final = "audit"
Publish = Callable[..., Any]


def run_name(report: AuditReport) -> str:
    return f"audit · epochs {report.first}..{report.last}"


def metrics_of(report: AuditReport) -> dict[str, float]:
    """Per-validator metrics (``validator/<uid>/…``) and the count of each flag."""
    metrics: dict[str, float] = {}
    for v in report.validators:
        prefix = f"validator/{v.uid}"
        values = {
            "rank_corr": v.mean_rank_corr,
            "copy_score": v.copy_score,
            "copy_p_value": v.copy_p_value,
            "lag_blocks": v.max_lag_blocks,
            "paid_tao": v.dividends_rao / RAO_PER_TAO,
        }
        for name, value in values.items():
            if value is not None:
                metrics[f"{prefix}/{name}"] = float(value)
    for flag in FLAGS:
        metrics[f"flagged/{flag}"] = float(len(report.flagged(flag)))
    return metrics


def log_audit_run(report: AuditReport, *, tracking_uri: str, artifacts_dir: Path) -> str:
    """Log the report as one MLflow run in the subnet's experiment; its run id."""
    from taoflow.tasks.track import create_subnet_run

    client, run_id = create_subnet_run(
        tracking_uri=tracking_uri,
        artifacts_dir=artifacts_dir,
        subnet=report.subnet,
        run_name=run_name(report),
        tags={KIND_TAG: KIND, "taoflow.audit.range": f"{report.first}..{report.last}"},
    )
    params: dict[str, Any] = {
        "first_epoch": report.first,
        "last_epoch": report.last,
        "include_hosted": str(report.include_hosted).lower(),
        "copy_score_min": COPY_SCORE_MIN,
        "copy_p_value_max": COPY_P_VALUE_MAX,
        "max_lag_blocks": report.max_lag_blocks,
        "stale_epochs_min": STALE_EPOCHS_MIN,
    }
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, number in metrics_of(report).items():
        client.log_metric(run_id, key, number)
    with tempfile.TemporaryDirectory(prefix="taoflow-audit-") as scratch:
        csv_path, md_path = Path(scratch) / "audit_validators.csv", Path(scratch) / "audit.md"
        pa_csv.write_csv(audit_table(report), csv_path)
        md_path.write_text(audit_markdown(report), encoding="utf-8")
        for path in (csv_path, md_path):
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


def publish(report: AuditReport, *, create_markdown: Publish, create_table: Publish) -> None:
    """The report as Prefect artifacts: the markdown summary and the per-validator table."""
    key = f"audit-{artifact_key(report.subnet, 'summary')}"
    create_markdown(markdown=audit_markdown(report), key=key, description=run_name(report))
    rows = audit_table(report).to_pylist()
    create_table(
        table=rows,
        key=f"audit-{artifact_key(report.subnet, 'validators')}",
        description=run_name(report),
    )


@flow(name="audit", flow_run_name="audit · {subnet} · epochs {first}..{last}")
def audit_flow(
    subnet: SubnetName, first: EpochNumber, last: EpochNumber, include_hosted: bool = False
) -> dict[str, Any]:
    """Audit a subnet's validators over committed epochs: rank correlation with the reference
    scores, weight copiers and laggards.

    Args:
        subnet: The subnet whose committed epochs are audited.
        first: First epoch of the range.
        last: Last epoch of the range (inclusive).
        include_hosted: Also audit the hosted validators (they run the reference code).
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    settings = Settings.load(os.environ.get(HOME_ENV))
    require_network(settings)
    report = audit_validators(
        Ledger.open(settings.ledger_dir),
        subnet=subnet,
        first=first,
        last=last,
        include_hosted=include_hosted,
    )
    run_id = log_audit_run(
        report,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=settings.mlflow_artifacts_dir,
    )
    publish(report, create_markdown=create_markdown_artifact, create_table=create_table_artifact)
    return {**report.to_dict(), "mlflow_run_id": run_id, "run_name": run_name(report)}
