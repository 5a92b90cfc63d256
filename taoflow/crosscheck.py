"""Compare the ledger's epoch batch hashes with the ones published outside the ledger directory.

When an epoch is committed, its batch hash is published twice outside the ledger directory: as
the ``taoflow.ledger_batch_hash`` tag of the epoch's MLflow run, and in the epoch's Prefect
summary artifact (``<subnet>-summary``, one version per epoch). Someone who can rewrite the
ledger directory cannot rewrite those, so ``taoflow ledger verify --cross-check`` reports every
epoch whose batch hash differs from what was published when it was committed.

MLflow runs that were *backfilled* from the ledger after a crash (tag ``taoflow.backfilled``)
carry the ledger's own hash, so they are not independent evidence and are not compared.

Bounds: ``RUNS_MAX`` runs per experiment, ``EXPERIMENTS_MAX`` experiments, ``ARTIFACTS_MAX``
Prefect artifacts, each read once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from taoflow.ledger.store import Ledger
from taoflow.settings import Settings

RUNS_MAX = 50_000
"""MLflow's own ceiling for one search."""
EXPERIMENTS_MAX = 1_000
ARTIFACTS_MAX = 10_000
ARTIFACTS_PAGE = 200
"""Prefect's default page ceiling for one filter request."""
PREFECT_TIMEOUT_S = 120.0
BATCH_HASH_TAG = "taoflow.ledger_batch_hash"
BACKFILLED_TAG = "taoflow.backfilled"
SUMMARY_SUFFIX = "-summary"
# The summary's title and batch line (``tasks.summary.markdown_summary``); the older form of
# each (``# digits — epoch 3``, ``* ledger batch 4 `…```) is still read.
_TITLE_RE = re.compile(r"^# (?P<subnet>\S+) [—·] epoch (?P<epoch>\d+)$", re.MULTILINE)
_BATCH_RE = re.compile(
    r"^\* (?:block \d+, )?ledger batch \d+ `(?P<hash>[0-9a-f]{64})`$", re.MULTILINE
)

Published = dict[tuple[str, int], set[str]]


@dataclass
class SourceCheck:
    """One publication source compared with the ledger."""

    source: str
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class CrossCheck:
    """What the cross-check compared and what disagreed."""

    ok: bool
    epochs: int
    sources: list[SourceCheck]

    @property
    def summary(self) -> str:
        parts = []
        for s in self.sources:
            if s.error:
                parts.append(f"[yellow]{s.source} not read[/] ({s.error})")
            elif s.mismatches:
                parts.append(f"[red]{s.source}: {'; '.join(s.mismatches)}[/]")
            else:
                parts.append(f"{s.source}: {s.compared}/{self.epochs} epoch hashes match")
        return ", ".join(parts)


def ledger_epoch_hashes(ledger: Ledger) -> dict[tuple[str, int], str]:
    """(subnet, epoch) → the hash of the batch that committed it."""
    hashes: dict[tuple[str, int], str] = {}
    for record in ledger.records():
        for label in record.epochs:
            subnet, _, epoch = label.rpartition("/")
            hashes[(subnet, int(epoch))] = record.batch_hash
    return hashes


def published_in_mlflow(tracking_uri: str) -> Published:
    """(subnet, epoch) → every batch hash an MLflow run published when it was tracked."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found: Published = {}
    for experiment in client.search_experiments(max_results=EXPERIMENTS_MAX):
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{BATCH_HASH_TAG}` != ''",
            max_results=RUNS_MAX,
        )
        for run in runs:
            subnet, epoch = run.data.params.get("subnet"), run.data.params.get("epoch")
            published = run.data.tags.get(BATCH_HASH_TAG)
            if run.data.tags.get(BACKFILLED_TAG) == "true":
                continue
            if subnet is None or epoch is None or not published or not epoch.isdigit():
                continue
            found.setdefault((subnet, int(epoch)), set()).add(published)
    return found


def published_in_prefect() -> Published:
    """(subnet, epoch) → every batch hash an epoch's Prefect summary artifact published."""
    import anyio
    from prefect.client.orchestration import get_client

    async def read() -> list[str]:
        texts: list[str] = []
        with anyio.fail_after(PREFECT_TIMEOUT_S):
            async with get_client() as client:
                for offset in range(0, ARTIFACTS_MAX, ARTIFACTS_PAGE):
                    page = await client.read_artifacts(limit=ARTIFACTS_PAGE, offset=offset)
                    texts.extend(
                        str(a.data)
                        for a in page
                        if a.key and a.key.endswith(SUMMARY_SUFFIX) and isinstance(a.data, str)
                    )
                    if len(page) < ARTIFACTS_PAGE:
                        break
        return texts

    found: Published = {}
    for text in anyio.run(read):
        published = summary_batch_hash(text)
        if published is not None:
            subnet, epoch, batch_hash = published
            found.setdefault((subnet, epoch), set()).add(batch_hash)
    return found


def summary_batch_hash(text: str) -> tuple[str, int, str] | None:
    """``(subnet, epoch, batch hash)`` published by an epoch's summary artifact, or ``None``."""
    title, batch = _TITLE_RE.search(text), _BATCH_RE.search(text)
    if title is None or batch is None:
        return None
    return title["subnet"], int(title["epoch"]), batch["hash"]


def compare(ours: dict[tuple[str, int], str], theirs: Published, source: str) -> SourceCheck:
    check = SourceCheck(source=source)
    for (subnet, epoch), hashes in sorted(theirs.items()):
        mine = ours.get((subnet, epoch))
        if mine is None:
            check.mismatches.append(
                f"{subnet} epoch {epoch} was published but is not in the ledger"
            )
        elif hashes != {mine}:
            other = sorted(hashes - {mine})[0]
            check.mismatches.append(
                f"{subnet} epoch {epoch}: published batch {other[:16]}…, "
                f"the ledger holds {mine[:16]}…"
            )
        else:
            check.compared += 1
    return check


def cross_check(settings: Settings) -> CrossCheck:
    """Every published batch hash must equal the ledger's for the same (subnet, epoch)."""
    ours = ledger_epoch_hashes(Ledger(settings.ledger_dir))
    checks = []
    for source, read in (
        ("MLflow", lambda: published_in_mlflow(settings.mlflow_tracking_uri)),
        ("Prefect", published_in_prefect),
    ):
        try:
            checks.append(compare(ours, read(), source))
        except Exception as exc:  # a service that cannot be read is reported, not fatal
            checks.append(SourceCheck(source=source, error=str(exc).splitlines()[0][:200]))
    ok = all(not c.mismatches for c in checks) and any(c.error is None for c in checks)
    return CrossCheck(ok=ok, epochs=len(ours), sources=checks)
