"""`taoflow up`, its services record and its reuse, and the deployed epoch flow's parameters.

Fast tests: nothing here starts Prefect, MLflow or Dask (see ``test_services_up.py`` for that).
Every socket binds 127.0.0.1 on a port the OS picked.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import TAO, mint
from net_helpers import free_port

from taoflow import services
from taoflow.ledger.store import Ledger
from taoflow.services import (
    PortInUse,
    RunningServices,
    Service,
    ServiceError,
    UpPlan,
    check_plan,
    read_services_file,
    recorded_services,
    remove_services_file,
    reuse_running_services,
    supervise,
    write_services_file,
)
from taoflow.settings import HOME_ENV, NoNetwork, Settings

CLI_TIMEOUT_S = 120
CHILD_TIMEOUT_S = 30


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"workers": 1}' if self.path.endswith(".json") else b"true"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def healthy_port() -> Iterator[int]:
    """A port where every GET answers 200 (stands in for Prefect's and Dask's health routes)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def network_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    Ledger.open(home / "ledger").commit([mint("m", "alice", TAO)])
    return home


def record_for(
    settings: Settings, *, pid: int, prefect_port: int, dask_port: int
) -> RunningServices:
    return RunningServices(
        pid=pid,
        home=str(settings.home),
        prefect_api_url=f"http://127.0.0.1:{prefect_port}/api",
        mlflow_tracking_uri=None,
        dask_address="tcp://127.0.0.1:8786",
        dask_dashboard_url=f"http://127.0.0.1:{dask_port}",
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=CHILD_TIMEOUT_S)
    return child.pid


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


# --- ports ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option", ["--prefect-port", "--mlflow-port", "--dask-port", "--explorer-port"]
)
def test_up_on_a_taken_port_is_refused_in_one_line_and_starts_nothing(
    tmp_path: Path, taken_port: int, option: str
) -> None:
    home = network_home(tmp_path)
    ports = {
        "--prefect-port": free_port(),
        "--mlflow-port": free_port(),
        "--dask-port": free_port(),
        "--dask-dashboard-port": free_port(),
        "--explorer-port": free_port(),
    }
    ports[option] = taken_port
    args = [item for pair in ports.items() for item in (pair[0], str(pair[1]))]
    proc = run_cli("up", "--home", str(home), *args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: port {taken_port} on 127.0.0.1 is in use (Address already in use); "
        f"pick another with {option}"
    ]
    assert not (home / "services.json").exists()
    assert not (home / "logs").exists()  # no child was started
    assert all(services.port_problem(port) is None for port in ports.values() if port != taken_port)


def test_check_plan_refuses_the_same_port_twice_and_non_ports() -> None:
    with pytest.raises(ServiceError, match=r"^--prefect-port and --mlflow-port are both 4311"):
        check_plan(UpPlan(prefect_port=4311, mlflow_port=4311, dask_workers=0))
    with pytest.raises(ServiceError, match=r"^--dask-dashboard-port 70000 is not a port"):
        check_plan(UpPlan(prefect_port=None, mlflow_port=None, dask_dashboard_port=70000))
    with pytest.raises(ServiceError, match=r"^--dask-workers must be 0 to 64"):
        check_plan(UpPlan(prefect_port=None, mlflow_port=None, dask_workers=65))


def test_the_explorer_port_is_checked_only_when_the_plan_has_an_explorer(taken_port: int) -> None:
    assert UpPlan().explorer_port is None  # in-process callers (serve) start no explorer
    check_plan(UpPlan(prefect_port=None, mlflow_port=None, dask_workers=0))
    with pytest.raises(PortInUse) as caught:
        check_plan(
            UpPlan(prefect_port=None, mlflow_port=None, dask_workers=0, explorer_port=taken_port)
        )
    assert str(caught.value) == (
        f"port {taken_port} on 127.0.0.1 is in use (Address already in use); "
        "pick another with --explorer-port"
    )
    with pytest.raises(ServiceError, match=r"^--mlflow-port and --explorer-port are both 5000"):
        check_plan(UpPlan(prefect_port=None, mlflow_port=5000, explorer_port=5000, dask_workers=0))
    assert UpPlan(explorer_port=8790).bindings() == [
        ("--prefect-port", 4200),
        ("--mlflow-port", 5000),
        ("--explorer-port", 8790),
        ("--dask-port", 8786),
        ("--dask-dashboard-port", 8787),
    ]


def test_dask_ports_are_not_checked_without_a_dask_cluster(taken_port: int) -> None:
    check_plan(UpPlan(prefect_port=None, mlflow_port=None, dask_port=taken_port, dask_workers=0))
    with pytest.raises(PortInUse, match=r"pick another with --dask-port$"):
        check_plan(UpPlan(prefect_port=None, mlflow_port=None, dask_port=taken_port))


def test_up_refuses_a_home_whose_up_still_runs(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path)
    write_services_file(
        settings, record_for(settings, pid=os.getpid(), prefect_port=1, dask_port=2)
    )
    with pytest.raises(ServiceError) as caught:
        services.up(settings, plan=UpPlan(), report=lambda line: None)
    assert str(caught.value) == (
        f"taoflow up already runs for {settings.home} (pid {os.getpid()}); stop it first"
    )
    assert not settings.service_logs_dir.exists()


# --- the services record ---------------------------------------------------------------------


def test_record_round_trips_and_prints_the_export_lines(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "my home")
    settings.home.mkdir()
    record = RunningServices.of_plan(
        settings, UpPlan(prefect_port=4210, mlflow_port=5010, dask_port=8790, explorer_port=8791)
    )
    assert record.explorer_url == "http://127.0.0.1:8791"
    write_services_file(settings, record)
    assert sorted(p.name for p in settings.home.iterdir()) == ["services.json"]  # no temp file
    assert read_services_file(settings) == record
    assert record.export_lines() == [
        f"export TAOFLOW_HOME='{settings.home}'",
        "export PREFECT_API_URL=http://127.0.0.1:4210/api",
        "export MLFLOW_TRACKING_URI=http://127.0.0.1:5010",
        "export TAOFLOW_DASK_ADDRESS=tcp://127.0.0.1:8790",
    ]


def test_a_record_written_before_the_explorer_still_reads(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path)
    record = record_for(settings, pid=os.getpid(), prefect_port=4200, dask_port=8787)
    document = json.loads(record.to_json())
    assert document.pop("explorer_url") is None
    settings.services_file.write_text(json.dumps(document))
    assert read_services_file(settings) == record
    assert recorded_services(settings) == record


def test_the_summary_names_the_explorer_page(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path)
    plan = UpPlan(prefect_port=None, mlflow_port=None, dask_workers=0, explorer_port=8791)
    record = RunningServices.of_plan(settings, plan)
    sleeper = child("import time; time.sleep(60)", tmp_path, "Explorer")
    try:
        explorer = Service("Explorer", "http://127.0.0.1:8791", "-", sleeper.process)
        lines = services.summary_lines(record, services=[explorer])
    finally:
        sleeper.process.kill()
        sleeper.process.wait()
    assert lines[0] == "Explorer: http://127.0.0.1:8791/"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prefect_api_url", "http://10.0.0.1:4200/api"),
        ("explorer_url", "http://0.0.0.0:8790"),
        ("explorer_url", "javascript:alert(1)"),
        ("prefect_api_url", "http://127.0.0.1:4200/api/../../x"),
        ("mlflow_tracking_uri", "file:///etc/passwd"),
        ("dask_address", "tcp://example.com:8786"),
        ("dask_dashboard_url", "http://127.0.0.1.example.com:8787"),
        ("pid", 0),
        ("pid", True),
        ("home", ""),
        ("format", 2),
    ],
)
def test_a_record_with_anything_but_loopback_services_is_ignored(
    tmp_path: Path, field: str, value: object
) -> None:
    settings = Settings.load(tmp_path)
    record = record_for(settings, pid=os.getpid(), prefect_port=4200, dask_port=8787)
    document = json.loads(record.to_json())
    document[field] = value
    settings.services_file.write_text(json.dumps(document))
    assert read_services_file(settings) is None
    assert recorded_services(settings) is None


def test_stale_foreign_malformed_or_huge_records_are_ignored(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path)
    write_services_file(settings, record_for(settings, pid=dead_pid(), prefect_port=1, dask_port=2))
    assert read_services_file(settings) is not None
    assert recorded_services(settings) is None  # its `up` is gone
    other = Settings.load(tmp_path / "elsewhere")
    write_services_file(settings, record_for(other, pid=os.getpid(), prefect_port=1, dask_port=2))
    assert recorded_services(settings) is None  # a copied home's record names another home
    settings.services_file.write_bytes(b"\xff{not json")
    assert recorded_services(settings) is None
    settings.services_file.write_text(" " * (services.SERVICES_FILE_BYTES_MAX + 1))
    assert recorded_services(settings) is None


def test_only_the_writer_removes_the_record(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path)
    record = record_for(settings, pid=os.getpid(), prefect_port=1, dask_port=2)
    write_services_file(settings, record)
    remove_services_file(settings, pid=os.getpid() + 1)
    assert read_services_file(settings) == record
    remove_services_file(settings, pid=os.getpid())
    assert not settings.services_file.exists()


# --- reuse -----------------------------------------------------------------------------------


def test_a_live_up_is_reused_for_prefect_and_dask(
    tmp_path: Path, healthy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = Settings.load(tmp_path)
    record = record_for(
        settings, pid=os.getpid(), prefect_port=healthy_port, dask_port=healthy_port
    )
    write_services_file(settings, record)
    reuse = reuse_running_services(settings)
    assert os.environ["PREFECT_API_URL"] == f"http://127.0.0.1:{healthy_port}/api"
    assert reuse.settings.dask_address == "tcp://127.0.0.1:8786"
    assert reuse.settings.home == settings.home
    assert reuse.lines() == [
        f"using taoflow up's Prefect server http://127.0.0.1:{healthy_port}/api "
        "and Dask cluster tcp://127.0.0.1:8786"
    ]


def test_the_users_choices_win_over_a_live_up(
    tmp_path: Path, healthy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    settings = Settings.load(tmp_path, "tcp://127.0.0.1:9999")
    record = record_for(
        settings, pid=os.getpid(), prefect_port=healthy_port, dask_port=healthy_port
    )
    write_services_file(settings, record)
    reuse = reuse_running_services(settings)
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
    assert reuse.settings == settings
    assert reuse.lines() == []


def test_services_that_do_not_answer_are_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = Settings.load(tmp_path)
    closed = free_port()  # nothing listens there
    write_services_file(
        settings, record_for(settings, pid=os.getpid(), prefect_port=closed, dask_port=closed)
    )
    reuse = reuse_running_services(settings)
    assert "PREFECT_API_URL" not in os.environ
    assert reuse.settings == settings
    assert reuse.lines() == []


# --- watching the children -------------------------------------------------------------------


def child(code: str, tmp_path: Path, name: str) -> Service:
    process = subprocess.Popen([sys.executable, "-c", code])
    return Service(name, "-", "-", process, tmp_path / f"{name}.log")


def test_supervise_names_the_child_that_exits(tmp_path: Path) -> None:
    sleeper = child("import time; time.sleep(60)", tmp_path, "Sleeper")
    quitter = child("raise SystemExit(3)", tmp_path, "Quitter")
    try:
        quitter.process.wait(timeout=CHILD_TIMEOUT_S)
        with pytest.raises(ServiceError) as caught:
            supervise([sleeper, quitter], max_wait_s=CHILD_TIMEOUT_S)
        assert str(caught.value) == (
            f"Quitter exited with code 3; its output: {tmp_path / 'Quitter.log'}; "
            "stopped the others"
        )
    finally:
        sleeper.process.kill()
        sleeper.process.wait()


def test_supervise_returns_on_sigterm_while_children_live(tmp_path: Path) -> None:
    sleeper = child("import time; time.sleep(60)", tmp_path, "Sleeper")
    timer = threading.Timer(0.2, os.kill, args=(os.getpid(), services.signal.SIGTERM))
    try:
        timer.start()
        supervise([sleeper], max_wait_s=CHILD_TIMEOUT_S)
        assert sleeper.process.poll() is None  # supervise stops nothing itself
    finally:
        timer.cancel()
        sleeper.process.kill()
        sleeper.process.wait()


# --- deployments -----------------------------------------------------------------------------


def test_the_deployment_form_has_only_a_described_validated_subnet() -> None:
    from prefect.utilities.callables import parameter_schema

    from taoflow.flows.deployed import deployed_epoch_flow

    schema = parameter_schema(deployed_epoch_flow).model_dump()
    assert list(schema["properties"]) == ["subnet"]
    subnet = schema["properties"]["subnet"]
    assert subnet["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert subnet["maxLength"] == 64
    assert subnet["description"].startswith("The subnet whose next epoch runs")
    assert subnet["default"] == "digits"
    with pytest.raises(Exception, match="home"):
        deployed_epoch_flow.validate_parameters({"subnet": "digits", "home": "/tmp/x"})
    with pytest.raises(Exception, match="pattern"):
        deployed_epoch_flow.validate_parameters({"subnet": "../ledger"})


def test_the_audit_deployments_take_no_home_and_validate_their_parameters(
    tmp_path: Path,
) -> None:
    from prefect.utilities.callables import parameter_schema

    from taoflow.flows.audit import audit_flow
    from taoflow.flows.deployed import deployed_replay_flow
    from taoflow.flows.explain import explain_flow
    from taoflow.flows.whatif import whatif_flow
    from taoflow.services import audit_deployments

    deployments = audit_deployments(Settings.load(tmp_path))
    assert [(d.name, d.flow_name) for d in deployments] == [
        ("replay", "replay"),
        ("explain", "explain"),
        ("whatif", "whatif"),
        ("audit", "audit"),
    ]
    assert all(d.enforce_parameter_schema for d in deployments)
    for served in (deployed_replay_flow, explain_flow, whatif_flow, audit_flow):
        properties = parameter_schema(served).model_dump()["properties"]
        assert "home" not in properties and "dask_address" not in properties
    schema = parameter_schema(deployed_replay_flow).model_dump()
    assert list(schema["properties"]) == ["subnet", "first", "last", "stage"]
    assert schema["properties"]["stage"]["description"].startswith("Where the replay starts")
    with pytest.raises(Exception, match="home"):
        deployed_replay_flow.validate_parameters({"subnet": "digits", "home": "/tmp/x"})
    with pytest.raises(Exception, match="stage"):
        deployed_replay_flow.validate_parameters({"subnet": "digits", "stage": "bribe"})
    with pytest.raises(Exception, match="first"):
        deployed_replay_flow.validate_parameters({"subnet": "digits", "first": -1})


@pytest.mark.parametrize("exists", [False, True])
def test_a_deployed_run_in_a_home_without_a_network_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    from taoflow.flows.deployed import deployed_epoch_flow

    wrong = tmp_path / "wrong"
    if exists:
        wrong.mkdir()
    monkeypatch.setenv(HOME_ENV, str(wrong))
    with pytest.raises(NoNetwork):
        deployed_epoch_flow.fn(subnet="digits")
    assert sorted(tmp_path.rglob("*")) == ([wrong] if exists else [])


def test_a_deployed_run_needs_a_bound_home_and_a_known_subnet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taoflow.flows.deployed import NoBoundHome, bound_settings

    monkeypatch.delenv(HOME_ENV, raising=False)
    with pytest.raises(NoBoundHome, match="serve with `taoflow serve --home`"):
        bound_settings("digits")
    home = network_home(tmp_path)
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    monkeypatch.setenv(HOME_ENV, str(home))
    with pytest.raises(LookupError) as caught:
        bound_settings("digits")
    assert str(caught.value) == f"no subnet 'digits' in {home}"
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


def test_serving_a_home_without_a_network_writes_nothing(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    with pytest.raises(NoNetwork):
        services.serve_epochs(Settings.load(wrong), block_time_s=1.0)
    assert not wrong.exists()


def test_demo_fresh_is_refused_while_up_runs_for_the_home(tmp_path: Path) -> None:
    settings = Settings.load(network_home(tmp_path))
    record = record_for(settings, pid=os.getpid(), prefect_port=1, dask_port=2)
    write_services_file(settings, record)
    before = sorted(settings.home.rglob("*"))
    proc = run_cli("demo", "--fresh", "--home", str(settings.home))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: taoflow up runs for {settings.home} (pid {os.getpid()}): stop it first"
    ]
    assert sorted(settings.home.rglob("*")) == before


def test_a_deployed_run_is_named_by_subnet_and_epoch_of_the_bound_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from ledger_helpers import network_with_subnet

    from taoflow.flows import deployed

    network_with_subnet(tmp_path / "home", subnet="sn")
    monkeypatch.setattr(deployed, "flow_run", SimpleNamespace(parameters={"subnet": "sn"}))
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    assert deployed.deployed_run_name() == "sn · epoch 0"
    monkeypatch.delenv(HOME_ENV)
    assert deployed.deployed_run_name() == "sn · next epoch"
