"""Exactly-once MLflow tracking: crash after commit, backfill, concurrency, the user's MLflow.

A small real network (the demo genesis) commits epochs through the pipeline's own gather,
consensus and emit stages (called without Prefect and with fixed scores instead of Dask), and
skips tracking: that is the process dying right after the ledger commit. Every test then uses
its own MLflow store under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from taoflow.ledger.store import Ledger
from taoflow.settings import MLFLOW_DEFAULTED_ENV, Settings
from taoflow.tasks import shells
from taoflow.tasks.evaluate.stage import EvaluationOutcome
from taoflow.tasks.track import RUN_KEY_TAG, STATUS_COMPLETE, STATUS_TAG, experiment_name
from taoflow.tasks.track_reconcile import BACKFILLED_TAG, reconcile_tracking
from taoflow.tasks.track_series import EPOCH_METRICS, SERIES_TAG

SUBNET = "digits"
EPOCHS = 2
TRACKERS = 4
GATE_WAIT_S = 120.0
PROCESS_TIMEOUT_S = 300
CLI_TIMEOUT_S = 300


def _commit_epoch_without_tracking(ledger_dir: Path) -> None:
    """gather → fixed scores → consensus → emit (the commit), and nothing after it."""
    ctx = shells.gather.fn(ledger_dir, SUBNET)
    miners = [n.uid for n in ctx.neurons if n.role == "miner"]
    validators = [n.uid for n in ctx.neurons if n.role == "validator"]
    scores = {v: {m: 0.5 + 0.01 * m for m in miners} for v in validators}
    evaluation = EvaluationOutcome(scores=scores, errors={}, sample_size=8)
    outcome = shells.consensus.fn(ctx, evaluation)
    shells.emit.fn(ledger_dir, ctx, outcome, evaluation)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from taoflow.network import DEMO_PASSPHRASE, ensure_genesis

    settings = Settings.load(tmp_path_factory.mktemp("tracking") / "home")
    ledger = Ledger.open(settings.ledger_dir)
    ensure_genesis(
        ledger,
        artifacts_root=settings.artifacts_dir,
        wallets_root=settings.wallets_dir,
        passphrase=DEMO_PASSPHRASE,
    )
    for _ in range(EPOCHS):
        _commit_epoch_without_tracking(settings.ledger_dir)
    return settings.home


def _batch_hash_of(home: Path, epoch: int) -> str:
    key = f"{SUBNET}/{epoch}"
    return next(r.batch_hash for r in Ledger.open(home / "ledger").records() if key in r.epochs)


def _runs(uri: str, *, view: int = ViewType.ACTIVE_ONLY) -> list:
    """The experiment's epoch runs (not the series run)."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(SUBNET))
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], run_view_type=view)
    return [r for r in runs if SERIES_TAG not in r.data.tags]


def _series_steps(uri: str) -> dict[str, list[int]]:
    """Every key of the subnet's one series run → the steps of its points, sorted."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(SUBNET))
    assert experiment is not None
    (series,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{SERIES_TAG}` = '{SUBNET}'",
        run_view_type=ViewType.ALL,
    )
    return {
        key: sorted(m.step for m in client.get_metric_history(series.info.run_id, key))
        for key in series.data.metrics
    }


def _reconcile(home: Path, store: Path, **limits: int) -> object:
    return reconcile_tracking(
        ledger_dir=home / "ledger",
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        artifacts_dir=store / "mlruns",
        outbox_root=store / "outbox",
        **limits,
    )


def test_crash_after_commit_is_backfilled_once(home: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = _reconcile(home, tmp_path)
    assert report.backfilled == tuple(f"{SUBNET}/{e}" for e in range(EPOCHS))  # type: ignore[attr-defined]
    assert report.errors == () and report.remaining == 0  # type: ignore[attr-defined]
    runs = _runs(uri, view=ViewType.ALL)
    assert sorted(r.data.tags[RUN_KEY_TAG] for r in runs) == [
        f"{SUBNET}/{e}" for e in range(EPOCHS)
    ]
    for run in runs:
        epoch = int(run.data.tags["taoflow.epoch"])
        assert run.info.status == "FINISHED"
        assert run.data.tags[STATUS_TAG] == STATUS_COMPLETE
        assert run.data.tags[BACKFILLED_TAG] == "true"
        assert run.data.tags["taoflow.ledger_batch_hash"] == _batch_hash_of(home, epoch)
        assert run.data.params["epoch"] == str(epoch)
        assert set(run.data.metrics) <= set(EPOCH_METRICS)
        assert run.data.metrics["neurons"] == 14.0  # the demo genesis: 4 validators, 10 miners

    again = _reconcile(home, tmp_path)
    assert again.backfilled == () and again.flushed == ()  # type: ignore[attr-defined]
    assert len(_runs(uri, view=ViewType.ALL)) == EPOCHS


def test_reconcile_fills_the_missing_epochs_of_the_lines(home: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _reconcile(home, tmp_path, max_backfills=1)  # MLflow "down" for the later epochs
    assert first.backfilled == (f"{SUBNET}/0",)  # type: ignore[attr-defined]
    steps = _series_steps(uri)
    incentive_keys = [k for k in steps if k.startswith("incentive/uid_")]
    assert len(incentive_keys) == 10  # one line per miner hotkey
    assert set(map(tuple, steps.values())) == {(0,)}

    _reconcile(home, tmp_path)
    filled = _series_steps(uri)
    assert set(filled) == set(steps)
    assert set(map(tuple, filled.values())) == {tuple(range(EPOCHS))}
    _reconcile(home, tmp_path)
    assert _series_steps(uri) == filled  # nothing logged twice


def test_unfinished_run_of_a_dead_process_is_replaced_not_duplicated(
    home: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment(
        experiment_name(SUBNET), artifact_location=(tmp_path / "mlruns" / SUBNET).as_uri()
    )
    dead = client.create_run(
        experiment_id, tags={"taoflow.epoch": "0", STATUS_TAG: "logging", RUN_KEY_TAG: "digits/0"}
    )
    _reconcile(home, tmp_path)
    active = [r for r in _runs(uri) if r.data.tags["taoflow.epoch"] == "0"]
    assert len(active) == 1
    assert active[0].info.run_id != dead.info.run_id
    assert active[0].data.tags[STATUS_TAG] == STATUS_COMPLETE
    assert client.get_run(dead.info.run_id).info.lifecycle_stage == "deleted"


TRACKER = """
import json, sys, time
from pathlib import Path
from taoflow.tasks.track_reconcile import reconcile_tracking
home, store, gate = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
wait_s = float(sys.argv[4])
deadline = time.monotonic() + wait_s
while not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
report = reconcile_tracking(ledger_dir=home / "ledger", tracking_uri=f"sqlite:///{store}/mlflow.db",
                            artifacts_dir=store / "mlruns", outbox_root=store / "outbox")
print(json.dumps({"backfilled": list(report.backfilled), "errors": list(report.errors)}))
"""


def test_four_concurrent_trackers_make_one_run_per_epoch(home: Path, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TRACKER, str(home), str(tmp_path), str(gate), str(GATE_WAIT_S)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(TRACKERS)
    ]
    time.sleep(0.5)  # let them import; correctness does not depend on this
    gate.touch()
    outputs = []
    for proc in procs:
        out, errors = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        assert proc.returncode == 0, errors[-2000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert all(o["errors"] == [] for o in outputs)
    done = sorted(key for o in outputs for key in o["backfilled"])
    assert done == [f"{SUBNET}/{e}" for e in range(EPOCHS)]  # each epoch by exactly one tracker
    runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}", view=ViewType.ALL)
    assert sorted(r.data.tags[RUN_KEY_TAG] for r in runs) == done


def test_user_mlflow_tracking_uri_is_used_and_kept(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_uri = f"sqlite:///{tmp_path / 'user.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", user_uri)
    monkeypatch.delenv("TAOFLOW_MLFLOW_URI", raising=False)
    monkeypatch.delenv(MLFLOW_DEFAULTED_ENV, raising=False)
    settings = Settings.load(tmp_path / "other-home")
    assert settings.mlflow_tracking_uri == user_uri
    settings.apply_environment()
    assert os.environ["MLFLOW_TRACKING_URI"] == user_uri
    assert Settings.load(tmp_path / "other-home", mlflow_uri="sqlite:///x.db").mlflow_uri == (
        "sqlite:///x.db"
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("TAOFLOW_MLFLOW_URI", None)
    env.pop(MLFLOW_DEFAULTED_ENV, None)
    env["MLFLOW_TRACKING_URI"] = user_uri
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "track", "reconcile", "--home", str(home), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["tracking_uri"] == user_uri
    assert len(_runs(user_uri)) == EPOCHS
    assert not (home / "mlflow.db").exists()


def test_home_default_exported_for_one_home_is_not_taken_as_the_users(tmp_path: Path) -> None:
    for name in ("MLFLOW_TRACKING_URI", "TAOFLOW_MLFLOW_URI", MLFLOW_DEFAULTED_ENV):
        os.environ.pop(name, None)
    first = Settings.load(tmp_path / "a")
    first.apply_environment()
    second = Settings.load(tmp_path / "b")
    assert second.mlflow_uri is None
    assert second.mlflow_tracking_uri == f"sqlite:///{(tmp_path / 'b').resolve()}/mlflow.db"


# --- the CLI's temporary Prefect server dies with it ------------------------------------------

CLI_LIKE = """
import sys, time
from taoflow.settings import Settings
Settings.load(sys.argv[1]).apply_environment()
from taoflow.services import make_ephemeral_prefect_server_die_with_parent
make_ephemeral_prefect_server_die_with_parent()
from prefect import flow
from prefect.server.api.server import SubprocessASGIServer

@flow(persist_result=False)
def probe() -> int:
    return 1

probe()
pids = [s.server_process.pid for s in SubprocessASGIServer._instances.values() if s.server_process]
print(" ".join(map(str, pids)), flush=True)
time.sleep(float(sys.argv[2]))
"""
SERVER_GONE_WAIT_S = 60.0
CLI_LIKE_LIFETIME_S = 600.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it


@pytest.mark.parametrize("signum", [9, 15], ids=["SIGKILL", "SIGTERM"])
def test_ephemeral_prefect_server_dies_with_the_cli(tmp_path: Path, signum: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_LIKE, str(tmp_path / "home"), str(CLI_LIKE_LIFETIME_S)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the child exits after CLI_LIKE_LIFETIME_S
        pids = [int(p) for p in line.split()]
        assert len(pids) == 1 and _alive(pids[0]), f"no ephemeral server reported: {line!r}"
        proc.send_signal(signum)
        proc.wait(timeout=PROCESS_TIMEOUT_S)
        deadline = time.monotonic() + SERVER_GONE_WAIT_S
        while _alive(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pids[0]), f"ephemeral Prefect server {pids[0]} outlived the CLI"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
