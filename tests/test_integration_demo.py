"""End to end: the demo network for 2 epochs in a temporary home, through the real stack.

Runs ``taoflow demo`` as a user would (a subprocess, Prefect's local API, a Dask LocalCluster,
DuckDB, the Arrow ledger, MLflow on SQLite), then checks each store independently.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.ledger.emission import emission_for_blocks
from taoflow.ledger.schema import Kind, table_to_txs
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.tasks.artifact_store import locate
from taoflow.tasks.models.artifacts import load_submission
from taoflow.tasks.models.families import FamilyLimits

pytestmark = pytest.mark.integration

EPOCHS = 2
DEMO_TIMEOUT_S = 600


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["TAOFLOW_HOME"] = str(home)
    return env


def taoflow(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args, "--home", str(home)],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=check,
    )


@pytest.fixture(scope="module")
def network(demo_home: Path) -> Path:
    """The session's demo network (tests/conftest.py), before this module adds an epoch."""
    ledger = Ledger(demo_home / "ledger")
    assert [r.epochs for r in ledger.records() if r.epochs] == [("digits/0",), ("digits/1",)]
    return demo_home


def epoch_batches(ledger: Ledger) -> list[tuple[int, list]]:
    return [(r.batch_no, table_to_txs(ledger.read_table(r))) for r in ledger.records() if r.epochs]


def test_ledger_holds_exactly_the_scheduled_epochs(network: Path) -> None:
    ledger = Ledger(network / "ledger")
    batches = epoch_batches(ledger)
    assert len(batches) == EPOCHS
    # Replay batch by batch: each epoch pays exactly the schedule given the issuance before it.
    state = LedgerState()
    epoch_batch_nos = {b for b, _ in batches}
    for record in ledger.records():
        txs = table_to_txs(ledger.read_table(record))
        if record.batch_no in epoch_batch_nos:
            marker = next(t for t in txs if t.kind == Kind.EPOCH)
            tempo = state.subnets[marker.subnet].config.tempo_blocks
            scheduled = emission_for_blocks(issued_rao=state.issued_rao, blocks=tempo)
            paid = sum(t.amount_rao for t in txs if t.kind.value.startswith("emission_"))
            assert paid == marker.amount_rao == scheduled > 0
            assert marker.payload_dict()["unissued_rao"] == 0
        for tx in txs:
            state.apply(tx)
        state.check_supply()
    assert ledger.verify().ok


def test_cli_verify_and_supply(network: Path) -> None:
    assert taoflow(network, "ledger", "verify").returncode == 0
    report = json.loads(taoflow(network, "ledger", "verify", "--cross-check", "--json").stdout)
    # Every batch is signed by the home's writer key; every hosted validator co-signed the last
    # epoch (all four demo validators are hosted, so the signed share is all of their stake).
    assert report["writer_key"] is not None
    finality = report["finality"]["digits"]
    assert finality["epoch"] == EPOCHS - 1
    assert finality["signers"] == finality["validators"] == 4
    assert finality["signed_ppm"] == 1_000_000
    # The batch hashes MLflow and Prefect published when each epoch ran match the ledger.
    checked = report["cross_check"]
    assert checked["ok"] is True and checked["epochs"] == EPOCHS
    for source in ("MLflow", "Prefect"):
        assert checked["sources"][source]["error"] is None
        assert checked["sources"][source]["mismatches"] == []
        assert checked["sources"][source]["compared"] == EPOCHS
    supply = json.loads(taoflow(network, "ledger", "supply", "--json").stdout)
    held = supply["balances_rao"] + supply["stakes_rao"] + supply["locked_rao"]
    assert supply["issued_rao"] - supply["burned_rao"] == held
    assert supply["identity_holds"] is True


def full_test_accuracy(network: Path, digest: str, limits: FamilyLimits) -> float:
    import torch

    stored = locate(network / "artifacts", digest)
    model = load_submission(
        model_bytes=stored.model_path.read_bytes(),
        config_bytes=stored.config_path.read_bytes(),
        limits=limits,
    )
    features, labels = load_evaluation_set("digits").arrays("test")
    with torch.inference_mode():
        predictions = model(torch.from_numpy(features)).argmax(dim=1).numpy()
    return float(np.mean(predictions == labels))


def test_most_accurate_miner_earns_more_than_least_accurate(network: Path) -> None:
    ledger = Ledger(network / "ledger")
    state = ledger.state()
    config = state.subnets["digits"].config
    from taoflow.tasks.evaluate.stage import family_limits

    limits = family_limits(config, eval_set=load_evaluation_set("digits"))
    accuracy = {
        uid: full_test_accuracy(network, state.submissions[("digits", n.hotkey)].digest, limits)
        for uid, n in state.neurons["digits"].items()
        if n.role == "miner"
    }
    last = state.last_epoch["digits"]
    incentive = ledger.epoch_records("digits", last, names=("uids",))["uids"]["incentive"]
    incentive = incentive.to_pylist()
    best = max(accuracy, key=lambda uid: accuracy[uid])
    worst = min(accuracy, key=lambda uid: accuracy[uid])
    assert accuracy[best] > accuracy[worst]
    assert incentive[best] > incentive[worst]
    metagraph = json.loads(taoflow(network, "metagraph", "--subnet", "digits", "--json").stdout)
    by_uid = {row["uid"]: row for row in metagraph}
    assert by_uid[best]["emission_rao"] > by_uid[worst]["emission_rao"]


def test_mlflow_holds_one_run_per_epoch_and_per_hotkey_lines(network: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{network / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("subnet-digits")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`taoflow.epoch` != ''")
    assert sorted(r.data.tags["taoflow.epoch"] for r in runs) == [str(e) for e in range(EPOCHS)]
    (series,) = client.search_runs([experiment.experiment_id], "tags.`taoflow.series` = 'digits'")
    neurons = Ledger(network / "ledger").state().neurons["digits"]
    emission_keys = [k for k in series.data.metrics if k.startswith("emission_tao/uid_")]
    assert len(emission_keys) == len(neurons)  # one line per hotkey
    for key in emission_keys:
        steps = sorted(m.step for m in client.get_metric_history(series.info.run_id, key))
        assert steps == list(range(EPOCHS))
    for run in runs:
        assert run.data.metrics["neurons"] == len(neurons)
        assert run.data.params["evaluation_set"] == "digits"
        assert run.data.tags["taoflow.ledger_batch_hash"]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "metagraph.parquet" in artifacts


PREFECT_QUERY = """
import asyncio, json
from prefect.client.orchestration import get_client
async def main():
    async with get_client() as client:
        runs = await client.read_flow_runs()
        print(json.dumps([[r.name, r.state_type.value if r.state_type else None] for r in runs]))
asyncio.run(main())
"""


def test_prefect_recorded_the_completed_flow_runs(network: Path) -> None:
    env = clean_env(network)
    env["PREFECT_HOME"] = str(network / "prefect")
    proc = subprocess.run(
        [sys.executable, "-c", PREFECT_QUERY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [state for _, state in runs].count("COMPLETED") == EPOCHS
    assert len(runs) == EPOCHS


def test_running_again_continues_and_never_pays_twice(network: Path) -> None:
    proc = taoflow(network, "demo", "--epochs", "1", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ledger = Ledger(network / "ledger")
    epochs = [r.epochs for r in ledger.records() if r.epochs]
    assert epochs == [("digits/0",), ("digits/1",), ("digits/2",)]
    assert ledger.verify().ok


def test_champion_is_registered_and_loads_without_pickle(network: Path) -> None:
    import torch

    from taoflow.tasks.evaluate.stage import family_limits
    from taoflow.tasks.registry import load_champion

    state = Ledger(network / "ledger").state()
    config = state.subnets["digits"].config
    limits = family_limits(config, eval_set=load_evaluation_set("digits"))
    model, tags = load_champion(
        tracking_uri=f"sqlite:///{network / 'mlflow.db'}", subnet="digits", limits=limits
    )
    uids = Ledger(network / "ledger").epoch_records("digits", state.last_epoch["digits"])["uids"]
    scores = [s for s in uids.column("score").to_pylist() if not math.isnan(s)]
    assert (
        float(tags["score"]) == pytest.approx(max(scores), abs=1e-6)
        or int(tags["epoch"]) < state.last_epoch["digits"]
    )
    features, labels = load_evaluation_set("digits").arrays("test")
    with torch.inference_mode():
        accuracy = float((model(torch.from_numpy(features)).argmax(1).numpy() == labels).mean())
    assert accuracy > 0.8
