"""MLflow tracking of an epoch: params, per-uid metrics across runs, artifacts, tags, retries.

Uses a temporary SQLite tracking store shared by the module (one subnet per test keeps tests
independent). Pickle deserialisation is off (``tests/conftest.py``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from taoflow.tasks import track_plots
from taoflow.tasks.track import (
    STATUS_COMPLETE,
    STATUS_TAG,
    experiment_name,
    find_epoch_run,
    log_epoch,
    validator_agreement,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEIGHTS_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
)
STAKE_RAO = {0: 3_000_000_000_000, 1: 1_000_000_000_000}
VALIDATOR_TRUST = {0: 0.9, 1: 0.5}
EXPECTED_AGREEMENT = (3 * 0.9 + 1 * 0.5) / 4
_subnet_numbers = itertools.count()


def epoch_metagraph(epoch: int, n_uids: int = 5) -> pa.Table:
    """A metagraph like ``tasks.metagraph.build_metagraph``'s: validators 0 and 1, miners 2+."""
    rows = []
    for uid in range(n_uids):
        validator = uid in STAKE_RAO
        emission_rao = 1_000_000_000 * (uid + 1) + epoch
        rows.append(
            {
                "epoch": epoch,
                "uid": uid,
                "hotkey": f"hotkey-{uid}",
                "coldkey": f"coldkey-{uid}",
                "role": "validator" if validator else "miner",
                "stake_rao": STAKE_RAO.get(uid, 0),
                "stake_tao": STAKE_RAO.get(uid, 0) / 1e9,
                "score": None if validator else 0.5 + 0.1 * uid + 0.01 * epoch,
                "validator_permit": validator,
                "active": True,
                "validator_trust": VALIDATOR_TRUST.get(uid, 0.0),
                "consensus": 0.0 if validator else 0.2 + 0.01 * uid,
                "incentive": 0.0 if validator else 0.1 * uid + 0.01 * epoch,
                "dividends": 0.5 if validator else 0.0,
                "emission_rao": emission_rao,
                "emission_tao": emission_rao / 1e9,
                "artifact_digest": None,
                "error": None,
            }
        )
    return pa.Table.from_pylist(rows)


def epoch_weights(n_uids: int = 5) -> pa.Table:
    rows = [
        {"validator": v, "miner": m, "weight_u16": 1000 * (m + v + 1)}
        for v in STAKE_RAO
        for m in range(len(STAKE_RAO), n_uids)
    ]
    return pa.Table.from_pylist(rows, schema=WEIGHTS_SCHEMA)


def epoch_kwargs(subnet: str, epoch: int) -> dict[str, Any]:
    """``log_epoch``'s arguments for ``epoch`` (all but the URIs)."""
    return {
        "subnet": subnet,
        "epoch": epoch,
        "params": {"subnet": subnet, "epoch": epoch, "tempo_blocks": 10, "yuma.kappa": 0.5},
        "metagraph": epoch_metagraph(epoch),
        "aggregates": {"emission_tao": 1.0, "best_score": 0.9},
        "tags": {
            "taoflow.ledger_batch_hash": f"batch-{epoch:02d}",
            "taoflow.prefect_flow_run_id": f"flow-run-{epoch}",
        },
        "weights": epoch_weights(),
    }


def log(store: tuple[str, Path], subnet: str, epoch: int, **overrides: Any) -> str:
    uri, artifacts_dir = store
    kwargs = {**epoch_kwargs(subnet, epoch), **overrides}
    return log_epoch(tracking_uri=uri, artifacts_dir=artifacts_dir, **kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One SQLite store per test session (creating one costs seconds of migrations)."""
    return shared_store(tmp_path_factory)


def shared_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    home = tmp_path_factory.getbasetemp() / "track-mlflow"
    home.mkdir(exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}", home / "mlruns"


@pytest.fixture
def subnet() -> Iterator[str]:
    yield f"track{next(_subnet_numbers)}"


def client_for(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def epoch_runs(uri: str, subnet: str, epoch: int, *, view: int = ViewType.ACTIVE_ONLY) -> list:
    client = client_for(uri)
    experiment = client.get_experiment_by_name(experiment_name(subnet))
    assert experiment is not None
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`taoflow.epoch` = '{epoch}'",
        run_view_type=view,
    )


def test_logged_epochs_hold_params_metrics_artifacts_and_tags(
    store: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    uri = store[0]
    run_ids = [log(store, subnet, epoch) for epoch in (0, 1)]
    client = client_for(uri)
    run = client.get_run(run_ids[1])
    assert run.info.status == "FINISHED"
    assert run.data.params["tempo_blocks"] == "10"
    assert run.data.params["yuma.kappa"] == "0.5"
    assert run.data.tags["taoflow.ledger_batch_hash"] == "batch-01"
    assert run.data.tags["taoflow.prefect_flow_run_id"] == "flow-run-1"
    assert run.data.tags["taoflow.epoch"] == "1"
    assert run.data.tags[STATUS_TAG] == STATUS_COMPLETE
    for name in ("incentive", "dividends", "emission_tao", "validator_trust", "score"):
        assert f"{name}/uid_0004" in run.data.metrics
    assert "score/uid_0000" not in run.data.metrics  # validators have no score
    assert run.data.metrics["emission_tao"] == 1.0
    assert run.data.metrics["best_score"] == 0.9
    assert run.data.metrics["validator_agreement"] == pytest.approx(EXPECTED_AGREEMENT)

    # one point per epoch, at step = epoch, across the runs: the curve of uid 4's incentive
    history = sorted(
        (m.step, m.value)
        for run_id in run_ids
        for m in client.get_metric_history(run_id, "incentive/uid_0004")
    )
    assert history == [(0, pytest.approx(0.4)), (1, pytest.approx(0.41))]

    top = {a.path for a in client.list_artifacts(run_ids[1])}
    assert {"metagraph.parquet", "metagraph.json", "weights.parquet", "plots"} <= top
    plots = {a.path for a in client.list_artifacts(run_ids[1], "plots")}
    assert plots == {
        "plots/weights_vs_consensus.png",
        "plots/emission_by_uid.png",
        "plots/score_distribution.png",
    }
    local = Path(client.download_artifacts(run_ids[1], "", str(tmp_path)))
    for png in plots:
        data = (local / png).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) < 100_000
    assert pq.read_table(local / "weights.parquet").equals(epoch_weights())
    assert pq.read_table(local / "metagraph.parquet").equals(epoch_metagraph(1))
    assert json.loads((local / "metagraph.json").read_text())[4]["uid"] == 4


def test_retried_epoch_finds_its_run_and_logs_nothing(store: tuple[str, Path], subnet: str) -> None:
    uri = store[0]
    first = log(store, subnet, 0)
    again = log(store, subnet, 0)
    assert again == first
    assert len(epoch_runs(uri, subnet, 0, view=ViewType.ALL)) == 1
    client = client_for(uri)
    assert len(client.get_metric_history(first, "incentive/uid_0004")) == 1
    experiment = client.get_experiment_by_name(experiment_name(subnet))
    assert experiment is not None
    assert find_epoch_run(client, experiment_id=experiment.experiment_id, epoch=0) == first
    assert find_epoch_run(client, experiment_id=experiment.experiment_id, epoch=1) is None


def test_run_left_unfinished_by_a_crash_is_deleted_and_logged_again(
    store: tuple[str, Path], subnet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = store[0]

    def crash(self: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
        raise MlflowException("simulated crash before the run was marked complete")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_terminated", crash)
        with pytest.raises(MlflowException, match="simulated crash"):
            log(store, subnet, 3)
    (crashed,) = epoch_runs(uri, subnet, 3)
    assert crashed.data.tags[STATUS_TAG] == "logging"

    run_id = log(store, subnet, 3)
    assert run_id != crashed.info.run_id
    (active,) = epoch_runs(uri, subnet, 3)
    assert active.info.run_id == run_id
    assert active.data.tags[STATUS_TAG] == STATUS_COMPLETE
    assert client_for(uri).get_run(crashed.info.run_id).info.lifecycle_stage == "deleted"


def test_original_keyword_arguments_still_work_without_weights(
    store: tuple[str, Path], subnet: str
) -> None:
    uri, artifacts_dir = store
    kwargs = epoch_kwargs(subnet, 0)
    del kwargs["weights"]  # exactly the keyword arguments log_epoch had before
    kwargs["aggregates"] = {"emission_tao": 2.0, "validator_agreement": 0.25}
    run_id = log_epoch(tracking_uri=uri, artifacts_dir=artifacts_dir, **kwargs)
    client = client_for(uri)
    assert client.get_run(run_id).data.metrics["validator_agreement"] == 0.25  # caller's wins
    top = {a.path for a in client.list_artifacts(run_id)}
    assert "weights.parquet" not in top
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/emission_by_uid.png", "plots/score_distribution.png"}


def test_a_plot_that_fails_is_recorded_and_does_not_fail_the_run(
    store: tuple[str, Path], subnet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = store[0]

    def broken(*args: object) -> Path:
        raise ValueError("cannot draw")

    monkeypatch.setattr(track_plots, "emission_by_uid_png", broken)
    run_id = log(store, subnet, 0)
    run = client_for(uri).get_run(run_id)
    assert run.data.tags[STATUS_TAG] == STATUS_COMPLETE
    assert run.data.tags["taoflow.plot_error.emission_by_uid"] == "ValueError: cannot draw"


def test_validator_agreement_is_stake_weighted_validator_trust() -> None:
    assert validator_agreement(epoch_metagraph(0)) == pytest.approx(EXPECTED_AGREEMENT)
    no_validators = epoch_metagraph(0).set_column(8, "validator_permit", pa.array([False] * 5))
    assert validator_agreement(no_validators) is None
