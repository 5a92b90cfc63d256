"""MLflow tracking of an epoch: the experiment, epoch runs, the series run's lines, retries.

Uses a temporary SQLite tracking store shared by the module (one subnet per test keeps tests
independent). Pickle deserialisation is off (``tests/conftest.py``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from taoflow.tasks import track_plots, track_series
from taoflow.tasks.track import (
    STATUS_COMPLETE,
    STATUS_TAG,
    experiment_name,
    find_epoch_run,
    log_epoch,
    validator_agreement,
)
from taoflow.tasks.track_series import (
    EPOCH_METRICS,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    SERIES_TAG,
    epoch_metrics,
    lines_ui_path,
    series_key,
    ui_path,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEIGHTS_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
)
STAKE_RAO = {0: 3_000_000_000_000, 1: 1_000_000_000_000}
VALIDATOR_TRUST = {0: 0.9, 1: 0.5}
EXPECTED_AGREEMENT = (3 * 0.9 + 1 * 0.5) / 4
N_UIDS = 5
MINERS = (2, 3, 4)
EPOCHS = (0, 1, 2)
EMISSION_RAO = 82_000_000_000
_subnet_numbers = itertools.count()


def score(uid: int, epoch: int) -> float:
    return 0.5 + 0.1 * uid + 0.01 * epoch


def incentive(uid: int, epoch: int) -> float:
    return 0.1 * uid + 0.01 * epoch


def epoch_metagraph(epoch: int, n_uids: int = N_UIDS) -> pa.Table:
    """A metagraph like ``tasks.metagraph.build_metagraph``'s: validators 0 and 1, miners 2+
    (holding validator permits from epoch 1 on, as staked emission gives them)."""
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
                "score": None if validator else score(uid, epoch),
                "validator_permit": validator or epoch >= 1,  # miners' stake earns permits
                "active": True,
                "validator_trust": VALIDATOR_TRUST.get(uid, 0.0),
                "consensus": 0.0 if validator else 0.2 + 0.01 * uid,
                "incentive": 0.0 if validator else incentive(uid, epoch),
                "dividends": 0.5 if validator else 0.0,
                "emission_rao": emission_rao,
                "emission_tao": emission_rao / 1e9,
                "artifact_digest": None,
                "error": None,
            }
        )
    return pa.Table.from_pylist(rows)


def epoch_weights(n_uids: int = N_UIDS) -> pa.Table:
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
        "emission_rao": EMISSION_RAO + epoch,
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


def series_run_of(uri: str, subnet: str) -> Any:
    """The subnet's one series run (fails if there is none or more than one)."""
    client = client_for(uri)
    experiment = client.get_experiment_by_name(experiment_name(subnet))
    assert experiment is not None
    (run,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{SERIES_TAG}` = '{subnet}'",
        run_view_type=ViewType.ALL,
    )
    return run


def expected_series_keys() -> set[str]:
    keys = {f"aggregate/{name}" for name in EPOCH_METRICS}
    for uid in range(N_UIDS):
        names = track_series.VALIDATOR_SERIES if uid in STAKE_RAO else track_series.MINER_SERIES
        keys |= {series_key(name, uid=uid, hotkey=f"hotkey-{uid}") for name in names}
    return keys


def points(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_three_epochs_make_a_training_experiment_epoch_runs_and_lines(
    store: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    uri = store[0]
    run_ids = [log(store, subnet, epoch) for epoch in EPOCHS]
    client = client_for(uri)
    experiment = client.get_experiment_by_name(experiment_name(subnet))
    assert experiment is not None
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    series = series_run_of(uri, subnet)
    assert series.info.run_name == f"{subnet} · network"
    assert series.info.status == "FINISHED"

    for epoch, run_id in zip(EPOCHS, run_ids, strict=True):
        run = client.get_run(run_id)
        assert run.info.run_name == f"epoch {epoch}"
        assert run.data.tags["mlflow.parentRunId"] == series.info.run_id
        assert run.data.metrics == {
            "neurons": 5.0,
            "validator_permits": 2.0 if epoch == 0 else 5.0,
            "models_evaluated": 3.0,
            "models_rejected": 0.0,
            "score_mean": pytest.approx(sum(score(u, epoch) for u in MINERS) / 3),
            "score_best": pytest.approx(score(4, epoch)),
            "incentive_top": pytest.approx(incentive(4, epoch)),
            "validator_agreement": pytest.approx(EXPECTED_AGREEMENT),
            "emission_tao": (EMISSION_RAO + epoch) / 1e9,
        }
        assert {m.step for m in client.get_metric_history(run_id, "score_best")} == {epoch}
        local = Path(client.download_artifacts(run_id, "metagraph.csv", str(tmp_path / str(epoch))))
        table = pa_csv.read_csv(local)
        assert table.column("uid").to_pylist() == list(range(N_UIDS))  # one row per uid
        assert table.column("hotkey").to_pylist() == [f"hotkey-{u}" for u in range(N_UIDS)]
        assert table.column_names[:4] == ["uid", "role", "score", "incentive"]
        assert "epoch" not in table.column_names  # the run is the epoch
        assert table.column("score").to_pylist()[2:] == [round(score(u, epoch), 6) for u in MINERS]

    assert set(client.get_run(series.info.run_id).data.metrics) == expected_series_keys()
    for key in expected_series_keys():
        assert [step for step, _ in points(client, series.info.run_id, key)] == [0, 1, 2], key
    line = points(client, series.info.run_id, "incentive/uid_0004-hotkey4")
    assert line == [(e, pytest.approx(incentive(4, e))) for e in EPOCHS]
    assert points(client, series.info.run_id, "aggregate/score_best") == [
        (e, pytest.approx(score(4, e))) for e in EPOCHS
    ]


def test_epoch_runs_hold_params_tags_and_artifacts(
    store: tuple[str, Path], subnet: str, tmp_path: Path
) -> None:
    uri = store[0]
    run_id = log(store, subnet, 1)
    client = client_for(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["tempo_blocks"] == "10"
    assert run.data.params["yuma.kappa"] == "0.5"
    assert run.data.tags["taoflow.ledger_batch_hash"] == "batch-01"
    assert run.data.tags["taoflow.prefect_flow_run_id"] == "flow-run-1"
    assert run.data.tags["taoflow.epoch"] == "1"
    assert run.data.tags["taoflow.run_key"] == f"{subnet}/1"
    assert run.data.tags[STATUS_TAG] == STATUS_COMPLETE
    assert run.data.tags["mlflow.note.content"].startswith(
        f"**{subnet}**, epoch 1: 3 model(s) evaluated, 0 rejected, best score 0.9100; "
        "82.000000001 τ emitted, 5 uids."
    )

    top = {a.path for a in client.list_artifacts(run_id)}
    assert top == {"metagraph.csv", "metagraph.parquet", "weights.parquet", "plots"}
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {
        "plots/weights_vs_consensus.png",
        "plots/emission_by_uid.png",
        "plots/score_distribution.png",
    }
    local = Path(client.download_artifacts(run_id, "", str(tmp_path)))
    for png in plots:
        data = (local / png).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) < 100_000
    assert pq.read_table(local / "weights.parquet").equals(epoch_weights())
    assert pq.read_table(local / "metagraph.parquet").equals(epoch_metagraph(1))


def test_logging_an_epoch_twice_adds_no_run_and_no_point(
    store: tuple[str, Path], subnet: str
) -> None:
    uri = store[0]
    first = log(store, subnet, 0)
    again = log(store, subnet, 0)
    assert again == first
    assert len(epoch_runs(uri, subnet, 0, view=ViewType.ALL)) == 1
    client = client_for(uri)
    series_id = series_run_of(uri, subnet).info.run_id
    for key in expected_series_keys():
        assert [step for step, _ in points(client, series_id, key)] == [0], key
    assert len(client.get_metric_history(first, "score_best")) == 1
    experiment = client.get_experiment_by_name(experiment_name(subnet))
    assert experiment is not None
    assert find_epoch_run(client, experiment_id=experiment.experiment_id, epoch=0) == first
    assert find_epoch_run(client, experiment_id=experiment.experiment_id, epoch=1) is None


def test_epochs_logged_late_and_out_of_order_give_one_line(
    store: tuple[str, Path], subnet: str
) -> None:
    for epoch in (2, 0, 1, 0, 2):
        log(store, subnet, epoch)
    client = client_for(store[0])
    series_id = series_run_of(store[0], subnet).info.run_id
    assert points(client, series_id, "score/uid_0003-hotkey3") == [
        (e, pytest.approx(score(3, e))) for e in EPOCHS
    ]


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
    client = client_for(uri)
    assert client.get_run(crashed.info.run_id).info.lifecycle_stage == "deleted"
    series_id = series_run_of(uri, subnet).info.run_id
    for key in expected_series_keys():  # written by the crashed try, not written again
        assert [step for step, _ in points(client, series_id, key)] == [3], key


def test_a_crash_halfway_through_the_series_points_leaves_no_duplicate(
    store: tuple[str, Path], subnet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = store[0]
    log(store, subnet, 0)
    series_id = series_run_of(uri, subnet).info.run_id
    real_log_batch = MlflowClient.log_batch
    series_batches: list[int] = []

    def crash_on_second_series_batch(self: MlflowClient, run_id: str, **kwargs: Any) -> None:
        if run_id == series_id and kwargs.get("metrics"):
            series_batches.append(len(kwargs["metrics"]))
            if len(series_batches) == 2:
                raise MlflowException("simulated crash between two batches of points")
        real_log_batch(self, run_id, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(track_series, "METRICS_PER_CALL_MAX", 4)
        patch.setattr(MlflowClient, "log_batch", crash_on_second_series_batch)
        with pytest.raises(MlflowException, match="between two batches"):
            log(store, subnet, 1)
    client = client_for(uri)
    written = [k for k in expected_series_keys() if len(points(client, series_id, k)) == 2]
    assert len(written) == series_batches[0] == 4  # the first batch landed, the second did not

    log(store, subnet, 1)
    for key in expected_series_keys():
        assert [step for step, _ in points(client, series_id, key)] == [0, 1], key
    assert len(epoch_runs(uri, subnet, 1)) == 1


def test_without_weights_there_is_no_weights_file_and_no_weights_plot(
    store: tuple[str, Path], subnet: str
) -> None:
    uri, artifacts_dir = store
    kwargs = epoch_kwargs(subnet, 0)
    del kwargs["weights"]
    run_id = log_epoch(tracking_uri=uri, artifacts_dir=artifacts_dir, **kwargs)
    client = client_for(uri)
    top = {a.path for a in client.list_artifacts(run_id)}
    assert "weights.parquet" not in top
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/emission_by_uid.png", "plots/score_distribution.png"}


def test_an_existing_experiment_is_marked_as_model_training(
    store: tuple[str, Path], subnet: str
) -> None:
    uri, artifacts_dir = store
    client = client_for(uri)
    experiment_id = client.create_experiment(
        experiment_name(subnet), artifact_location=(artifacts_dir / subnet).as_uri()
    )
    log(store, subnet, 0)
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert f"**{subnet} · network**" in experiment.tags["mlflow.note.content"]


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


def test_epoch_metrics_count_rejected_models_and_leave_out_what_is_undefined() -> None:
    graph = epoch_metagraph(0)
    errors = [None, None, "unreadable: bad header", None, None]
    graph = graph.set_column(graph.schema.get_field_index("error"), "error", pa.array(errors))
    scores = [None, None, 0.0, score(3, 0), score(4, 0)]
    graph = graph.set_column(graph.schema.get_field_index("score"), "score", pa.array(scores))
    figures = epoch_metrics(graph, emission_rao=1_500_000_000)
    assert figures["models_evaluated"] == 2.0
    assert figures["models_rejected"] == 1.0
    assert figures["score_mean"] == pytest.approx((score(3, 0) + score(4, 0)) / 2)
    assert figures["emission_tao"] == 1.5

    nothing = graph.set_column(
        graph.schema.get_field_index("score"), "score", pa.array([None] * 5, pa.float64())
    ).set_column(8, "validator_permit", pa.array([False] * 5))
    figures = epoch_metrics(nothing, emission_rao=0)
    assert set(EPOCH_METRICS) - set(figures) == {"score_mean", "score_best", "validator_agreement"}
    assert list(figures) == [name for name in EPOCH_METRICS if name in figures]


def test_series_keys_and_ui_links() -> None:
    hotkey = "5a4d0c1e" + "ab" * 28
    assert series_key("incentive", uid=7, hotkey=hotkey) == "incentive/uid_0007-5a4d0c1e"
    assert series_key("score", uid=12, hotkey="a/b c:d-e.f_g") == "score/uid_0012-abcdefg"
    assert series_key("score", uid=1, hotkey="") == "score/uid_0001-none"
    assert ui_path(experiment_id="3") == "/#/experiments/3?workflowType=machine_learning"
    assert ui_path(experiment_id="3", run_id="ab12") == (
        "/#/experiments/3/runs/ab12?workflowType=machine_learning"
    )
    keys = ["incentive/uid_0003-bb", "incentive/uid_0002-aa"]
    path = lines_ui_path(experiment_id="3", run_id="ab12", keys=keys)
    route, _, query = path.partition("?")
    assert route == "/#/metric/incentive%2Fuid_0002-aa"
    fields = dict(parse_qsl(query))
    assert json.loads(fields["plot_metric_keys"]) == sorted(keys)
    assert json.loads(fields["runs"]) == ["ab12"] and json.loads(fields["experiments"]) == ["3"]
    assert fields["workflowType"] == "machine_learning" and fields["x_axis"] == "step"
    with pytest.raises(ValueError, match="at least one metric key"):
        lines_ui_path(experiment_id="3", run_id="ab12", keys=[])
