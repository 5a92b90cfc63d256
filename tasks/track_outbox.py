"""Tracking outbox: an epoch whose MLflow run could not be written is queued and written later.

``log_epoch_or_queue`` tries :func:`tasks.track.log_epoch`; if anything goes wrong (MLflow or
its SQLite database unavailable, a full disk, an unreachable server) it stores the whole
tracking job in the outbox and returns ``(None, error)`` instead of raising. ``flush_outbox``
writes queued jobs once MLflow is back. The ledger is never read or written here: the commit
has already happened, and tracking can neither block nor undo it.

Layout: ``<root>/<subnet-dir>/<epoch>/`` holds ``job.json`` (params, the epoch's emission in
rao, tags, the champion's identity, attempts, last error; format 2 — a format-1 job, which held
the emission as a τ float among ``aggregates``, is read as well), ``metagraph.parquet``, optionally
``weights.parquet`` and ``champion/{model.safetensors,config.json}`` (copies, so a job does not
depend on anything outside the outbox). ``<subnet-dir>`` is the subnet name when it matches
``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``, else ``~`` + the hex of its UTF-8 bytes.

Invariants:

* a job directory appears complete or not at all: it is written under a ``.staging-*`` name in
  the same parent, fsynced, then renamed; a re-queued epoch replaces the old job the same way;
* jobs are flushed in (subnet, epoch) order and a job is removed only after ``log_epoch``
  returned, i.e. after its run is marked complete; ``log_epoch`` is keyed by (subnet, epoch) and
  serialised by the tracking lock, so a crash between the two, or a flush racing a live tracker
  or the reconciler (``tasks.track_reconcile``), writes nothing twice;
* job directories are built with ``ledger.names.path_under``: never outside ``root``;
* a flush is bounded (``max_jobs``, default ``FLUSH_JOBS_MAX``), stops after
  ``consecutive_failures_max`` availability failures in a row (``AVAILABILITY_ERRORS``: MLflow
  is most likely still down; a job failing for its own reasons does not count), and only
  one flush runs per outbox at a time (``flock`` on ``<root>/.flush.lock``; a second returns
  ``[]`` at once);
* a job that keeps failing stays queued with its ``attempts`` and ``last_error``; nothing is
  ever dropped silently.

Fault model: tracking errors of any type are caught by ``log_epoch_or_queue`` (``Exception``;
``KeyboardInterrupt``/``SystemExit`` propagate); if even queueing fails the returned error says
so. A job directory that cannot be read is reported in the log and left in place.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from taoflow.ledger.names import path_under
from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.tasks.registry import CONFIG_FILE, MODEL_FILE, ChampionCandidate
from taoflow.tasks.track import log_epoch

log = logging.getLogger("taoflow.track_outbox")

FLUSH_JOBS_MAX: Final = 1000
CONSECUTIVE_FAILURES_MAX: Final = 3
JOB_FORMAT: Final = 2
JOB_FORMATS_READ: Final = (1, 2)
JOB_FILE: Final = "job.json"
METAGRAPH_FILE: Final = "metagraph.parquet"
WEIGHTS_FILE: Final = "weights.parquet"
CHAMPION_DIR: Final = "champion"
LOCK_FILE: Final = ".flush.lock"
STAGING_PREFIX: Final = ".staging-"
TRASH_PREFIX: Final = ".trash-"
STAGING_STALE_S: Final = 3600.0
ERROR_CHARS_MAX: Final = 2000
_SAFE_SUBNET_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ENCODED_PREFIX: Final = "~"
# Errors that mean "MLflow is unavailable" (requests' errors are OSErrors): only these count
# towards stopping a flush early; a job failing for its own reasons does not block the others.
AVAILABILITY_ERRORS: Final = (MlflowException, OSError, SQLAlchemyError)


class OutboxJobUnreadable(ValueError):
    """A queued job's files are missing or malformed."""


def subnet_dir_name(subnet: str) -> str:
    if _SAFE_SUBNET_RE.fullmatch(subnet):
        return subnet
    return _ENCODED_PREFIX + subnet.encode("utf-8").hex()


def subnet_from_dir_name(name: str) -> str:
    if name.startswith(_ENCODED_PREFIX):
        return bytes.fromhex(name[len(_ENCODED_PREFIX) :]).decode("utf-8")
    return name


def _jsonable_param(value: object) -> object:
    """A param value as JSON keeps it, so ``str(value)`` (what MLflow stores) is unchanged."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _fsync_write(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS_MAX]


def _emission_rao(document: Mapping[str, Any]) -> int:
    """The job's emission in rao; a format-1 job held it as ``aggregates.emission_tao``."""
    if document["format"] == 1:
        return round(float(document["aggregates"].get("emission_tao", 0.0)) * RAO_PER_TAO)
    emission_rao = document["emission_rao"]
    if type(emission_rao) is not int or emission_rao < 0:
        raise OutboxJobUnreadable(f"emission_rao must be a non-negative int: {emission_rao!r:.40}")
    return emission_rao


@dataclass(frozen=True)
class TrackingJob:
    """A queued call of :func:`tasks.track.log_epoch` (everything but the URIs)."""

    subnet: str
    epoch: int
    params: dict[str, Any]
    emission_rao: int
    tags: dict[str, str]
    metagraph: pa.Table
    weights: pa.Table | None
    champion: ChampionCandidate | None
    attempts: int
    last_error: str


class TrackingOutbox:
    """Pending tracking jobs under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def job_dir(self, subnet: str, epoch: int) -> Path:
        if type(epoch) is not int or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        return path_under(self.root, subnet_dir_name(subnet), str(epoch))

    def put(
        self,
        *,
        subnet: str,
        epoch: int,
        params: Mapping[str, Any],
        metagraph: pa.Table,
        emission_rao: int,
        tags: Mapping[str, str],
        weights: pa.Table | None = None,
        champion: ChampionCandidate | None = None,
        error: str = "",
    ) -> Path:
        """Queue a job (replacing a queued job of the same epoch); return its directory."""
        target = self.job_dir(subnet, epoch)
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
        try:
            pq.write_table(metagraph, staging / METAGRAPH_FILE)
            if weights is not None:
                pq.write_table(weights, staging / WEIGHTS_FILE)
            if champion is not None:
                (staging / CHAMPION_DIR).mkdir()
                _fsync_write(staging / CHAMPION_DIR / MODEL_FILE, champion.model_path.read_bytes())
                _fsync_write(
                    staging / CHAMPION_DIR / CONFIG_FILE, champion.config_path.read_bytes()
                )
            document = {
                "format": JOB_FORMAT,
                "subnet": subnet,
                "epoch": epoch,
                "params": {str(k): _jsonable_param(v) for k, v in params.items()},
                "emission_rao": int(emission_rao),
                "tags": {str(k): str(v) for k, v in tags.items()},
                "has_weights": weights is not None,
                "champion": None
                if champion is None
                else {
                    "uid": champion.uid,
                    "hotkey": champion.hotkey,
                    "digest": champion.digest,
                    "score": champion.score,
                },
                "queued_at_unix_s": time.time(),
                "attempts": 0,
                "last_error": error[:ERROR_CHARS_MAX],
            }
            _fsync_write(staging / JOB_FILE, json.dumps(document, sort_keys=True).encode())
            self._swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _swap_in(self, staging: Path, target: Path) -> None:
        if not target.exists():
            os.rename(staging, target)
            return
        trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=target.parent))
        os.rename(target, trash / "old")
        os.rename(staging, target)
        shutil.rmtree(trash, ignore_errors=True)

    def pending(self) -> list[tuple[str, int]]:
        """Queued (subnet, epoch) pairs in flush order."""
        found: list[tuple[str, int]] = []
        if not self.root.is_dir():
            return found
        for subnet_dir in self.root.iterdir():
            if subnet_dir.name.startswith(".") or not subnet_dir.is_dir():
                continue
            try:
                subnet = subnet_from_dir_name(subnet_dir.name)
            except ValueError:
                log.warning("ignoring outbox directory %s (not a subnet)", subnet_dir)
                continue
            for epoch_dir in subnet_dir.iterdir():
                if epoch_dir.name.isdigit() and (epoch_dir / JOB_FILE).is_file():
                    found.append((subnet, int(epoch_dir.name)))
        return sorted(found)

    def __len__(self) -> int:
        return len(self.pending())

    def load(self, subnet: str, epoch: int) -> TrackingJob:
        directory = self.job_dir(subnet, epoch)
        try:
            document = json.loads((directory / JOB_FILE).read_text())
            if document.get("format") not in JOB_FORMATS_READ:
                raise OutboxJobUnreadable(f"{directory}: unknown job format {document!r:.80}")
            metagraph = pq.read_table(directory / METAGRAPH_FILE)
            weights = pq.read_table(directory / WEIGHTS_FILE) if document["has_weights"] else None
            found = document["champion"]
            champion = (
                None
                if found is None
                else ChampionCandidate(
                    uid=int(found["uid"]),
                    hotkey=str(found["hotkey"]),
                    digest=str(found["digest"]),
                    score=float(found["score"]),
                    model_path=directory / CHAMPION_DIR / MODEL_FILE,
                    config_path=directory / CHAMPION_DIR / CONFIG_FILE,
                )
            )
            return TrackingJob(
                subnet=str(document["subnet"]),
                epoch=int(document["epoch"]),
                params=dict(document["params"]),
                emission_rao=_emission_rao(document),
                tags={str(k): str(v) for k, v in document["tags"].items()},
                metagraph=metagraph,
                weights=weights,
                champion=champion,
                attempts=int(document["attempts"]),
                last_error=str(document["last_error"]),
            )
        except OutboxJobUnreadable:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException) as exc:
            raise OutboxJobUnreadable(f"{directory}: {_error_text(exc)}") from exc

    def record_failure(self, subnet: str, epoch: int, error: str) -> None:
        """Count a failed attempt and keep its error in ``job.json`` (atomic replace)."""
        path = self.job_dir(subnet, epoch) / JOB_FILE
        document = json.loads(path.read_text())
        document["attempts"] = int(document.get("attempts", 0)) + 1
        document["last_error"] = error[:ERROR_CHARS_MAX]
        document["last_attempt_unix_s"] = time.time()
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{JOB_FILE}.")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(json.dumps(document, sort_keys=True).encode())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def remove(self, subnet: str, epoch: int) -> bool:
        """Drop a queued job; ``False`` if there was none. ``job.json`` goes first."""
        directory = self.job_dir(subnet, epoch)
        if not directory.exists():
            return False
        trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=directory.parent))
        os.rename(directory, trash / "job")
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def sweep(self, *, stale_s: float = STAGING_STALE_S) -> None:
        """Remove leftover trash and staging directories older than ``stale_s`` (crashes)."""
        if not self.root.is_dir():
            return
        now_s = time.time()
        for subnet_dir in self.root.iterdir():
            if subnet_dir.name.startswith(".") or not subnet_dir.is_dir():
                continue
            for entry in subnet_dir.iterdir():
                if entry.name.startswith(TRASH_PREFIX) or (
                    entry.name.startswith(STAGING_PREFIX)
                    and now_s - entry.stat().st_mtime > stale_s
                ):
                    shutil.rmtree(entry, ignore_errors=True)

    @contextmanager
    def flush_lock(self) -> Iterator[bool]:
        """Hold the outbox's flush lock; yields ``False`` if another flush holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def flush_outbox(
    root: Path,
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    max_jobs: int = FLUSH_JOBS_MAX,
    consecutive_failures_max: int = CONSECUTIVE_FAILURES_MAX,
) -> list[str]:
    """Write queued jobs in (subnet, epoch) order; return the run ids written.

    Each job is removed once its run is complete. At most ``max_jobs`` jobs are tried; the
    flush stops after ``consecutive_failures_max`` failures in a row. Returns ``[]`` at once if
    another flush of the same outbox is running.
    """
    outbox = TrackingOutbox(root)
    if not outbox.root.is_dir():
        return []
    written: list[str] = []
    with outbox.flush_lock() as held:
        if not held:
            return written
        outbox.sweep()
        failures_in_row = 0
        for subnet, epoch in outbox.pending()[: max(0, max_jobs)]:
            if failures_in_row >= consecutive_failures_max:
                break
            try:
                job = outbox.load(subnet, epoch)
            except OutboxJobUnreadable as exc:
                log.warning("outbox job %s/%s is unreadable, left in place: %s", subnet, epoch, exc)
                continue
            try:
                run_id = log_epoch(
                    tracking_uri=tracking_uri,
                    artifacts_dir=artifacts_dir,
                    subnet=job.subnet,
                    epoch=job.epoch,
                    params=job.params,
                    metagraph=job.metagraph,
                    emission_rao=job.emission_rao,
                    tags=job.tags,
                    weights=job.weights,
                    champion=job.champion,
                )
            except Exception as exc:  # any tracking failure: keep the job, count the attempt
                if isinstance(exc, AVAILABILITY_ERRORS):
                    failures_in_row += 1
                error = _error_text(exc)
                log.warning("outbox job %s/%s failed again: %s", subnet, epoch, error)
                try:
                    outbox.record_failure(subnet, epoch, error)
                except (OSError, ValueError) as record_exc:
                    log.warning("could not record the failure: %s", _error_text(record_exc))
                continue
            failures_in_row = 0
            outbox.remove(subnet, epoch)
            written.append(run_id)
    return written


def log_epoch_or_queue(
    *,
    outbox_root: Path,
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
    flush_pending: bool = True,
) -> tuple[str | None, str | None]:
    """Log the epoch's run, or queue it; return ``(run_id, None)`` or ``(None, error)``.

    Never raises for a tracking failure. After a success, a queued copy of this epoch is
    dropped and (``flush_pending``) the rest of the outbox is flushed.
    """
    try:
        run_id = log_epoch(
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
        )
    except Exception as exc:  # the ledger is committed: whatever broke tracking, keep the job
        error = _error_text(exc)
        try:
            where = TrackingOutbox(outbox_root).put(
                subnet=subnet,
                epoch=epoch,
                params=params,
                metagraph=metagraph,
                emission_rao=emission_rao,
                tags=tags,
                weights=weights,
                champion=champion,
                error=error,
            )
            log.warning("MLflow run of %s/%s queued in %s: %s", subnet, epoch, where, error)
        except Exception as queue_exc:  # report both; still never raise into the flow
            error = f"{error}; not queued: {_error_text(queue_exc)}"
            log.error("MLflow run of %s/%s lost: %s", subnet, epoch, error)
        return None, error
    outbox = TrackingOutbox(outbox_root)
    try:
        outbox.remove(subnet, epoch)
        if flush_pending:
            flush_outbox(outbox_root, tracking_uri=tracking_uri, artifacts_dir=artifacts_dir)
    except OSError as exc:  # the run is written; a broken outbox is only worth a warning
        log.warning("tracking outbox %s: %s", outbox_root, _error_text(exc))
    return run_id, None
