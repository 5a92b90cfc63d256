"""A what-if report in MLflow and Prefect: comparison plots, the delta table, a markdown summary.

``log_whatif_run`` logs one MLflow run in the subnet's experiment (``subnet-<name>``, the epoch
runs' experiment) named ``whatif · epochs A..B · <overrides>``: params = the overrides (raw chain
units) and the range; metrics = the totals in rao and τ, mean incentive Gini and validator-trust
spread both ways; artifacts = ``plots/emission_by_hotkey.png`` (baseline vs what-if emission of
the hotkeys with the largest deltas), ``plots/gini_by_epoch.png`` (incentive Gini per epoch both
ways) and the delta table as ``whatif_deltas.csv`` and ``whatif_deltas.parquet``; tags
``taoflow.kind = whatif``, ``taoflow.subnet``, ``taoflow.whatif.range``. Given a copier
comparison (``tasks.audit.copier.CopierComparison``) the run also carries the metrics
``copier/ratio_stored`` and ``copier/ratio_whatif`` and the markdown its line.

Invariants: plots are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot,
no display), like ``tasks.track_plots``; nothing here reads or writes the ledger; the run carries
no ``taoflow.epoch``/``taoflow.run_key`` tag, so it is never taken for an epoch's run. At most
``PLOT_HOTKEYS_MAX`` hotkeys are drawn and ``MARKDOWN_ROWS_MAX`` rows are written to markdown.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from taoflow.ledger.payouts import tao_text
from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.tasks.audit.copier import CopierComparison
from taoflow.tasks.audit.whatif import WhatIfReport, delta_table
from taoflow.tasks.track_plots import _new_figure, _save

PLOT_HOTKEYS_MAX: Final = 24
MARKDOWN_ROWS_MAX: Final = 20
KIND_TAG: Final = "taoflow.kind"
KIND: Final = "whatif"
HOTKEY_CHARS_SHOWN: Final = 10


def run_name(report: WhatIfReport) -> str:
    """``whatif · epochs A..B · kappa_u16=39321,yuma3=true``."""
    return f"whatif · epochs {report.first}..{report.last} · {report.overrides.label()}"


def emission_png(report: WhatIfReport, path: Path) -> Path:
    """Baseline vs what-if emission (τ) of the hotkeys with the largest deltas."""
    rows = report.hotkeys[:PLOT_HOTKEYS_MAX]
    figure = _new_figure((9.6, 4.8))
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    width = 0.4
    axes.bar(
        [p - width / 2 for p in positions],
        [h.baseline_rao / RAO_PER_TAO for h in rows],
        width,
        label="stored (baseline)",
    )
    axes.bar(
        [p + width / 2 for p in positions],
        [h.whatif_rao / RAO_PER_TAO for h in rows],
        width,
        label="what-if",
    )
    axes.set_xticks(positions, [f"{h.uid}" for h in rows], fontsize=7)
    axes.set_xlabel(f"uid (the {len(rows)} largest |Δ| hotkeys)")
    axes.set_ylabel("emission over the range (τ)")
    axes.set_title(f"{report.subnet}: {run_name(report)}", fontsize=9)
    axes.legend()
    return _save(figure, path)


def gini_png(report: WhatIfReport, path: Path) -> Path:
    """Incentive Gini per epoch, stored vs what-if."""
    figure = _new_figure()
    axes = figure.add_subplot()
    epochs = [e.epoch for e in report.epochs]
    axes.plot(epochs, [e.baseline_gini for e in report.epochs], label="stored (baseline)")
    axes.plot(epochs, [e.whatif_gini for e in report.epochs], label="what-if", linestyle="--")
    axes.set_xlabel("epoch")
    axes.set_ylabel("Gini of miners' incentive")
    axes.set_title(f"{report.subnet}: incentive inequality", fontsize=9)
    axes.legend()
    return _save(figure, path)


def write_artifacts(report: WhatIfReport, directory: Path) -> list[Path]:
    """The run's files in ``directory``: two PNGs, the delta table as CSV and Parquet."""
    table = delta_table(report)
    csv_path, parquet_path = directory / "whatif_deltas.csv", directory / "whatif_deltas.parquet"
    pa_csv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    return [
        emission_png(report, directory / "plots" / "emission_by_hotkey.png"),
        gini_png(report, directory / "plots" / "gini_by_epoch.png"),
        csv_path,
        parquet_path,
    ]


def metrics_of(report: WhatIfReport) -> dict[str, float]:
    summary = report.summary()
    metrics = {
        name: float(summary[name])
        for name in (
            "baseline_gini_mean",
            "whatif_gini_mean",
            "baseline_vt_spread_mean",
            "whatif_vt_spread_mean",
            "duckdb_epochs",
        )
    }
    for name in ("baseline_rao", "whatif_rao", "baseline_owner_rao", "whatif_owner_rao"):
        metrics[name] = float(summary[name])
        metrics[name.replace("_rao", "_tao")] = summary[name] / RAO_PER_TAO
    metrics["conserved"] = float(report.conserved)
    return metrics


def log_whatif_run(
    report: WhatIfReport,
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    copier: CopierComparison | None = None,
) -> str:
    """Log the report as one MLflow run in the subnet's experiment; its run id."""
    from taoflow.tasks.track import create_subnet_run

    client, run_id = create_subnet_run(
        tracking_uri=tracking_uri,
        artifacts_dir=artifacts_dir,
        subnet=report.subnet,
        run_name=run_name(report),
        tags={KIND_TAG: KIND, "taoflow.whatif.range": f"{report.first}..{report.last}"},
    )
    params = {"first_epoch": report.first, "last_epoch": report.last, "engine": report.engine}
    params.update(report.overrides.as_params())
    for key, value in params.items():
        client.log_param(run_id, key, str(value).lower() if isinstance(value, bool) else value)
    metrics = metrics_of(report) | ({} if copier is None else copier.metrics())
    for key, number in metrics.items():
        client.log_metric(run_id, key, number)
    with tempfile.TemporaryDirectory(prefix="taoflow-whatif-") as scratch:
        for path in write_artifacts(report, Path(scratch)):
            folder = path.parent.relative_to(scratch).as_posix()
            client.log_artifact(run_id, str(path), artifact_path=None if folder == "." else folder)
    client.set_terminated(run_id)
    return run_id


def markdown(report: WhatIfReport, *, copier: CopierComparison | None = None) -> str:
    """The report as markdown (Prefect artifact): summary lines and the largest deltas."""
    s = report.summary()
    conserved = (
        "conserved to the rao" if report.conserved else "NOT equal (see the owner/unissued rows)"
    )
    lines = [
        f"# {report.subnet} · {run_name(report)}",
        "",
        f"- total emission: stored {tao_text(s['baseline_rao'])} τ, what-if "
        f"{tao_text(s['whatif_rao'])} τ — {conserved}",
        f"- owner: stored {tao_text(s['baseline_owner_rao'])} τ, what-if "
        f"{tao_text(s['whatif_owner_rao'])} τ",
        f"- incentive Gini (mean over epochs): {s['baseline_gini_mean']:.4f} → "
        f"{s['whatif_gini_mean']:.4f}",
        f"- validator-trust spread (mean max − min): {s['baseline_vt_spread_mean']:.4f} → "
        f"{s['whatif_vt_spread_mean']:.4f}",
        f"- recorded parameters reproduce the ledger: {'yes' if s['reproduces_ledger'] else 'no'}"
        if report.overrides.is_empty
        else f"- epochs: {s['epochs']}",
        *([] if copier is None else [f"- {copier.line()} {copier.detail()}"]),
        "",
        "| uid | hotkey | role | stored τ | what-if τ | Δ τ | Δ % |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for h in report.hotkeys[:MARKDOWN_ROWS_MAX]:
        pct = "—" if h.delta_pct is None else f"{h.delta_pct:+.2f}"
        lines.append(
            f"| {h.uid} | `{h.hotkey[:HOTKEY_CHARS_SHOWN]}…` | {h.role} | "
            f"{tao_text(h.baseline_rao)} | {tao_text(h.whatif_rao)} | "
            f"{tao_text(h.delta_rao)} | {pct} |"
        )
    return "\n".join(lines)
