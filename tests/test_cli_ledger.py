"""The ledger CLI on a small signed ledger: JSON output, as-of queries, verify's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from ledger_helpers import TAO, acct, mint, signed
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.store import Ledger

runner = CliRunner()


def build(home: Path) -> Ledger:
    ledger = Ledger.open(home / "ledger")
    ledger.commit([mint("m/alice", "alice", 10 * TAO), mint("m/bob", "bob", TAO)])
    tx = Tx("t1", Kind.TRANSFER, coldkey=acct("alice"), dest=acct("bob"), amount_rao=3 * TAO)
    ledger.commit([signed(ledger.state(), tx)])
    return ledger


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.output


def test_balance_supply_and_log_json(tmp_path: Path) -> None:
    build(tmp_path)
    code, out = cli(tmp_path, "ledger", "balance", "--json")
    assert code == 0
    assert {r["coldkey"]: r["balance_rao"] for r in json.loads(out)} == {
        acct("alice"): 7 * TAO,
        acct("bob"): 4 * TAO,
    }
    code, out = cli(tmp_path, "ledger", "balance", "--account", acct("bob"), "--json")
    assert json.loads(out) == [{"coldkey": acct("bob"), "balance_rao": 4 * TAO}]
    code, out = cli(tmp_path, "ledger", "supply", "--json")
    supply = json.loads(out)
    assert code == 0 and supply["identity_holds"] and supply["issued_rao"] == 11 * TAO
    code, out = cli(tmp_path, "ledger", "log", "--kind", "transfer", "--json")
    assert [r["tx_id"] for r in json.loads(out)] == ["t1"]


def test_as_of_an_epoch_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    build(tmp_path)
    code, out = cli(tmp_path, "ledger", "supply", "--as-of-epoch", "3", "--subnet", "sn")
    assert code == 1 and "not in the ledger" in out and "Traceback" not in out


def test_verify_exit_codes_name_the_bad_batch(tmp_path: Path) -> None:
    build(tmp_path)
    assert cli(tmp_path, "ledger", "verify")[0] == 0
    path = tmp_path / "ledger" / "batches" / "000000000002.arrow"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out = cli(tmp_path, "ledger", "verify", "--json")
    assert code == 1
    assert json.loads(out)["first_bad_batch"] == 2


def test_snapshot_verify_from_snapshot_and_as_of_on_a_simulated_network(tmp_path: Path) -> None:
    code, out = cli(
        tmp_path,
        "network",
        "simulate",
        "--subnet",
        "sim",
        "--epochs",
        "3",
        "--miners",
        "4",
        "--validators",
        "2",
        "--json",
    )
    assert code == 0, out
    code, out = cli(tmp_path, "ledger", "snapshot", "--json")
    assert code == 0, out
    head = json.loads(out)
    assert head["batch_no"] == len(Ledger(tmp_path / "ledger").records())
    code, out = cli(tmp_path, "ledger", "verify", "--from-snapshot")
    assert code == 0, out
    assert f"rules: the newest verified snapshot is of the head (batch {head['batch_no']})" in out
    code, out = cli(tmp_path, "network", "simulate", "--subnet", "sim", "--epochs", "1")
    assert code == 0, out
    code, out = cli(tmp_path, "ledger", "verify", "--from-snapshot")
    assert code == 0, out
    assert f"rules replayed from batch {head['batch_no'] + 1} (after the newest verified" in out
    code, out = cli(tmp_path, "ledger", "verify")
    assert code == 0 and "rules replayed from genesis" in out
    totals = []
    for epoch in ("0", "1", "2", "3"):
        code, out = cli(
            tmp_path, "ledger", "supply", "--as-of-epoch", epoch, "--subnet", "sim", "--json"
        )
        supply = json.loads(out)
        assert code == 0 and supply["identity_holds"]
        totals.append(supply["issued_rao"])
    assert totals[0] < totals[1] < totals[2] < totals[3]
    code, out = cli(tmp_path, "ledger", "supply", "--json")
    assert json.loads(out)["issued_rao"] == totals[3]
