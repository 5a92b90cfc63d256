"""The replay flow: re-run a range of committed epochs and compare them with the ledger.

``replay`` walks the stored epochs ``first..last`` of a subnet (``tasks.audit.history``) and
replays each one (``tasks.audit.replay.replay_epoch``):

- from ``evaluate``: one epoch after the other in this process, each epoch's evaluation fanned
  out over the Dask cluster (as an epoch's own evaluation is), so two epochs never compete for
  the workers;
- from ``consensus`` or ``emit``: each epoch is one Dask task (``replay_stored``) that opens the
  ledger and rebuilds its epoch itself, so only names and numbers travel to the workers; at most
  ``REPLAYS_IN_FLIGHT_MAX`` are in flight.

Progress is a Prefect progress artifact updated per finished epoch (and, in-process, the
callback installed with :func:`on_progress`, which the CLI's progress bar uses); the summary is
a markdown artifact ``replay-<subnet>``. The flow only orders work: it writes nothing to the
ledger. Reports come back in epoch order.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from prefect import flow

from taoflow.tasks.audit.replay import ReplayReport, replay_epoch, replay_stages
from taoflow.tasks.run_logs import quiet_dask, route_run_logs, run_logger

REPLAYS_IN_FLIGHT_MAX: Final = 64
"""Per-epoch Dask tasks submitted ahead of the finished ones."""
SUMMARY_ROWS_MAX: Final = 200
"""Epochs listed one by one in the markdown summary (the counts cover all)."""
DIFFERENCES_LISTED_MAX: Final = 20
"""Differences the markdown summary lists for the first epoch that differs."""

Progress = Callable[[ReplayReport, int, int], None]
"""Called with each finished report, the count done and the total."""
_progress_hooks: list[Progress] = []


@contextlib.contextmanager
def on_progress(callback: Progress) -> Iterator[None]:
    """Call ``callback`` for each epoch a replay flow run in this process finishes."""
    _progress_hooks.append(callback)
    try:
        yield
    finally:
        _progress_hooks.remove(callback)


def replay_stored(ledger_dir: str, subnet: str, epoch: int, from_stage: str) -> ReplayReport:
    """Replay one epoch from ``consensus`` or ``emit`` (a pure function of the ledger)."""
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.history import stored_epoch

    ledger = Ledger.open(Path(ledger_dir))
    stored = stored_epoch(ledger, subnet=subnet, epoch=epoch)
    return replay_epoch(stored, from_stage=from_stage, ledger=ledger)


def replay_run_name() -> str:
    """``<subnet> · replay A..B`` for the run starting now."""
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"{p.get('subnet', '?')} · replay {p.get('first', '?')}..{p.get('last', '?')}"


@flow(name="replay", flow_run_name=replay_run_name, log_prints=False, persist_result=False)
def replay(
    subnet: str,
    first: int,
    last: int,
    home: str = ".taoflow",
    dask_address: str | None = None,
    stage: str = "evaluate",
) -> list[ReplayReport]:
    """Replay epochs ``first..last`` of ``subnet`` in ``home`` from ``stage``; the reports."""
    from taoflow.ledger.store import Ledger
    from taoflow.settings import Settings
    from taoflow.tasks.audit.history import committed_epochs, stored_epoch

    quiet_dask()
    route_run_logs()
    replay_stages(stage)  # an unknown stage fails before any work
    settings = Settings.load(home, dask_address)
    ledger = Ledger.open(settings.ledger_dir)
    committed_epochs(ledger, subnet=subnet)
    stored_epoch(ledger, subnet=subnet, epoch=last)  # a range beyond the ledger fails now
    tracker = _Tracker(subnet=subnet, total=last - first + 1)
    with _client(settings.dask_address) as client:
        if stage == "evaluate":
            _replay_in_order(ledger, subnet, first, last, client, settings, tracker)
        else:
            _replay_fanned_out(
                str(settings.ledger_dir), subnet, first, last, stage, client, tracker
            )
    reports = sorted(tracker.reports, key=lambda r: r.epoch)
    _publish_summary(subnet, stage, reports)
    same = sum(r.identical for r in reports)
    run_logger().info(f"replay {subnet} {first}..{last}: {same} of {len(reports)} identical")
    return reports


@contextlib.contextmanager
def _client(dask_address: str | None) -> Iterator[Any]:
    import distributed

    from taoflow.tasks.evaluate.fanout import local_cluster_client

    if dask_address:
        with distributed.Client(dask_address) as client:
            yield client
    else:
        with local_cluster_client(n_workers=1, threads_per_worker=1) as client:
            yield client


def _replay_in_order(
    ledger: Any, subnet: str, first: int, last: int, client: Any, settings: Any, tracker: _Tracker
) -> None:
    from taoflow.tasks.audit.history import stored_epochs

    for stored in stored_epochs(ledger, subnet=subnet, first=first, last=last):
        tracker.done(
            replay_epoch(
                stored,
                client=client,
                artifacts_root=settings.artifacts_dir,
                fetch_policy=settings.fetch_policy(),
                ledger=ledger,
            )
        )


def _replay_fanned_out(
    ledger_dir: str,
    subnet: str,
    first: int,
    last: int,
    stage: str,
    client: Any,
    tracker: _Tracker,
) -> None:
    import distributed

    epochs = iter(range(first, last + 1))
    running = distributed.as_completed()
    for epoch in epochs:
        running.add(client.submit(replay_stored, ledger_dir, subnet, epoch, stage, pure=False))
        if running.count() >= REPLAYS_IN_FLIGHT_MAX:
            break
    for future in running:  # bounded: one submission per finished future, range(first, last+1)
        tracker.done(future.result())
        nxt = next(epochs, None)
        if nxt is not None:
            running.add(client.submit(replay_stored, ledger_dir, subnet, nxt, stage, pure=False))


class _Tracker:
    """Finished reports, the Prefect progress artifact and the in-process callbacks."""

    def __init__(self, *, subnet: str, total: int) -> None:
        from prefect.artifacts import create_progress_artifact

        self.total = total
        self.reports: list[ReplayReport] = []
        created = create_progress_artifact(
            progress=0.0, key=_key(f"replay-progress-{subnet}"), description="epochs replayed"
        )
        self.artifact_id = created if isinstance(created, UUID) else None

    def done(self, report: ReplayReport) -> None:
        from prefect.artifacts import update_progress_artifact

        self.reports.append(report)
        if self.artifact_id is not None:
            update_progress_artifact(self.artifact_id, 100.0 * len(self.reports) / self.total)
        for hook in list(_progress_hooks):
            hook(report, len(self.reports), self.total)


def _key(text: str) -> str:
    """A Prefect artifact key: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def summary_markdown(subnet: str, stage: str, reports: list[ReplayReport]) -> str:
    """The markdown summary of a replay range: counts, one row per epoch, the first diff."""
    same = sum(r.identical for r in reports)
    lines = [
        f"# Replay of {subnet}, epochs {reports[0].epoch}..{reports[-1].epoch} from {stage}"
        if reports
        else f"# Replay of {subnet}: no epochs",
        "",
        f"**{same} of {len(reports)} epochs identical.**",
        "",
        "| epoch | batch | result | differences |",
        "|---:|---:|---|---:|",
    ]
    for r in reports[:SUMMARY_ROWS_MAX]:
        result = "identical" if r.identical else f"differs at {r.first_difference}"
        lines.append(f"| {r.epoch} | {r.batch_no} | {result} | {r.differences_total} |")
    differing = next((r for r in reports if not r.identical), None)
    if differing is not None:
        lines += ["", f"## Epoch {differing.epoch}: first differences", ""]
        lines += ["| stage | record | column | validator | uid | stored | replayed |"]
        lines += ["|---|---|---|---:|---:|---|---|"]
        for d in differing.differences[:DIFFERENCES_LISTED_MAX]:
            cells = (d.stage, d.record, d.column, d.validator, d.uid, d.stored, d.replayed)
            lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def _publish_summary(subnet: str, stage: str, reports: list[ReplayReport]) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=_key(f"replay-{subnet}"),
        markdown=summary_markdown(subnet, stage, reports),
        description=f"replay of {subnet}",
    )
