"""Format-1 ledgers: refused with one line naming ``ledger migrate``; migrated with proof.

The fixture is a 3-epoch simulated network (4 miners, 2 validators, seed 0) written by the
format-1 code; ``stakes_after_epoch_4.json`` is what that code's stakes were after simulating the
same network for 5 epochs. Migrating and simulating 2 more epochs must give exactly those stakes:
the consensus state (bonds, permits) moved into the records without changing a single rao.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taoflow.ledger.errors import LedgerFormatOutdated
from taoflow.ledger.store import Ledger

FIXTURE = Path(__file__).parent / "fixtures" / "ledger_format1"
runner = CliRunner()


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home)
    (home / "keys" / "writer.key").chmod(0o600)
    (home / "keys").chmod(0o700)
    return home


def cli(home: Path, *args: str) -> tuple[int, str]:
    from taoflow.cli import app

    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.output


def run_main(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point (its one-line error handler included)."""
    return subprocess.run(
        [sys.executable, "-c", "from taoflow.cli import main; main()", *args],
        env={**os.environ, "TAOFLOW_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
    )


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_a_format_1_ledger_is_refused_with_one_line_naming_migrate(old_home: Path) -> None:
    before = files_of(old_home / "ledger")
    with pytest.raises(LedgerFormatOutdated, match="run `taoflow ledger migrate`"):
        Ledger.open(old_home / "ledger")
    proc = run_main(old_home, "ledger", "balance")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: this ledger is in format 1; this taoflow reads format 2: run `taoflow ledger "
        "migrate` (it keeps the old ledger and proves the new one equal)"
    ]
    code, _ = cli(old_home, "network", "simulate", "--subnet", "sim", "--epochs", "1")
    assert code != 0
    assert files_of(old_home / "ledger") == before


def test_migrate_proves_equality_keeps_the_old_ledger_and_consensus_carries_on(
    old_home: Path,
) -> None:
    before = files_of(old_home / "ledger")
    code, out = cli(old_home, "ledger", "migrate")
    assert code == 0, out
    assert "migrated 4 batches (47 rows) to format 2; the new state equals the old replay" in out
    kept = [p for p in old_home.iterdir() if p.name.startswith("ledger.format1-")]
    assert len(kept) == 1 and files_of(kept[0]) == {**before, "LOCK": b""}
    code, out = cli(old_home, "ledger", "verify")
    assert code == 0 and out.startswith("ok: 4 batches, 47 rows"), out
    assert Ledger(old_home / "ledger").epoch_records("sim", 2)["bonds"].num_rows > 0
    code, out = cli(old_home, "ledger", "migrate")
    assert code == 0 and "nothing to migrate" in out
    code, out = cli(old_home, "network", "simulate", "--subnet", "sim", "--epochs", "2")
    assert code == 0, out
    code, out = cli(old_home, "ledger", "stakes", "--json")
    expected = json.loads((FIXTURE / "stakes_after_epoch_4.json").read_text())
    # The same stakes after the same epochs (the table's order is largest first).
    by_pair = lambda rows: sorted(rows, key=lambda r: (r["coldkey"], r["hotkey"]))  # noqa: E731
    assert by_pair(json.loads(out)) == by_pair(expected)


def test_a_tampered_format_1_ledger_is_not_migrated(old_home: Path) -> None:
    batch = old_home / "ledger" / "batches" / "000000000003.arrow"
    data = bytearray(batch.read_bytes())
    data[len(data) // 2] ^= 0x01
    batch.write_bytes(bytes(data))
    before = files_of(old_home)
    proc = run_main(old_home, "ledger", "migrate")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: format-1 batch 3 (000000000003.arrow) does not match its commit record"
    ]
    assert {k: v for k, v in files_of(old_home).items() if k != "ledger/LOCK"} == before
