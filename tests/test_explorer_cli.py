"""`taoflow explorer`: its checks before serving (one line each), the host warning, where the
Prefect and MLflow links come from, and the explorer as a service of `taoflow up`.

Every socket binds 127.0.0.1 (or 0.0.0.0 for the warning) on a port the OS picked; nothing is
written outside tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ledger_helpers import TAO, mint
from net_helpers import free_port

from taoflow import services
from taoflow.cli import explorer as explorer_cli
from taoflow.cli.app import run
from taoflow.cli.explorer import Launch, is_loopback
from taoflow.ledger.store import Ledger
from taoflow.services import RunningServices, UpPlan, write_services_file
from taoflow.settings import Settings

CLI_TIMEOUT_S = 120
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 10
POLL_S = 0.2


def network_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    Ledger.open(home / "ledger").commit([mint("m", "alice", TAO)])
    return home


def tree(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("TAOFLOW_MLFLOW_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[Launch]:
    """The launches the command would serve (the server itself is replaced)."""
    seen: list[Launch] = []
    monkeypatch.setattr(explorer_cli, "serve_launch", seen.append)
    monkeypatch.delenv("TAOFLOW_MLFLOW_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return seen


def up_record(settings: Settings, *, explorer_port: int | None = None) -> RunningServices:
    return RunningServices(
        pid=os.getpid(),
        home=str(settings.home),
        prefect_api_url="http://127.0.0.1:4210/api",
        mlflow_tracking_uri="http://127.0.0.1:5010",
        dask_address=None,
        dask_dashboard_url=None,
        explorer_url=None if explorer_port is None else f"http://127.0.0.1:{explorer_port}",
    )


# --- one line before serving -------------------------------------------------------------------


@pytest.mark.parametrize("exists", [False, True])
def test_a_home_without_a_ledger_is_one_line_and_left_as_it_was(
    tmp_path: Path, exists: bool
) -> None:
    home = tmp_path / "home"
    if exists:
        home.mkdir()
    proc = run_cli("explorer", "--home", str(home), "--port", str(free_port()))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: no ledger at {home / 'ledger'}: run `taoflow demo` first"
    ]
    assert tree(tmp_path) == ([home] if exists else [])


def test_a_taken_port_is_one_line_naming_the_option(tmp_path: Path, taken_port: int) -> None:
    home = network_home(tmp_path)
    before = tree(home)
    proc = run_cli("explorer", "--home", str(home), "--port", str(taken_port))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: port {taken_port} on 127.0.0.1 is in use (Address already in use); "
        "pick another with --port"
    ]
    assert tree(home) == before


@pytest.mark.parametrize("port", ["0", "65536", "web"])
def test_a_bad_port_is_a_usage_error(tmp_path: Path, port: str) -> None:
    proc = run_cli("explorer", "--home", str(network_home(tmp_path)), "--port", port)
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--port': ")
    assert line.endswith("Try 'taoflow explorer --help'.")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--prefect-url", "javascript:alert(1)"),
        ("--prefect-url", 'http://127.0.0.1:4200/"><script>'),
        ("--mlflow-url", "file:///etc/passwd"),
        ("--mlflow-url", "127.0.0.1:5000"),
    ],
)
def test_a_ui_url_that_is_not_a_plain_http_address_is_refused(
    tmp_path: Path,
    launched: list[Launch],
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
) -> None:
    home = network_home(tmp_path)
    assert run(["explorer", "--home", str(home), "--port", str(free_port()), option, value]) == 1
    out, error = capsys.readouterr()
    assert out == ""
    assert error.splitlines() == [
        f"error: {option} must be an http:// or https:// address such as "
        f"http://127.0.0.1:4200 (got {value!r})"
    ]
    assert launched == []


def test_a_host_this_machine_cannot_bind_names_the_host_option(
    tmp_path: Path, launched: list[Launch], capsys: pytest.CaptureFixture[str]
) -> None:
    home = network_home(tmp_path)
    port = free_port()
    assert run(["explorer", "--home", str(home), "--port", str(port), "--host", "203.0.113.7"]) == 1
    out, error = capsys.readouterr()
    assert out == ""
    assert error.splitlines() == [
        "error: cannot serve on 203.0.113.7 (Cannot assign requested address); "
        "pick another address with --host"
    ]
    assert launched == []


def test_the_explorer_of_a_running_up_is_named_when_its_port_is_asked_for(
    tmp_path: Path, taken_port: int, launched: list[Launch], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.load(network_home(tmp_path))
    write_services_file(settings, up_record(settings, explorer_port=taken_port))
    assert run(["explorer", "--home", str(settings.home), "--port", str(taken_port)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: taoflow up (pid {os.getpid()}) already serves the explorer of {settings.home} "
        f"at http://127.0.0.1:{taken_port}/"
    ]
    assert launched == []


# --- serving -------------------------------------------------------------------------------------


def test_loopback_serves_without_a_warning_and_without_links_by_default(
    tmp_path: Path, launched: list[Launch], capsys: pytest.CaptureFixture[str]
) -> None:
    home = network_home(tmp_path)
    port = free_port()
    assert run(["explorer", "--home", str(home), "--port", str(port)]) == 0
    out, error = capsys.readouterr()
    assert error == ""
    assert out.splitlines() == [f"explorer: http://127.0.0.1:{port}/", "stopped"]
    assert launched == [
        Launch(
            home=home,
            host="127.0.0.1",
            port=port,
            prefect_ui_url=None,
            mlflow_ui_url=None,
            mlflow_tracking_uri=None,  # never the home's SQLite store: opening it can write
        )
    ]


def test_another_host_is_served_after_a_one_line_warning(
    tmp_path: Path, launched: list[Launch], capsys: pytest.CaptureFixture[str]
) -> None:
    home = network_home(tmp_path)
    port = free_port()
    assert run(["explorer", "--home", str(home), "--port", str(port), "--host", "0.0.0.0"]) == 0
    out, error = capsys.readouterr()
    assert error.splitlines() == [
        "warning: the explorer is read-only but exposes every ledger entry to anyone who can "
        f"reach 0.0.0.0:{port}"
    ]
    assert out.splitlines() == [f"explorer: http://0.0.0.0:{port}/", "stopped"]
    assert [(launch.host, launch.port) for launch in launched] == [("0.0.0.0", port)]


def test_the_links_come_from_the_options_else_from_the_running_up(
    tmp_path: Path, launched: list[Launch]
) -> None:
    settings = Settings.load(network_home(tmp_path))
    write_services_file(settings, up_record(settings))
    base = ["explorer", "--home", str(settings.home), "--port", str(free_port())]
    assert run(base) == 0
    options = ["--prefect-url", "https://prefect.example/", "--mlflow-url", "http://m:80"]
    assert run([*base, *options]) == 0
    assert [(launch.prefect_ui_url, launch.mlflow_ui_url) for launch in launched] == [
        ("http://127.0.0.1:4210", "http://127.0.0.1:5010"),
        ("https://prefect.example", "http://m:80"),
    ]


def test_a_stopped_ups_record_gives_no_links(tmp_path: Path, launched: list[Launch]) -> None:
    settings = Settings.load(network_home(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=CLI_TIMEOUT_S)
    write_services_file(
        settings, RunningServices(**{**up_record(settings).__dict__, "pid": child.pid})
    )
    assert run(["explorer", "--home", str(settings.home), "--port", str(free_port())]) == 0
    assert [(launch.prefect_ui_url, launch.mlflow_ui_url) for launch in launched] == [(None, None)]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_cli_up_and_the_app_agree_on_the_default_port() -> None:
    from taoflow.dashboards.explorer.app import DEFAULT_PORT

    assert explorer_cli.PORT_DEFAULT == services.EXPLORER_PORT_DEFAULT == DEFAULT_PORT == 8790


# --- for real: the command, and the explorer as a service of `up` ------------------------------


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


def wait_until_it_answers(url: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not services.answers(url, timeout_s=REQUEST_TIMEOUT_S):
        assert process is None or process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{url} did not answer in {START_TIMEOUT_S} s"
        time.sleep(POLL_S)


def test_the_explorer_serves_the_ledger_read_only_until_ctrl_c(tmp_path: Path) -> None:
    home = network_home(tmp_path)
    before = tree(home)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "taoflow.cli", "explorer", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/network"
        wait_until_it_answers(url, process)
        network = get_json(url)
        assert isinstance(network, dict)
        assert network["head"]["batches"] == 1  # the one mint in the home
        request = urllib.request.Request(url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S)
        assert caught.value.code == 405
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert out.splitlines() == [f"explorer: http://127.0.0.1:{port}/", "stopped"]
    assert services.port_problem(port) is None
    assert tree(home) == before  # read-only


def test_up_starts_the_explorer_with_its_ui_links_and_stops_it(tmp_path: Path) -> None:
    settings = Settings.load(network_home(tmp_path))
    port = free_port()
    plan = UpPlan(prefect_port=None, mlflow_port=None, dask_workers=0, explorer_port=port)
    reported: list[str] = []
    with services.running(settings, plan=plan, report=reported.append) as started:
        [explorer] = started
        assert (explorer.name, explorer.url) == ("Explorer", f"http://127.0.0.1:{port}")
        assert explorer.health_url == f"http://127.0.0.1:{port}/api/network"
        assert explorer.process.poll() is None
        assert isinstance(
            get_json(explorer.health_url), dict
        )  # it answered before `running` yielded
    assert reported == ["starting Explorer …"]
    assert explorer.process.poll() is not None
    assert services.port_problem(port) is None
    assert explorer.log_path == settings.service_logs_dir / "explorer.log"


def test_up_passes_its_prefect_and_mlflow_uis_to_the_explorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[tuple[str, str, list[str]]] = []

    def spawn(
        settings: Settings, *, log_name: str, module: str, args: list[str], env: dict[str, str]
    ) -> tuple[object, Path]:
        spawned.append((log_name, module, args))
        return None, settings.service_logs_dir / f"{log_name}.log"

    monkeypatch.setattr(services, "_spawn", spawn)
    settings = Settings.load(tmp_path / "home")
    plan = UpPlan(prefect_port=4210, mlflow_port=5010, explorer_port=8791)
    services.start_explorer(settings, plan=plan, port=8791)
    services.start_explorer(settings, plan=UpPlan(prefect_port=None, mlflow_port=None), port=8792)
    base = ["explorer", "--home", str(settings.home)]
    links = ["--prefect-url", "http://127.0.0.1:4210", "--mlflow-url", "http://127.0.0.1:5010"]
    assert spawned == [
        ("explorer", "taoflow.cli", [*base, "--port", "8791", *links]),
        ("explorer", "taoflow.cli", [*base, "--port", "8792"]),
    ]
