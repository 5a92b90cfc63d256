"""The CLI's bad-input contract: one clear line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ledger_helpers import TAO, mint

from taoflow.ledger.store import Ledger


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert needle in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1


def test_missing_home(tmp_path: Path) -> None:
    assert_one_line_error(run("metagraph", "--home", str(tmp_path / "nope")), "no network")


def test_home_without_ledger(tmp_path: Path) -> None:
    assert_one_line_error(run("ledger", "supply", "--home", str(tmp_path)), "holds no ledger")


def test_unknown_subnet(tmp_path: Path) -> None:
    Ledger.open(tmp_path / "ledger").commit([mint("m", "alice", TAO)])
    assert_one_line_error(
        run("metagraph", "--subnet", "nope", "--home", str(tmp_path)), "no subnet 'nope'"
    )


def test_corrupt_ledger_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "ledger")
    ledger.commit([mint("m1", "alice", TAO)])
    ledger.commit([mint("m2", "bob", TAO)])
    batch = tmp_path / "ledger" / "batches" / "000000000001.arrow"
    batch.write_bytes(batch.read_bytes()[:-7])
    before = sorted(p.name for p in (tmp_path / "ledger" / "batches").iterdir())
    proc = run("ledger", "verify", "--home", str(tmp_path))
    assert proc.returncode == 1 and "batch 1" in proc.stderr
    demo = run("demo", "--home", str(tmp_path), "--epochs", "1")
    assert_one_line_error(demo, "batch 1")
    assert sorted(p.name for p in (tmp_path / "ledger" / "batches").iterdir()) == before


def test_unreadable_home_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.open(home / "ledger").commit([mint("m", "alice", TAO)])
    shutil.rmtree(home / "ledger" / "batches")
    (home / "ledger" / "batches").write_text("not a directory")
    assert_one_line_error(run("ledger", "supply", "--home", str(home)), "error")
