"""Stage 5 — track: one MLflow run per epoch, written after the ledger commit.

A run holds: the epoch's hyper-parameters as params; aggregates (``emission_tao``,
``best_score``, ``validator_agreement``, whatever the caller passes) and per-uid metrics
(``<name>/uid_<uid>`` for ``PER_UID_METRICS``) at ``step = epoch``, so curves form across runs;
artifacts ``metagraph.parquet``, ``metagraph.json``, ``weights.parquet`` and ``plots/*.png``;
tags ``taoflow.subnet``, ``taoflow.epoch``, ``taoflow.run_key`` (``<subnet>/<epoch>``),
``taoflow.status`` plus the caller's (ledger batch hash, Prefect flow run id). With a champion
candidate it also logs ``champion/`` (the submission's two files) and registers it
(``tasks.registry``); tags
``taoflow.champion.{candidate_uid,candidate_digest,promoted,version,reason}`` record the outcome.

Invariants:

* exactly one run per (subnet, epoch): one experiment per subnet (``subnet-<name>``), the run
  keyed by its tags (``taoflow.run_key``; older runs are found by ``taoflow.epoch``), so a
  retried epoch returns the existing run and logs nothing;
* search-then-create is serialised across processes: ``log_epoch`` holds an exclusive ``flock``
  on ``<artifacts_dir>/.track.lock`` (waiting at most ``TRACK_LOCK_TIMEOUT_S``) from the search
  until the run is complete, so concurrent trackers of one epoch produce one run, and a run
  found unfinished under the lock was left by a dead process;
* a run is created with ``taoflow.status = logging`` and only marked ``complete`` (and
  ``FINISHED``) after everything, registration included, is written; a run of the epoch left
  unfinished by a crash is deleted (with any model version it registered) and logged again, so
  there is never a second visible run;
* the subnet name must be a valid name (``ledger.names``); the experiment's artifact directory
  is ``path_under(artifacts_dir, subnet)``; with an HTTP(S) tracking server the server chooses
  the artifact location;
* nothing here can change the ledger; MLflow is used through ``MlflowClient`` with an explicit
  tracking URI (the registry shares it) and pickle deserialisation is off (``taoflow.settings``).

Fault model: any MLflow / SQLite / filesystem error propagates to the caller — the flow (or
``tasks.track_outbox``) decides; a crash leaves at most an unfinished run, repaired on the next
try. A champion whose files do not hash to its digest raises
:class:`~tasks.registry.ChampionIntegrityError` before any run is created. A plot that cannot
be drawn does not fail the run: its error is recorded as tag ``taoflow.plot_error.<name>``.
A tracker that cannot get the lock within ``TRACK_LOCK_TIMEOUT_S`` raises
:class:`TrackingLockTimeout` (an ``OSError``: the outbox queues the job).
"""

from __future__ import annotations

import fcntl
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from taoflow.ledger.names import check_subnet_name, path_under
from taoflow.tasks import track_plots
from taoflow.tasks.models.artifacts import artifact_digest
from taoflow.tasks.registry import (
    CHAMPION_ARTIFACT_DIR,
    CONFIG_FILE,
    MODEL_FILE,
    ChampionCandidate,
    ChampionIntegrityError,
    discard_run_versions,
    register_champion,
)

__all__ = [
    "ChampionCandidate",
    "Logged",
    "TrackingLockTimeout",
    "experiment_name",
    "find_epoch_run",
    "log_epoch",
    "log_epoch_once",
    "run_key",
    "tracking_lock",
    "unfinished_epoch_runs",
    "validator_agreement",
]

METRICS_PER_CALL_MAX: Final = 1000
PARAM_VALUE_CHARS_MAX: Final = 6000
RUNS_PER_EPOCH_SEARCH_MAX: Final = 100
CHAMPION_FILE_BYTES_MAX: Final = 1 << 30
STATUS_TAG: Final = "taoflow.status"
STATUS_LOGGING: Final = "logging"
STATUS_COMPLETE: Final = "complete"
RUN_KEY_TAG: Final = "taoflow.run_key"
TRACK_LOCK_FILE: Final = ".track.lock"
TRACK_LOCK_TIMEOUT_S: Final = 600.0
TRACK_LOCK_POLL_S: Final = 0.05
REMOTE_TRACKING_SCHEMES: Final = ("http://", "https://", "databricks")
PER_UID_METRICS: Final = (
    "stake_tao",
    "score",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "emission_tao",
)


class TrackingLockTimeout(OSError):
    """Another tracker held the tracking lock for longer than the bound."""


def experiment_name(subnet: str) -> str:
    return f"subnet-{subnet}"


def run_key(subnet: str, epoch: int) -> str:
    """The deterministic key of an epoch's run: ``<subnet>/<epoch>``."""
    return f"{subnet}/{int(epoch)}"


@contextmanager
def tracking_lock(
    artifacts_dir: Path, *, timeout_s: float = TRACK_LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the exclusive tracking lock of ``artifacts_dir`` (waits at most ``timeout_s``)."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    path = path_under(artifacts_dir, TRACK_LOCK_FILE)
    deadline = time.monotonic() + timeout_s
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TrackingLockTimeout(
                        f"tracking lock {path} still held after {timeout_s} s"
                    ) from None
                time.sleep(TRACK_LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _experiment_id(
    client: MlflowClient, *, subnet: str, artifacts_dir: Path, tracking_uri: str
) -> str:
    name = experiment_name(subnet)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    if tracking_uri.startswith(REMOTE_TRACKING_SCHEMES):
        return str(client.create_experiment(name))
    location = path_under(artifacts_dir, subnet).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _epoch_filter(epoch: int) -> str:
    return f"tags.`taoflow.epoch` = '{int(epoch)}'"


def find_epoch_run(client: MlflowClient, *, experiment_id: str, epoch: int) -> str | None:
    """The complete run of ``epoch`` in the experiment (the oldest if several), or ``None``."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"{_epoch_filter(epoch)} and tags.`{STATUS_TAG}` = '{STATUS_COMPLETE}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return str(runs[0].info.run_id) if runs else None


def unfinished_epoch_runs(client: MlflowClient, *, experiment_id: str, epoch: int) -> list[str]:
    """Active runs of ``epoch`` whose ``taoflow.status`` is not ``complete`` (crash leftovers)."""
    runs = client.search_runs(
        [experiment_id], filter_string=_epoch_filter(epoch), max_results=RUNS_PER_EPOCH_SEARCH_MAX
    )
    return [str(r.info.run_id) for r in runs if r.data.tags.get(STATUS_TAG) != STATUS_COMPLETE]


def validator_agreement(metagraph: pa.Table) -> float | None:
    """Stake-weighted mean validator trust over validators with a permit (``None`` if none).

    Validator trust is the share of a validator's weight that falls within consensus, so this
    is the fraction of the validating stake's weight that agreed with consensus.
    """
    needed = ("stake_rao", "validator_trust", "validator_permit")
    if any(column not in metagraph.column_names for column in needed):
        return None
    columns = metagraph.to_pydict()
    stake_total_rao = 0
    weighted = 0.0
    for stake_rao, trust, permit in zip(*(columns[c] for c in needed), strict=True):
        if permit and stake_rao and trust is not None:
            stake_total_rao += int(stake_rao)
            weighted += int(stake_rao) * float(trust)
    return weighted / stake_total_rao if stake_total_rao > 0 else None


def _metrics(
    *, metagraph: pa.Table, aggregates: Mapping[str, float], epoch: int, now_ms: int
) -> list[Metric]:
    values = {k: float(v) for k, v in aggregates.items()}
    if "validator_agreement" not in values:
        agreement = validator_agreement(metagraph)
        if agreement is not None:
            values["validator_agreement"] = agreement
    metrics = [Metric(k, v, now_ms, epoch) for k, v in sorted(values.items())]
    columns = metagraph.to_pydict()
    for row, uid in enumerate(columns["uid"]):
        for name in PER_UID_METRICS:
            if name in columns and columns[name][row] is not None:
                metrics.append(
                    Metric(f"{name}/uid_{uid:04d}", float(columns[name][row]), now_ms, epoch)
                )
    return metrics


def _draw_plots(
    *, metagraph: pa.Table, weights: pa.Table | None, directory: Path
) -> dict[str, str]:
    """Draw the epoch's PNGs into ``directory``; return plot name → error for failed ones."""
    columns = metagraph.to_pydict()
    uids = [int(u) for u in columns["uid"]]
    jobs: dict[str, Callable[[], Path]] = {
        "emission_by_uid": lambda: track_plots.emission_by_uid_png(
            uids,
            [float(e or 0.0) for e in columns.get("emission_tao", [0.0] * len(uids))],
            directory / "emission_by_uid.png",
        ),
        "score_distribution": lambda: track_plots.score_distribution_png(
            {
                uid: float(score)
                for uid, score in zip(uids, columns.get("score", [None] * len(uids)), strict=True)
                if score is not None
            },
            directory / "score_distribution.png",
        ),
    }
    if weights is not None:
        consensus = [float(c or 0.0) for c in columns.get("consensus", [0.0] * len(uids))]
        jobs["weights_vs_consensus"] = lambda: track_plots.weights_vs_consensus_png(
            weights, consensus, directory / "weights_vs_consensus.png"
        )
    errors = {}
    for name, draw in jobs.items():
        try:
            draw()
        except (ValueError, TypeError, KeyError, RuntimeError, OSError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"[:PARAM_VALUE_CHARS_MAX]
    return errors


def _read_champion_file(path: Path) -> bytes:
    with Path(path).open("rb") as handle:
        data = handle.read(CHAMPION_FILE_BYTES_MAX + 1)
    if len(data) > CHAMPION_FILE_BYTES_MAX:
        raise ChampionIntegrityError(f"{path} is larger than {CHAMPION_FILE_BYTES_MAX} bytes")
    return data


def _stage_champion(candidate: ChampionCandidate, directory: Path) -> Path:
    """Copy the candidate's files under canonical names, after checking their digest."""
    model_bytes = _read_champion_file(candidate.model_path)
    config_bytes = _read_champion_file(candidate.config_path)
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    if digest != candidate.digest:
        raise ChampionIntegrityError(
            f"champion uid {candidate.uid}: files hash to {digest}, expected {candidate.digest}"
        )
    staged = directory / CHAMPION_ARTIFACT_DIR
    staged.mkdir(parents=True)
    (staged / MODEL_FILE).write_bytes(model_bytes)
    (staged / CONFIG_FILE).write_bytes(config_bytes)
    return staged


def _discard_unfinished(
    client: MlflowClient, *, experiment_id: str, subnet: str, epoch: int
) -> None:
    for run_id in unfinished_epoch_runs(client, experiment_id=experiment_id, epoch=epoch):
        discard_run_versions(client, subnet=subnet, run_id=run_id)
        client.delete_run(run_id)


@dataclass(frozen=True)
class Logged:
    """The epoch's complete run, and whether this call created it (``False``: it existed)."""

    run_id: str
    created: bool


def log_epoch(
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    subnet: str,
    epoch: int,
    params: Mapping[str, Any],
    metagraph: pa.Table,
    aggregates: Mapping[str, float],
    tags: Mapping[str, str],
    weights: pa.Table | None = None,
    champion: ChampionCandidate | None = None,
) -> str:
    """Log (or find) the complete run of ``epoch``; return its run id.

    ``weights``: the epoch's sparse weight matrix (``validator``, ``miner``, ``weight_u16``),
    logged as ``weights.parquet`` and drawn against consensus. ``champion``: the epoch's best
    model, logged under ``champion/`` and registered if it beats the current champion.
    """
    return log_epoch_once(
        tracking_uri=tracking_uri,
        artifacts_dir=artifacts_dir,
        subnet=subnet,
        epoch=epoch,
        params=params,
        metagraph=metagraph,
        aggregates=aggregates,
        tags=tags,
        weights=weights,
        champion=champion,
    ).run_id


def log_epoch_once(
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    subnet: str,
    epoch: int,
    params: Mapping[str, Any],
    metagraph: pa.Table,
    aggregates: Mapping[str, float],
    tags: Mapping[str, str],
    weights: pa.Table | None = None,
    champion: ChampionCandidate | None = None,
) -> Logged:
    """:func:`log_epoch`, also saying whether the run was created by this call."""
    problem = check_subnet_name(subnet)
    if problem is not None:
        raise ValueError(problem)
    if type(epoch) is not int or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    with tracking_lock(artifacts_dir):  # opening a new store creates (migrates) it
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = _experiment_id(
            client, subnet=subnet, artifacts_dir=artifacts_dir, tracking_uri=tracking_uri
        )
        existing = find_epoch_run(client, experiment_id=experiment_id, epoch=epoch)
        if existing is not None:
            return Logged(existing, created=False)
        created = _log_epoch_locked(
            client,
            experiment_id=experiment_id,
            subnet=subnet,
            epoch=epoch,
            params=params,
            metagraph=metagraph,
            aggregates=aggregates,
            tags=tags,
            weights=weights,
            champion=champion,
        )
        return Logged(created, created=True)


def _log_epoch_locked(
    client: MlflowClient,
    *,
    experiment_id: str,
    subnet: str,
    epoch: int,
    params: Mapping[str, Any],
    metagraph: pa.Table,
    aggregates: Mapping[str, float],
    tags: Mapping[str, str],
    weights: pa.Table | None,
    champion: ChampionCandidate | None,
) -> str:
    """Discard the epoch's unfinished runs, then log a new one (tracking lock held)."""
    with tempfile.TemporaryDirectory(prefix="taoflow-track-") as tmp:
        root = Path(tmp)
        staged = None if champion is None else _stage_champion(champion, root / "staging")
        _discard_unfinished(client, experiment_id=experiment_id, subnet=subnet, epoch=epoch)
        run_id = _log_new_run(
            client,
            experiment_id=experiment_id,
            root=root,
            subnet=subnet,
            epoch=epoch,
            params=params,
            metagraph=metagraph,
            aggregates=aggregates,
            tags=tags,
            weights=weights,
        )
        final_tags: dict[str, str] = {}
        plots = root / "plots"
        plots.mkdir()
        plot_errors = _draw_plots(metagraph=metagraph, weights=weights, directory=plots)
        for name, error in plot_errors.items():
            final_tags[f"taoflow.plot_error.{name}"] = error
        if any(plots.iterdir()):
            client.log_artifacts(run_id, str(plots), "plots")
        if champion is not None and staged is not None:
            client.log_artifacts(run_id, str(staged), CHAMPION_ARTIFACT_DIR)
            decision = register_champion(
                client, subnet=subnet, epoch=epoch, run_id=run_id, candidate=champion
            )
            final_tags["taoflow.champion.candidate_uid"] = str(champion.uid)
            final_tags["taoflow.champion.candidate_digest"] = champion.digest
            final_tags["taoflow.champion.promoted"] = str(decision.promoted).lower()
            final_tags["taoflow.champion.version"] = decision.version or ""
            final_tags["taoflow.champion.reason"] = decision.reason
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(final_tags.items())])
    client.set_terminated(run_id, status="FINISHED")
    client.set_tag(run_id, STATUS_TAG, STATUS_COMPLETE)  # the commit marker: always last
    return run_id


def _log_new_run(
    client: MlflowClient,
    *,
    experiment_id: str,
    root: Path,
    subnet: str,
    epoch: int,
    params: Mapping[str, Any],
    metagraph: pa.Table,
    aggregates: Mapping[str, float],
    tags: Mapping[str, str],
    weights: pa.Table | None,
) -> str:
    """Create the epoch's run (status ``logging``) with params, metrics and tables."""
    run_tags = {
        **tags,
        "taoflow.subnet": subnet,
        "taoflow.epoch": str(epoch),
        RUN_KEY_TAG: run_key(subnet, epoch),
        STATUS_TAG: STATUS_LOGGING,
    }
    run = client.create_run(experiment_id, run_name=f"{subnet}-epoch-{epoch}", tags=run_tags)
    run_id = str(run.info.run_id)
    now_ms = int(time.time() * 1000)
    metrics = _metrics(metagraph=metagraph, aggregates=aggregates, epoch=epoch, now_ms=now_ms)
    param_list = [Param(k, str(v)[:PARAM_VALUE_CHARS_MAX]) for k, v in sorted(params.items())]
    client.log_batch(run_id, params=param_list)
    for start in range(0, len(metrics), METRICS_PER_CALL_MAX):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_CALL_MAX])
    pq.write_table(metagraph, root / "metagraph.parquet")
    client.log_artifact(run_id, str(root / "metagraph.parquet"))
    (root / "metagraph.json").write_text(_rows_json(metagraph.to_pylist()))
    client.log_artifact(run_id, str(root / "metagraph.json"))
    if weights is not None:
        pq.write_table(weights, root / "weights.parquet")
        client.log_artifact(run_id, str(root / "weights.parquet"))
    return run_id


def _rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(rows), indent=1, sort_keys=True, default=str)
