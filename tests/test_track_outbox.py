"""MLflow outages: the epoch's run is queued in the outbox, nothing raised, written once later.

An outage is a tracking URI whose SQLite file would live under a regular *file* (so even root
cannot create it), or ``MlflowClient.create_run`` / ``set_terminated`` patched to raise.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from test_track import EMISSION_RAO, epoch_kwargs, epoch_runs, shared_store

from taoflow.tasks.models.artifacts import artifact_digest
from taoflow.tasks.registry import ChampionCandidate, current_champion
from taoflow.tasks.track import STATUS_COMPLETE, STATUS_TAG
from taoflow.tasks.track_outbox import (
    JOB_FILE,
    OutboxJobUnreadable,
    TrackingOutbox,
    flush_outbox,
    log_epoch_or_queue,
    subnet_dir_name,
    subnet_from_dir_name,
)

_subnet_numbers = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return shared_store(tmp_path_factory)  # subnets are unique per test: no interference


@pytest.fixture
def down(tmp_path: Path) -> tuple[str, Path]:
    """A tracking store that cannot be opened: its directory is a regular file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return f"sqlite:///{blocker / 'mlflow.db'}", blocker / "mlruns"


@pytest.fixture
def subnet() -> Iterator[str]:
    yield f"outbox{next(_subnet_numbers)}"


def queue_or_log(
    store: tuple[str, Path], outbox: Path, subnet: str, epoch: int, **overrides: Any
) -> tuple[str | None, str | None]:
    uri, artifacts_dir = store
    kwargs = {**epoch_kwargs(subnet, epoch), **overrides}
    return log_epoch_or_queue(
        outbox_root=outbox, tracking_uri=uri, artifacts_dir=artifacts_dir, **kwargs
    )


def flush(store: tuple[str, Path], outbox: Path, **limits: int) -> list[str]:
    return flush_outbox(outbox, tracking_uri=store[0], artifacts_dir=store[1], **limits)


def fake_champion(directory: Path, *, uid: int = 3, score: float = 0.7) -> ChampionCandidate:
    """Files with a correct digest; registration never loads them, so any bytes do."""
    directory.mkdir(parents=True, exist_ok=True)
    model_bytes, config_bytes = b"not really safetensors", b'{"family": "mlp"}'
    (directory / "model.safetensors").write_bytes(model_bytes)
    (directory / "config.json").write_bytes(config_bytes)
    return ChampionCandidate(
        uid=uid,
        hotkey=f"hotkey-{uid}",
        digest=artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes),
        score=score,
        model_path=directory / "model.safetensors",
        config_path=directory / "config.json",
    )


def test_outage_queues_the_job_and_a_flush_writes_it_exactly_once(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    champion = fake_champion(tmp_path / "submission")
    run_id, error = queue_or_log(down, outbox, subnet, 0, champion=champion)
    assert run_id is None
    assert error is not None and error.startswith("NotADirectoryError")  # the tracking lock
    queued = TrackingOutbox(outbox)
    assert queued.pending() == [(subnet, 0)]
    job = queued.load(subnet, 0)
    assert job.last_error == error
    assert job.emission_rao == EMISSION_RAO
    assert json.loads((queued.job_dir(subnet, 0) / JOB_FILE).read_text())["emission_rao"] == (
        EMISSION_RAO
    )
    assert job.metagraph.equals(epoch_kwargs(subnet, 0)["metagraph"])
    assert job.weights is not None and job.weights.equals(epoch_kwargs(subnet, 0)["weights"])
    assert job.champion is not None and job.champion.digest == champion.digest
    assert job.champion.model_path.read_bytes() == champion.model_path.read_bytes()
    assert job.champion.model_path.parent.parent == queued.job_dir(subnet, 0)  # a copy

    assert flush(down, outbox) == []  # still down: kept, attempt counted
    assert queued.load(subnet, 0).attempts == 1

    written = flush(store, outbox)
    assert len(written) == 1
    assert queued.pending() == []
    (run,) = epoch_runs(store[0], subnet, 0, view=ViewType.ALL)
    assert run.info.run_id == written[0]
    assert run.data.tags[STATUS_TAG] == STATUS_COMPLETE
    assert run.data.tags["taoflow.ledger_batch_hash"] == "batch-00"
    assert run.data.params["yuma.kappa"] == "0.5"
    assert run.data.metrics["emission_tao"] == EMISSION_RAO / 1e9  # the job kept it in rao
    client = MlflowClient(tracking_uri=store[0], registry_uri=store[0])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "metagraph.parquet",
        "weights.parquet",
        "plots",
        "champion",
    }
    champion_version = current_champion(client, subnet=subnet)
    assert champion_version is not None and champion_version.run_id == run.info.run_id

    assert flush(store, outbox) == []  # nothing left, nothing written twice
    assert len(epoch_runs(store[0], subnet, 0, view=ViewType.ALL)) == 1


def test_create_run_failure_is_queued_not_raised(
    store: tuple[str, Path], subnet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = tmp_path / "outbox"

    def unavailable(self: MlflowClient, *args: object, **kwargs: object) -> None:
        raise MlflowException("tracking server unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "create_run", unavailable)
        assert queue_or_log(store, outbox, subnet, 5) == (
            None,
            "MlflowException: tracking server unavailable",
        )
    assert TrackingOutbox(outbox).pending() == [(subnet, 5)]
    (run_id,) = flush(store, outbox)
    (run,) = epoch_runs(store[0], subnet, 5)
    assert run.info.run_id == run_id
    assert TrackingOutbox(outbox).pending() == []


def test_a_run_left_unfinished_by_the_outage_is_replaced_on_flush(
    store: tuple[str, Path], subnet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = tmp_path / "outbox"

    def crash(self: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
        raise MlflowException("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_terminated", crash)
        run_id, error = queue_or_log(store, outbox, subnet, 1)
    assert run_id is None and error == "MlflowException: database is locked"
    (unfinished,) = epoch_runs(store[0], subnet, 1)
    assert unfinished.data.tags[STATUS_TAG] != STATUS_COMPLETE

    (written,) = flush(store, outbox)
    (run,) = epoch_runs(store[0], subnet, 1)
    assert run.info.run_id == written != unfinished.info.run_id
    assert run.data.tags[STATUS_TAG] == STATUS_COMPLETE


def test_flush_goes_in_epoch_order_and_is_bounded(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    for epoch in (2, 0, 1):
        assert queue_or_log(down, outbox, subnet, epoch)[0] is None
    assert TrackingOutbox(outbox).pending() == [(subnet, 0), (subnet, 1), (subnet, 2)]

    assert flush(down, outbox, consecutive_failures_max=2) == []
    attempts = [TrackingOutbox(outbox).load(subnet, e).attempts for e in (0, 1, 2)]
    assert attempts == [1, 1, 0]  # stopped after two failures in a row

    first = flush(store, outbox, max_jobs=2)
    assert TrackingOutbox(outbox).pending() == [(subnet, 2)]
    epochs = [
        MlflowClient(tracking_uri=store[0]).get_run(r).data.tags["taoflow.epoch"] for r in first
    ]
    assert epochs == ["0", "1"]
    assert len(flush(store, outbox)) == 1
    assert TrackingOutbox(outbox).pending() == []


def test_success_drops_a_stale_queued_copy_and_flushes_the_rest(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queue_or_log(down, outbox, subnet, 0)
    queue_or_log(down, outbox, subnet, 1)
    run_id, error = queue_or_log(store, outbox, subnet, 1)
    assert run_id is not None and error is None
    assert TrackingOutbox(outbox).pending() == []
    assert len(epoch_runs(store[0], subnet, 0)) == 1
    assert [r.info.run_id for r in epoch_runs(store[0], subnet, 1)] == [run_id]


def test_requeueing_an_epoch_replaces_its_job(
    down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queue_or_log(down, outbox, subnet, 0, params={"round": 1})
    queue_or_log(down, outbox, subnet, 0, params={"round": 2, "kappa": (0.5, 1)})
    queued = TrackingOutbox(outbox)
    assert queued.pending() == [(subnet, 0)]
    assert queued.load(subnet, 0).params == {"round": 2, "kappa": "(0.5, 1)"}
    leftovers = [p.name for p in queued.job_dir(subnet, 0).parent.iterdir()]
    assert leftovers == ["0"]  # no staging or trash directories left behind


def test_a_second_flush_does_not_run_while_one_holds_the_lock(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queue_or_log(down, outbox, subnet, 0)
    with TrackingOutbox(outbox).flush_lock() as held:
        assert held
        assert flush(store, outbox) == []
    assert len(flush(store, outbox)) == 1


def test_odd_subnet_names_get_safe_reversible_directories(tmp_path: Path) -> None:
    for name in ("digits", "a/b c", "..", "ünïcode", ".hidden"):
        directory = subnet_dir_name(name)
        assert "/" not in directory and directory not in {".", ".."}
        assert not directory.startswith(".")
        assert subnet_from_dir_name(directory) == name
    outbox = TrackingOutbox(tmp_path)
    assert outbox.job_dir("../escape", 3).resolve().is_relative_to(tmp_path.resolve())


def test_unreadable_job_is_left_in_place(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queue_or_log(down, outbox, subnet, 0)
    queue_or_log(down, outbox, subnet, 1)
    queued = TrackingOutbox(outbox)
    (queued.job_dir(subnet, 0) / JOB_FILE).write_text(json.dumps({"format": 99}))
    written = flush(store, outbox)
    assert len(written) == 1
    assert queued.pending() == [(subnet, 0)]


def test_jobs_failing_for_their_own_reasons_do_not_stop_the_flush(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queued = TrackingOutbox(outbox)
    for epoch in range(4):
        champion = fake_champion(tmp_path / f"submission{epoch}", score=0.1 * epoch)
        queue_or_log(down, outbox, subnet, epoch, champion=champion)
        if epoch < 3:  # corrupt the queued copy: its digest no longer matches
            (queued.job_dir(subnet, epoch) / "champion" / "model.safetensors").write_bytes(b"x")
    written = flush(store, outbox, consecutive_failures_max=2)
    assert len(written) == 1
    assert queued.pending() == [(subnet, 0), (subnet, 1), (subnet, 2)]
    assert queued.load(subnet, 0).last_error.startswith("ChampionIntegrityError")


def test_a_job_queued_by_the_previous_format_is_read_and_written(
    store: tuple[str, Path], down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queue_or_log(down, outbox, subnet, 0)
    queued = TrackingOutbox(outbox)
    path = queued.job_dir(subnet, 0) / JOB_FILE
    document = json.loads(path.read_text())
    del document["emission_rao"]
    document.update(format=1, aggregates={"emission_tao": 82.000000007, "best_score": 0.9})
    path.write_text(json.dumps(document))
    assert queued.load(subnet, 0).emission_rao == 82_000_000_007

    (run_id,) = flush(store, outbox)
    metrics = MlflowClient(tracking_uri=store[0]).get_run(run_id).data.metrics
    assert metrics["emission_tao"] == 82.000000007
    assert "best_score" not in metrics  # the old figures are recomputed, not copied


def test_a_job_with_a_bad_emission_is_unreadable(
    down: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    queue_or_log(down, outbox, subnet, 0)
    queued = TrackingOutbox(outbox)
    path = queued.job_dir(subnet, 0) / JOB_FILE
    for bad in (-1, 1.5, "82", None):
        document = json.loads(path.read_text())
        document["emission_rao"] = bad
        path.write_text(json.dumps(document))
        with pytest.raises(OutboxJobUnreadable, match="emission_rao must be a non-negative int"):
            queued.load(subnet, 0)
