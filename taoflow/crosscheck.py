"""Compare the ledger's epoch batch hashes with the ones published outside the ledger directory.

Every epoch's MLflow run carries the hash of the ledger batch that paid it
(``taoflow.ledger_batch_hash``) and the subnet and epoch it belongs to. Someone who can rewrite
the ledger directory cannot rewrite those, so ``taoflow ledger verify --cross-check`` reports any
epoch whose batch hash differs from what was published when it was committed.

Bounds: at most ``RUNS_MAX`` runs are read per experiment, ``EXPERIMENTS_MAX`` experiments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.store import Ledger
from taoflow.settings import Settings

RUNS_MAX = 50_000
"""MLflow's own ceiling for one search."""
EXPERIMENTS_MAX = 1_000
BATCH_HASH_TAG = "taoflow.ledger_batch_hash"


@dataclass
class CrossCheck:
    """What the cross-check compared and what disagreed."""

    ok: bool
    compared: int
    unpublished: int
    mismatches: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.error:
            return f"[red]could not read MLflow[/]: {self.error}"
        if self.mismatches:
            return f"[red]{len(self.mismatches)} mismatch(es)[/]: " + "; ".join(self.mismatches)
        return (
            f"{self.compared} epoch batch hash(es) match their MLflow runs"
            f" ({self.unpublished} epoch(s) without a run)"
        )


def ledger_epoch_hashes(ledger: Ledger) -> dict[tuple[str, int], str]:
    """(subnet, epoch) → the hash of the batch that committed it."""
    hashes: dict[tuple[str, int], str] = {}
    for record in ledger.records():
        for label in record.epochs:
            subnet, _, epoch = label.rpartition("/")
            hashes[(subnet, int(epoch))] = record.batch_hash
    return hashes


def published_hashes(tracking_uri: str) -> dict[tuple[str, int], set[str]]:
    """(subnet, epoch) → every batch hash an MLflow run published for it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found: dict[tuple[str, int], set[str]] = {}
    for experiment in client.search_experiments(max_results=EXPERIMENTS_MAX):
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{BATCH_HASH_TAG}` != ''",
            max_results=RUNS_MAX,
        )
        for run in runs:
            subnet, epoch = run.data.params.get("subnet"), run.data.params.get("epoch")
            published = run.data.tags.get(BATCH_HASH_TAG)
            if subnet is None or epoch is None or not published or not epoch.isdigit():
                continue
            found.setdefault((subnet, int(epoch)), set()).add(published)
    return found


def cross_check_mlflow(settings: Settings) -> CrossCheck:
    """Every MLflow-published batch hash must equal the ledger's for the same epoch."""
    ours = ledger_epoch_hashes(Ledger(settings.ledger_dir))
    try:
        theirs = published_hashes(settings.mlflow_tracking_uri)
    except Exception as exc:  # MLflow unreachable or damaged: say so, the ledger verified
        return CrossCheck(ok=False, compared=0, unpublished=len(ours), error=str(exc)[:200])
    mismatches = []
    for (subnet, epoch), hashes in sorted(theirs.items()):
        mine = ours.get((subnet, epoch))
        if mine is None:
            mismatches.append(f"{subnet} epoch {epoch} has an MLflow run but is not in the ledger")
        elif hashes != {mine}:
            other = sorted(hashes - {mine})[0]
            mismatches.append(
                f"{subnet} epoch {epoch}: MLflow published batch {other[:16]}…, "
                f"the ledger holds {mine[:16]}…"
            )
    compared = sum(1 for key in theirs if key in ours)
    return CrossCheck(
        ok=not mismatches,
        compared=compared,
        unpublished=sum(1 for key in ours if key not in theirs),
        mismatches=mismatches,
    )
