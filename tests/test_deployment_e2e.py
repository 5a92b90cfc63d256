"""End to end through a Prefect deployment: services up, epoch triggered with parameters.

Starts a Prefect server and `taoflow serve` (real deployments), triggers one epoch through the
deployment with parameters, then checks the ledger batch, the MLflow run (params, metrics,
artifacts, tags, registry alias) and the Prefect artifacts. The deployment's form has one
described, validated parameter (the subnet); a run that names a home is refused and writes
nothing. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from net_helpers import free_port

from taoflow.ledger.store import Ledger

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(
        {
            "TAOFLOW_HOME": str(home),
            "PREFECT_HOME": str(home / "prefect"),
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} not healthy in {START_TIMEOUT_S} s")


GENESIS = """
import sys
from pathlib import Path
from taoflow.settings import Settings
settings = Settings.load(sys.argv[1]); settings.apply_environment()
from taoflow.ledger.store import Ledger
from taoflow.network import DEMO_PASSPHRASE, ensure_genesis
ensure_genesis(Ledger.open(settings.ledger_dir), artifacts_root=settings.artifacts_dir,
               wallets_root=settings.wallets_dir, passphrase=DEMO_PASSPHRASE)
"""

TRIGGER = """
import json, sys
from prefect.deployments import run_deployment
try:
    run = run_deployment(name="epoch/epoch-digits", parameters=json.loads(sys.argv[1]),
                         timeout=float(sys.argv[2]))
except Exception as exc:
    print(json.dumps({"refused": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
print(json.dumps({"id": str(run.id), "state": run.state_type.value if run.state_type else None,
                  "parameters": run.parameters, "name": run.name}))
"""

DEPLOYMENT = """
import asyncio, json
from prefect.client.orchestration import get_client
async def main():
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("epoch/epoch-digits")
        print(json.dumps({"schema": deployment.parameter_openapi_schema,
                          "parameters": deployment.parameters,
                          "enforced": deployment.enforce_parameter_schema}))
asyncio.run(main())
"""

ARTIFACTS = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
async def main():
    async with get_client() as client:
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[sys.argv[1]])))
        print(json.dumps([[a.key, a.type] for a in arts]))
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    home = tmp_path_factory.mktemp("deploy") / "home"
    env = base_env(home)
    subprocess.run(
        [sys.executable, "-c", GENESIS, str(home)], env=env, check=True, timeout=START_TIMEOUT_S
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [server]
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health", server)
        env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taoflow.cli",
                "serve",
                "--home",
                str(home),
                "--block-time-s",
                "100000",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(serve)
        yield home, env
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def python_json(script: str, *args: str, env: dict[str, str], timeout_s: float) -> Any:
    """Run ``script`` with ``args``; its last stdout line as JSON (``None`` if it failed)."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def registered_deployment(env: dict[str, str]) -> dict[str, Any]:
    """The deployment once `taoflow serve` has registered it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = python_json(DEPLOYMENT, env=env, timeout_s=START_TIMEOUT_S)
        if found is not None:
            return dict(found)
        time.sleep(2)
    raise AssertionError(f"deployment epoch/epoch-digits not registered in {START_TIMEOUT_S} s")


def trigger(env: dict[str, str], parameters: dict[str, Any]) -> dict[str, Any]:
    run = python_json(
        TRIGGER,
        json.dumps(parameters),
        str(RUN_TIMEOUT_S),
        env=env,
        timeout_s=RUN_TIMEOUT_S + 60,
    )
    assert run is not None
    return dict(run)


def test_the_deployment_form_has_one_described_validated_parameter(
    served: tuple[Path, dict[str, str]],
) -> None:
    _, env = served
    deployment = registered_deployment(env)
    assert deployment["enforced"] is True
    assert deployment["parameters"] == {"subnet": "digits"}
    properties = deployment["schema"]["properties"]
    assert list(properties) == ["subnet"]
    assert properties["subnet"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert properties["subnet"]["description"].startswith("The subnet whose next epoch runs")


def test_a_deployment_run_naming_a_home_is_refused_and_writes_nothing(
    served: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    home, env = served
    registered_deployment(env)
    wrong = tmp_path / "wrong-home"
    batches_before = sorted((home / "ledger" / "batches").iterdir())
    run = trigger(env, {"subnet": "digits", "home": str(wrong)})
    assert run.get("state") != "COMPLETED", run
    assert "refused" in run or run.get("state") in {"FAILED", "CRASHED"}, run
    assert not wrong.exists()
    assert sorted((home / "ledger" / "batches").iterdir()) == batches_before


def test_epoch_through_a_deployment_with_parameters(served: tuple[Path, dict[str, str]]) -> None:
    home, env = served
    registered_deployment(env)
    run = trigger(env, {"subnet": "digits"})
    assert run.get("state") == "COMPLETED", run
    assert run["parameters"] == {"subnet": "digits"}
    assert run["name"] == "digits · epoch 0"

    ledger = Ledger(home / "ledger")
    epoch_records = [r for r in ledger.records() if r.epochs]
    assert [r.epochs for r in epoch_records] == [("digits/0",)]
    assert ledger.verify().ok

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("subnet-digits")
    assert experiment is not None
    (mlrun,) = client.search_runs(  # the epoch's run (the subnet may keep other runs)
        [experiment.experiment_id],
        filter_string=f"tags.`taoflow.prefect_flow_run_id` = '{run['id']}'",
    )
    assert mlrun.data.tags["taoflow.prefect_flow_run_id"] == run["id"]
    assert mlrun.data.tags["taoflow.ledger_batch_hash"] == epoch_records[0].batch_hash
    assert mlrun.data.params["subnet"] == "digits"
    assert mlrun.data.metrics  # which metrics: tests/test_track.py
    paths = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"metagraph.parquet", "weights.parquet"} <= paths
    plots = {a.path for a in client.list_artifacts(mlrun.info.run_id, "plots")}
    assert any(p.endswith(".png") for p in plots)
    version = client.get_model_version_by_alias("taoflow-digits", "champion")
    assert version.run_id == mlrun.info.run_id

    arts = subprocess.run(
        [sys.executable, "-c", ARTIFACTS, run["id"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    kinds = dict(json.loads(arts.stdout.strip().splitlines()[-1]))
    assert kinds.get("digits-metagraph") == "table"
    assert kinds.get("digits-summary") == "markdown"
