"""The one-shot epoch's services: a configured server or scheduler wins, a temporary server that
exits or never answers is one line naming its log, and a real one answers, then is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from taoflow.oneshot import (
    PREFECT_TIMEOUT_ENV,
    TemporaryPrefect,
    TemporaryServerFailed,
    epoch_cluster,
    start_timeout_s,
    temporary_prefect_server,
)
from taoflow.services import PREFECT_API_URL_ENV
from taoflow.settings import Settings

SLEEP_S = 600
"""A child that never answers (it is stopped by the test long before)."""


def test_a_configured_prefect_server_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFECT_API_URL_ENV, "http://127.0.0.1:4210/api")
    with temporary_prefect_server(Settings.load(tmp_path)) as server:
        assert server is None
    assert os.environ[PREFECT_API_URL_ENV] == "http://127.0.0.1:4210/api"
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_a_given_scheduler_is_used_as_is() -> None:
    with epoch_cluster("tcp://127.0.0.1:8786") as address:
        assert address == "tcp://127.0.0.1:8786"


def test_the_start_timeout_honours_prefects_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFECT_TIMEOUT_ENV, "45")
    assert start_timeout_s() == 45.0
    monkeypatch.setenv(PREFECT_TIMEOUT_ENV, "soon")
    assert start_timeout_s() == 120.0


def _server(tmp_path: Path, *command: str) -> TemporaryPrefect:
    log = tmp_path / "server.log"
    process = subprocess.Popen([sys.executable, "-c", *command])
    return TemporaryPrefect(process, "http://127.0.0.1:9/api", log)


def test_a_server_that_exits_is_one_line_naming_its_log(tmp_path: Path) -> None:
    server = _server(tmp_path, "raise SystemExit(3)")
    server.process.wait()
    with pytest.raises(TemporaryServerFailed) as info:
        server.wait_ready(timeout_s=60)
    assert str(info.value) == (
        f"the temporary Prefect server exited with code 3; its output: {tmp_path / 'server.log'}"
    )


def test_a_server_that_never_answers_is_stopped(tmp_path: Path) -> None:
    server = _server(tmp_path, f"import time; time.sleep({SLEEP_S})")
    try:
        with pytest.raises(TemporaryServerFailed) as info:
            server.wait_ready(timeout_s=0.5)
        assert "did not answer within 0.5 s" in str(info.value)
        assert PREFECT_TIMEOUT_ENV in str(info.value)
    finally:
        server.stop()
    assert server.process.returncode is not None


@pytest.mark.integration
def test_a_temporary_server_answers_then_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PREFECT_API_URL_ENV, raising=False)
    settings = Settings.load(tmp_path)
    settings.apply_environment()
    with temporary_prefect_server(settings) as server:
        assert server is not None
        assert os.environ[PREFECT_API_URL_ENV] == server.api_url
        assert server.api_url.startswith("http://127.0.0.1:")
        server.wait_ready()
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=10) as response:
            assert response.status == 200
    assert PREFECT_API_URL_ENV not in os.environ
    assert server.process.returncode is not None
    assert (tmp_path / "prefect").is_dir()  # the home's own Prefect database
