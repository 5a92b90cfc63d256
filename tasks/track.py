"""Stage 5 — track: the epoch's MLflow runs, written after the ledger commit.

One experiment per subnet (``subnet-<name>``, a model-training experiment: see
``tasks.track_series`` for its layout). An epoch gets a run ``epoch <N>``, a child of the
subnet's series run ``<subnet> · network``, holding: the epoch's hyper-parameters as params; the
handful of ``tasks.track_series.EPOCH_METRICS`` at ``step = epoch``; artifacts
``metagraph.csv`` (the per-uid table, shown as a table by the UI), ``metagraph.parquet`` (the
same rows, exact types), ``weights.parquet`` and ``plots/*.png``; tags ``taoflow.subnet``,
``taoflow.epoch``, ``taoflow.run_key`` (``<subnet>/<epoch>``), ``taoflow.status`` plus the
caller's (ledger batch hash, Prefect flow run id). The epoch's per-hotkey values and figures go
to the series run as points at ``step = epoch``, so they plot as lines. With a champion
candidate it also logs ``champion/`` (the submission's two files) and registers it
(``tasks.registry``); tags ``taoflow.champion.{candidate_uid,candidate_digest,promoted,version,
reason}`` record the outcome.

Invariants:

* exactly one run per (subnet, epoch): the run keyed by its tags (``taoflow.run_key``; older
  runs are found by ``taoflow.epoch``), so a retried epoch returns the existing run and logs
  nothing, in the epoch run or in the series run;
* search-then-create is serialised across processes: ``log_epoch`` holds an exclusive ``flock``
  on ``<artifacts_dir>/.track.lock`` (waiting at most ``TRACK_LOCK_TIMEOUT_S``) from the search
  until the run is complete, so concurrent trackers of one epoch produce one run, and a run
  found unfinished under the lock was left by a dead process;
* a run is created with ``taoflow.status = logging`` and only marked ``complete`` (and
  ``FINISHED``) after everything, series points and registration included, is written; a run of
  the epoch left unfinished by a crash is deleted (with any model version it registered) after
  the new run exists, and the new try writes only the series points that are not there yet, so
  there is never a second visible run nor a second point of a line at one epoch;
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
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from taoflow.ledger.names import check_subnet_name, path_under
from taoflow.tasks import track_plots, track_series
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
from taoflow.tasks.summary import tao
from taoflow.tasks.track_series import validator_agreement

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
METAGRAPH_CSV: Final = "metagraph.csv"
CSV_COLUMNS_FIRST: Final = (
    "uid",
    "role",
    "score",
    "incentive",
    "dividends",
    "emission_tao",
    "stake_tao",
    "validator_trust",
    "consensus",
    "validator_permit",
    "active",
    "error",
    "hotkey",
)
"""The per-uid table people read first, in this order; the other columns follow as they are."""
CSV_COLUMNS_LEFT_OUT: Final = ("epoch",)  # the run is the epoch
CSV_DECIMALS: Final = 6
CSV_TAO_DECIMALS: Final = 9  # 1 rao
METAGRAPH_PARQUET: Final = "metagraph.parquet"
WEIGHTS_PARQUET: Final = "weights.parquet"


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


def create_subnet_run(
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    subnet: str,
    run_name: str,
    tags: Mapping[str, str],
) -> tuple[MlflowClient, str]:
    """A new run in ``subnet``'s experiment (created if needed) and its client: for the audit
    reports (what-if, validator audit) that sit beside the subnet's epoch runs."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = _experiment_id(
        client, subnet=subnet, artifacts_dir=artifacts_dir, tracking_uri=tracking_uri
    )
    run = client.create_run(
        experiment_id, run_name=run_name, tags={"taoflow.subnet": subnet, **tags}
    )
    return client, str(run.info.run_id)


def _experiment_id(
    client: MlflowClient, *, subnet: str, artifacts_dir: Path, tracking_uri: str
) -> str:
    """The subnet's experiment, created as a model-training experiment (an older one is
    marked as one)."""
    name = experiment_name(subnet)
    found = client.get_experiment_by_name(name)
    if found is not None:
        experiment_id = str(found.experiment_id)
        if found.tags.get(track_series.EXPERIMENT_KIND_TAG) != track_series.EXPERIMENT_KIND:
            client.set_experiment_tag(
                experiment_id, track_series.EXPERIMENT_KIND_TAG, track_series.EXPERIMENT_KIND
            )
            client.set_experiment_tag(
                experiment_id, track_series.NOTE_TAG, track_series.experiment_note(subnet)
            )
        return experiment_id
    tags = {
        track_series.EXPERIMENT_KIND_TAG: track_series.EXPERIMENT_KIND,
        track_series.NOTE_TAG: track_series.experiment_note(subnet),
    }
    if tracking_uri.startswith(REMOTE_TRACKING_SCHEMES):
        return str(client.create_experiment(name, tags=tags))
    location = path_under(artifacts_dir, subnet).as_uri()
    return str(client.create_experiment(name, artifact_location=location, tags=tags))


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


def display_table(metagraph: pa.Table) -> pa.Table:
    """The metagraph as ``metagraph.csv`` shows it: :data:`CSV_COLUMNS_FIRST` first, floats
    rounded to :data:`CSV_DECIMALS` places (τ amounts to the rao); ``metagraph.parquet`` keeps
    the exact rows."""
    names = [c for c in CSV_COLUMNS_FIRST if c in metagraph.column_names]
    names += [c for c in metagraph.column_names if c not in names and c not in CSV_COLUMNS_LEFT_OUT]
    columns = []
    for name in names:
        column = metagraph.column(name)
        if pa.types.is_floating(column.type):
            places = CSV_TAO_DECIMALS if name.endswith("_tao") else CSV_DECIMALS
            column = pa_compute.round(column, places)
        columns.append(column)
    return pa.table(columns, names=names)


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


def _discard(client: MlflowClient, *, subnet: str, run_ids: list[str]) -> None:
    for run_id in run_ids:
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
    emission_rao: int,
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
        emission_rao=emission_rao,
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
    emission_rao: int,
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
            emission_rao=emission_rao,
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
    emission_rao: int,
    tags: Mapping[str, str],
    weights: pa.Table | None,
    champion: ChampionCandidate | None,
) -> str:
    """Log a new run of the epoch and its series points (tracking lock held).

    Runs of the epoch that an earlier try left unfinished are deleted once the new run exists
    (so a crash in between still leaves an unfinished run behind), and their presence makes the
    series points be written only where missing.
    """
    figures = track_series.epoch_metrics(metagraph, emission_rao=emission_rao)
    now_ms = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="taoflow-track-") as tmp:
        root = Path(tmp)
        staged = None if champion is None else _stage_champion(champion, root / "staging")
        leftovers = unfinished_epoch_runs(client, experiment_id=experiment_id, epoch=epoch)
        series_id = track_series.series_run(client, experiment_id=experiment_id, subnet=subnet)
        run_id = _log_new_run(
            client,
            experiment_id=experiment_id,
            root=root,
            subnet=subnet,
            epoch=epoch,
            params=params,
            metagraph=metagraph,
            metrics=[Metric(k, v, now_ms, epoch) for k, v in figures.items()],
            tags={
                **tags,
                track_series.PARENT_RUN_TAG: series_id,
                track_series.NOTE_TAG: _run_note(
                    subnet=subnet, epoch=epoch, figures=figures, emission_rao=emission_rao
                ),
            },
            weights=weights,
        )
        _discard(client, subnet=subnet, run_ids=leftovers)
        points = track_series.series_metrics(metagraph, figures=figures, epoch=epoch, now_ms=now_ms)
        track_series.log_series(client, run_id=series_id, points=points, dedupe=bool(leftovers))
        final_tags = _log_plots(
            client, run_id=run_id, root=root, metagraph=metagraph, weights=weights
        )
        if champion is not None and staged is not None:
            final_tags.update(
                _log_champion(
                    client,
                    run_id=run_id,
                    subnet=subnet,
                    epoch=epoch,
                    staged=staged,
                    champion=champion,
                )
            )
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(final_tags.items())])
    client.set_terminated(run_id, status="FINISHED")
    client.set_terminated(series_id, status="FINISHED")  # ended at its latest epoch
    client.set_tag(run_id, STATUS_TAG, STATUS_COMPLETE)  # the commit marker: always last
    return run_id


def _run_note(*, subnet: str, epoch: int, figures: Mapping[str, float], emission_rao: int) -> str:
    """The epoch run's description (markdown), from its figures."""
    best = figures.get("score_best")
    return (
        f"**{subnet}**, epoch {epoch}: {int(figures['models_evaluated'])} model(s) evaluated, "
        f"{int(figures['models_rejected'])} rejected"
        + ("" if best is None else f", best score {best:.4f}")
        + f"; {tao(emission_rao)} τ emitted, {int(figures['neurons'])} uids. "
        f"The per-uid table is `{METAGRAPH_CSV}`; lines over epochs are in the parent run "
        f"**{track_series.series_run_name(subnet)}**."
    )


def _log_plots(
    client: MlflowClient, *, run_id: str, root: Path, metagraph: pa.Table, weights: pa.Table | None
) -> dict[str, str]:
    """Draw and log ``plots/``; return the tags recording plots that could not be drawn."""
    plots = root / "plots"
    plots.mkdir()
    plot_errors = _draw_plots(metagraph=metagraph, weights=weights, directory=plots)
    if any(plots.iterdir()):
        client.log_artifacts(run_id, str(plots), "plots")
    return {f"taoflow.plot_error.{name}": error for name, error in plot_errors.items()}


def _log_champion(
    client: MlflowClient,
    *,
    run_id: str,
    subnet: str,
    epoch: int,
    staged: Path,
    champion: ChampionCandidate,
) -> dict[str, str]:
    """Log ``champion/``, register it if it beats the current one; return the outcome tags."""
    client.log_artifacts(run_id, str(staged), CHAMPION_ARTIFACT_DIR)
    decision = register_champion(
        client, subnet=subnet, epoch=epoch, run_id=run_id, candidate=champion
    )
    return {
        "taoflow.champion.candidate_uid": str(champion.uid),
        "taoflow.champion.candidate_digest": champion.digest,
        "taoflow.champion.promoted": str(decision.promoted).lower(),
        "taoflow.champion.version": decision.version or "",
        "taoflow.champion.reason": decision.reason,
    }


def _log_new_run(
    client: MlflowClient,
    *,
    experiment_id: str,
    root: Path,
    subnet: str,
    epoch: int,
    params: Mapping[str, Any],
    metagraph: pa.Table,
    metrics: list[Metric],
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
    run = client.create_run(
        experiment_id, run_name=track_series.epoch_run_name(epoch), tags=run_tags
    )
    run_id = str(run.info.run_id)
    param_list = [Param(k, str(v)[:PARAM_VALUE_CHARS_MAX]) for k, v in sorted(params.items())]
    client.log_batch(run_id, metrics=metrics, params=param_list)
    pa_csv.write_csv(display_table(metagraph), root / METAGRAPH_CSV)
    client.log_artifact(run_id, str(root / METAGRAPH_CSV))
    pq.write_table(metagraph, root / METAGRAPH_PARQUET)
    client.log_artifact(run_id, str(root / METAGRAPH_PARQUET))
    if weights is not None:
        pq.write_table(weights, root / WEIGHTS_PARQUET)
        client.log_artifact(run_id, str(root / WEIGHTS_PARQUET))
    return run_id
