"""`taoflow up` for real: its own ports, its record, reuse by a one-shot `epoch run`, its children.

One `taoflow up` (Prefect, MLflow, the explorer, a one-worker Dask cluster) serves a genesis home
for the module; the last test stops it with Ctrl-C. Everything binds to 127.0.0.1 on free ports.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_deployment_e2e import GENESIS, base_env, free_port

from taoflow import services
from taoflow.services import ServiceError, UpPlan
from taoflow.settings import Settings

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 10


@dataclass(frozen=True)
class Up:
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    stdout: Path
    ports: dict[str, int]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("up")
    home = root / "home"
    env = base_env(home)
    subprocess.run(
        [sys.executable, "-c", GENESIS, str(home)], env=env, check=True, timeout=START_TIMEOUT_S
    )
    ports = {
        "prefect": free_port(),
        "mlflow": free_port(),
        "dask": free_port(),
        "dashboard": free_port(),
        "explorer": free_port(),
    }
    stdout = root / "up.out"
    with stdout.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "taoflow.cli", "up", "--home", str(home)),
                *("--prefect-port", str(ports["prefect"]), "--mlflow-port", str(ports["mlflow"])),
                *("--dask-port", str(ports["dask"])),
                *("--dask-dashboard-port", str(ports["dashboard"]), "--dask-workers", "1"),
                *("--explorer-port", str(ports["explorer"])),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (home / "services.json").exists():
            assert process.poll() is None, stdout.read_text()
            assert time.monotonic() < deadline, f"up not ready in {START_TIMEOUT_S} s"
            time.sleep(0.5)
        yield Up(home, env, process, stdout, ports)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_prefect_ui_is_told_the_api_url_of_its_own_port(up: Up) -> None:
    port = up.ports["prefect"]
    settings = get_json(f"http://127.0.0.1:{port}/ui-settings")
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"


def test_up_records_its_services_and_prints_the_exports(up: Up) -> None:
    record = json.loads((up.home / "services.json").read_text())
    assert record == {
        "format": 1,
        "pid": up.process.pid,
        "home": str(up.home),
        "prefect_api_url": f"http://127.0.0.1:{up.ports['prefect']}/api",
        "mlflow_tracking_uri": f"http://127.0.0.1:{up.ports['mlflow']}",
        "dask_address": f"tcp://127.0.0.1:{up.ports['dask']}",
        "dask_dashboard_url": f"http://127.0.0.1:{up.ports['dashboard']}",
        "explorer_url": f"http://127.0.0.1:{up.ports['explorer']}",
    }
    lines = up.stdout.read_text().splitlines()
    assert f"Explorer: http://127.0.0.1:{up.ports['explorer']}/" in lines
    assert f"export PREFECT_API_URL=http://127.0.0.1:{up.ports['prefect']}/api" in lines
    assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{up.ports['mlflow']}" in lines


def test_the_explorer_serves_the_network_and_refuses_writes(up: Up) -> None:
    url = f"http://127.0.0.1:{up.ports['explorer']}/api/network"
    network = get_json(url)
    assert isinstance(network, dict) and network
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S)
    assert caught.value.code == 405


def test_a_second_up_on_the_same_home_is_refused(up: Up) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "up", "--home", str(up.home)],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: taoflow up already runs for {up.home} (pid {up.process.pid}); stop it first"
    ]


def scheduler_task_prefixes(address: str) -> list[str]:
    import distributed

    with distributed.Client(address, timeout=REQUEST_TIMEOUT_S) as client:
        return list(
            client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        )


def test_a_one_shot_epoch_run_reuses_ups_prefect_server_and_dask_cluster(up: Up) -> None:
    dask_address = f"tcp://127.0.0.1:{up.ports['dask']}"
    assert scheduler_task_prefixes(dask_address) == []
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "epoch", "run", "--home", str(up.home), "--json"],
        env=up.env,  # no PREFECT_API_URL, no --dask-address: found through services.json
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    prefect_api_url = f"http://127.0.0.1:{up.ports['prefect']}/api"
    assert (
        f"using taoflow up's Prefect server {prefect_api_url} and Dask cluster {dask_address}"
        in proc.stderr.splitlines()
    )
    result = json.loads(proc.stdout)
    flow_run = get_json(f"{prefect_api_url}/flow_runs/{result['flow_run_id']}")
    assert flow_run["state_type"] == "COMPLETED"
    assert scheduler_task_prefixes(dask_address) != []  # the evaluation ran on up's workers


def test_ctrl_c_stops_every_service_and_removes_the_record(up: Up) -> None:
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=STOP_TIMEOUT_S) == 0
    assert up.stdout.read_text().splitlines()[-1] == "stopped"
    assert not (up.home / "services.json").exists()
    assert [port for port in up.ports.values() if services.port_problem(port)] == []


def test_a_child_that_dies_is_named_and_the_others_are_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.load(tmp_path / "home")
    settings.home.mkdir()
    plan = UpPlan(
        prefect_port=None,
        mlflow_port=None,
        dask_port=free_port(),
        dask_dashboard_port=free_port(),
        dask_workers=1,
    )
    supervise = services.supervise
    seen: list[str] = []

    def kill_the_workers_then_supervise(
        started: list[services.Service], *, max_wait_s: float | None = None
    ) -> None:
        seen.extend(service.name for service in started)
        assert settings.services_file.exists()
        started[-1].process.send_signal(signal.SIGKILL)
        supervise(started, max_wait_s=STOP_TIMEOUT_S)

    monkeypatch.setattr(services, "supervise", kill_the_workers_then_supervise)
    with pytest.raises(ServiceError) as caught:
        services.up(settings, plan=plan, report=lambda line: None)
    assert seen == ["Dask scheduler", "Dask workers (1)"]
    log = settings.service_logs_dir / "dask-workers.log"
    assert str(caught.value) == (
        f"Dask workers (1) exited with code {-signal.SIGKILL}; its output: {log}; "
        "stopped the others"
    )
    assert not settings.services_file.exists()
    assert services.port_problem(plan.dask_port) is None  # the scheduler was stopped
