"""Tracking reconciler: every committed epoch gets exactly one finished MLflow run.

The ledger is the record of what happened; MLflow is a view of it written after the commit. A
process that dies between the two (or an MLflow outage whose queued job was lost) leaves a
committed epoch without a run. ``reconcile_tracking`` repairs that:

1. flush the outbox (queued jobs carry everything: plots, weights, the champion);
2. list the committed epochs from the commit log (each record's ``epochs``), newest last;
3. for each subnet, read the epochs that already have a complete run (one paginated search);
4. backfill each remaining epoch from what the ledger holds — the ``epoch`` entry's payload
   (seed, block, schedule, sample size), its ``uids`` record (consensus outputs, permits, stake,
   emission per uid, scores, errors, digests; queried with DuckDB) and its ``weights`` record —
   through :func:`tasks.track.log_epoch`, which searches again under the tracking lock, so a
   concurrent tracker or a second reconciler never produces a second run.

Backfilled runs carry ``taoflow.backfilled = true`` and the batch hash of the batch that paid the
epoch (``taoflow.ledger_batch_hash``); they have no champion (it is not in the ledger). An epoch
committed without records is backfilled with an empty metagraph. A backfilled epoch's points in
the subnet's series run (``tasks.track_series``) are written with its run, from the same
figures a live run would have had, so the lines over epochs have no gap once reconciled.

Bounds: at most ``max_backfills`` epochs per call (default ``BACKFILLS_PER_CALL_MAX``, so the
call at the start of an epoch stays short; the rest is done by the next call), the last
``COMMITTED_EPOCHS_MAX`` committed epochs are considered, and a subnet's complete runs are read
in pages of ``RUNS_PAGE_SIZE`` up to ``RUNS_PAGES_MAX`` pages. The reconciler stops after
``CONSECUTIVE_FAILURES_MAX`` availability failures in a row (MLflow down); it never writes the
ledger. Idempotent: a second call right after the first backfills nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
from mlflow.tracking import MlflowClient

from taoflow.ledger.epoch_records import UIDS_SCHEMA
from taoflow.ledger.names import check_subnet_name
from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, table_to_txs
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.commit_log import CommitRecord
from taoflow.tasks.consensus.types import WEIGHTS_SCHEMA
from taoflow.tasks.track import (
    STATUS_COMPLETE,
    STATUS_TAG,
    experiment_name,
    log_epoch_once,
    tracking_lock,
)
from taoflow.tasks.track_outbox import AVAILABILITY_ERRORS, TrackingOutbox, flush_outbox

log = logging.getLogger("taoflow.track_reconcile")

BACKFILLS_PER_CALL_MAX: Final = 16
COMMITTED_EPOCHS_MAX: Final = 100_000
RUNS_PAGE_SIZE: Final = 1000
RUNS_PAGES_MAX: Final = 100
CONSECUTIVE_FAILURES_MAX: Final = 3
ERROR_CHARS_MAX: Final = 500
BACKFILLED_TAG: Final = "taoflow.backfilled"
BACKFILL_RECORDS: Final = ("uids", "weights")
METAGRAPH_SQL: Final = f"""
SELECT CAST(? AS BIGINT) AS epoch, uid, hotkey, stake_rao, stake_rao / {RAO_PER_TAO}.0 AS stake_tao,
       CASE WHEN isnan(score) THEN NULL ELSE score END AS score,
       permit AS validator_permit, active, stake_weight, validator_trust, consensus, incentive,
       dividends, emission_rao, emission_rao / {RAO_PER_TAO}.0 AS emission_tao,
       NULLIF(artifact_digest, '') AS artifact_digest, NULLIF(error, '') AS error
FROM uids ORDER BY uid
"""
"""The metagraph of a backfilled run: the ``uids`` record with "none" markers as NULL."""


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation did. Keys are ``<subnet>/<epoch>``."""

    committed: int
    """Committed epochs considered."""
    flushed: tuple[str, ...]
    """Run ids written from the outbox."""
    backfilled: tuple[str, ...]
    """Epochs logged from the ledger by this call (not those a concurrent tracker logged)."""
    remaining: int
    """Epochs found without a complete run that this call neither logged nor found logged."""
    errors: tuple[str, ...]

    @property
    def summary(self) -> str:
        return (
            f"{self.committed} committed epoch(s); {len(self.flushed)} flushed from the outbox, "
            f"{len(self.backfilled)} backfilled, {self.remaining} still missing"
            + (f"; {len(self.errors)} error(s): {self.errors[0]}" if self.errors else "")
        )


def committed_epochs(records: Sequence[CommitRecord]) -> list[tuple[str, int, CommitRecord]]:
    """``(subnet, epoch, record)`` for every epoch the log says was committed, in commit order."""
    found: list[tuple[str, int, CommitRecord]] = []
    for record in records:
        for key in record.epochs:
            subnet, _, epoch_text = key.rpartition("/")
            if epoch_text.isdigit() and check_subnet_name(subnet) is None:
                found.append((subnet, int(epoch_text), record))
    return found[-COMMITTED_EPOCHS_MAX:]


def tracked_epochs(client: MlflowClient, *, subnet: str) -> set[int]:
    """Epochs of ``subnet`` that have a complete run (bounded paginated search)."""
    experiment = client.get_experiment_by_name(experiment_name(subnet))
    if experiment is None:
        return set()
    done: set[int] = set()
    token: str | None = None
    for _ in range(RUNS_PAGES_MAX):
        page = client.search_runs(
            [str(experiment.experiment_id)],
            filter_string=f"tags.`{STATUS_TAG}` = '{STATUS_COMPLETE}'",
            max_results=RUNS_PAGE_SIZE,
            page_token=token,
        )
        for run in page:
            epoch_text = run.data.tags.get("taoflow.epoch", "")
            if epoch_text.isdigit():
                done.add(int(epoch_text))
        token = page.token
        if not token:
            break
    return done


def backfill_metagraph(uids: pa.Table, *, epoch: int) -> pa.Table:
    """The metagraph logged for a backfilled epoch, from its ``uids`` record (DuckDB)."""
    with duckdb.connect() as database:
        database.register("uids", uids)
        return database.sql(METAGRAPH_SQL, params=[epoch]).to_arrow_table()


def backfill_job(
    txs: Sequence[Tx],
    *,
    subnet: str,
    epoch: int,
    batch_hash: str,
    records: Mapping[str, pa.Table],
) -> dict[str, Any]:
    """``log_epoch`` arguments (all but the URIs) rebuilt from the epoch's ledger entries and
    its ``records`` (``Ledger.epoch_records``)."""
    entry = next(
        (t for t in txs if t.kind == Kind.EPOCH and t.subnet == subnet and t.epoch == epoch), None
    )
    if entry is None:
        raise ValueError(f"batch {batch_hash[:16]} holds no epoch entry for {subnet}/{epoch}")
    payload = entry.payload_dict()
    evaluation: Mapping[str, Any] = payload.get("evaluation") or {}
    metagraph = backfill_metagraph(records.get("uids", UIDS_SCHEMA.empty_table()), epoch=epoch)
    weights = records.get("weights")
    return {
        "subnet": subnet,
        "epoch": epoch,
        "params": {
            "subnet": subnet,
            "epoch": epoch,
            "block": payload.get("block", entry.block),
            "seed": payload.get("seed"),
            "emission_rao": payload.get("scheduled_rao"),
            "sample_size": evaluation.get("sample_size"),
        },
        "metagraph": metagraph,
        "emission_rao": entry.amount_rao,
        "tags": {
            "taoflow.ledger_batch_hash": batch_hash,
            "taoflow.seed": str(payload.get("seed") or ""),
            BACKFILLED_TAG: "true",
        },
        "weights": weights.cast(WEIGHTS_SCHEMA) if weights is not None else None,
    }


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS_MAX]


def _missing(
    client: MlflowClient, committed: Sequence[tuple[str, int, CommitRecord]], queued: set[Any]
) -> list[tuple[str, int, CommitRecord]]:
    done: dict[str, set[int]] = {}
    for subnet in sorted({subnet for subnet, _, _ in committed}):
        done[subnet] = tracked_epochs(client, subnet=subnet)
    return [
        (subnet, epoch, record)
        for subnet, epoch, record in committed
        if epoch not in done[subnet] and (subnet, epoch) not in queued
    ]


def reconcile_tracking(
    *,
    ledger_dir: Path,
    tracking_uri: str,
    artifacts_dir: Path,
    outbox_root: Path,
    max_backfills: int = BACKFILLS_PER_CALL_MAX,
) -> ReconcileReport:
    """Flush the outbox, then backfill committed epochs that have no complete run (bounded)."""
    flushed = flush_outbox(outbox_root, tracking_uri=tracking_uri, artifacts_dir=artifacts_dir)
    ledger = Ledger.open(ledger_dir)
    committed = committed_epochs(ledger.records())
    with tracking_lock(artifacts_dir):  # opening a new store creates (migrates) it
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        missing = _missing(client, committed, set(TrackingOutbox(outbox_root).pending()))
    backfilled: list[str] = []
    errors: list[str] = []
    failures_in_row = 0
    found_logged = 0
    for subnet, epoch, record in missing[: max(0, max_backfills)]:
        if failures_in_row >= CONSECUTIVE_FAILURES_MAX:
            break
        try:
            job = backfill_job(
                table_to_txs(ledger.read_table(record)),
                subnet=subnet,
                epoch=epoch,
                batch_hash=record.batch_hash,
                records=ledger.epoch_records(subnet, epoch, names=BACKFILL_RECORDS),
            )
            logged = log_epoch_once(tracking_uri=tracking_uri, artifacts_dir=artifacts_dir, **job)
        except Exception as exc:  # one epoch's failure must not hide the others
            failures_in_row += 1 if isinstance(exc, AVAILABILITY_ERRORS) else 0
            errors.append(f"{subnet}/{epoch}: {_error_text(exc)}")
            log.warning("backfill of %s/%s failed: %s", subnet, epoch, errors[-1])
            continue
        failures_in_row = 0
        if logged.created:
            backfilled.append(f"{subnet}/{epoch}")
        else:  # a concurrent tracker logged it first
            found_logged += 1
    return ReconcileReport(
        committed=len(committed),
        flushed=tuple(flushed),
        backfilled=tuple(backfilled),
        remaining=len(missing) - len(backfilled) - found_logged,
        errors=tuple(errors),
    )
