"""Hostile names and open key files: one-line refusal, nothing changed, nothing outside the home.

Subnet names end up in paths (pending weights, MLflow experiments and artifacts, the outbox), so
the ledger itself refuses a subnet whose name is not a wallet-style name, and the CLI says so
before it unlocks a key. A coldkey file that others can read is refused like ssh refuses a key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_helpers import TAO, acct, mint, signed

from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.names import NAME_RULE, PathOutsideRoot, check_subnet_name, path_under
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.state import Applied, LedgerState, Rejected
from taoflow.ledger.store import Ledger
from taoflow.settings import Settings
from taoflow.wallet import COLDKEY_FILE, create_wallet

PASSPHRASE = "correct horse battery staple"
CLI_TIMEOUT_S = 180
BAD_NAMES = ["../../x", "a/b", "..", ".", "", "x" * 65, "dïgits", "a b", "a\x00b", "/abs", "a\\b"]


def _create(name: str) -> Tx:
    return Tx(
        f"subnet/{name}",
        Kind.SUBNET_CREATE,
        subnet=name,
        coldkey=acct("alice"),
        hotkey=acct("alice-hot"),
        amount_rao=10 * TAO,
        payload=canonical_json({"tempo_blocks": 10, "registration_cost_rao": TAO}),
    )


def _funded_state() -> LedgerState:
    state = LedgerState()
    assert isinstance(state.apply(mint("m0", "alice", 100 * TAO)), Applied)
    return state


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_ledger_rule_rejects_bad_subnet_names(name: str) -> None:
    state = _funded_state()
    balance_before = dict(state.balances)
    outcome = state.apply(signed(state, _create(name)))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == f"invalid subnet name {name!r}: {NAME_RULE}"
    assert state.subnets == {} and state.balances == balance_before


@pytest.mark.parametrize("name", ["digits", "a", "x" * 64, "sn-1_b"])
def test_ledger_rule_accepts_wallet_style_names(name: str) -> None:
    assert check_subnet_name(name) is None
    state = _funded_state()
    assert isinstance(state.apply(signed(state, _create(name))), Applied)
    assert list(state.subnets) == [name]


def test_store_rejects_traversal_name_and_keeps_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "ledger")
    ledger.commit([mint("m0", "alice", 100 * TAO)])
    records_before = ledger.records()
    with pytest.raises(BatchRejected, match=r"invalid subnet name '\.\./\.\./x'"):
        ledger.commit([signed(ledger.state(), _create("../../x"))])
    assert Ledger.open(tmp_path / "ledger").records() == records_before


def test_path_under_refuses_escapes_and_symlinks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "inside").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (home / "link").symlink_to(tmp_path / "elsewhere")
    assert path_under(home, "inside", "f.json") == (home / "inside" / "f.json").resolve()
    for parts in (("..", "x"), ("a", "..", "..", "x"), ("/etc",), ("link", "x")):
        with pytest.raises(PathOutsideRoot, match="leads outside"):
            path_under(home, *parts)
    with pytest.raises(PathOutsideRoot, match="empty or not a name"):
        path_under(home, "")
    assert Settings.load(home).path_under_home("a", "b") == (home / "a" / "b").resolve()


# --- the CLI -------------------------------------------------------------------------------


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update({"TAOFLOW_HOME": str(home), "TAOFLOW_WALLET_PASSPHRASE": PASSPHRASE})
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def network(tmp_path: Path) -> Path:
    """A home holding a funded wallet ``alice``; the home sits in ``tmp_path/box``."""
    home = tmp_path / "box" / "home"
    info = create_wallet(home / "wallets", name="alice", passphrase=PASSPHRASE, scrypt_n=2**10)
    Ledger.open(home / "ledger").commit(
        [Tx("genesis/alice", Kind.GENESIS_MINT, coldkey=info.coldkey_public_hex, amount_rao=TAO)]
    )
    return home


@pytest.mark.parametrize("name", ["../../../../outside", "a/b", "..", "x" * 65, "dïgits"])
def test_cli_refuses_bad_subnet_name_in_one_line(network: Path, name: str) -> None:
    box = network.parent
    before, records_before = _listing(box), Ledger.open(network / "ledger").records()
    proc = _cli(network, "subnet", "create", "--name", name, "--wallet", "alice", "--lock-tao", "0")
    assert _one_line_error(proc) == f"error: invalid subnet name {name!r}: {NAME_RULE}"
    assert _listing(box) == before
    assert Ledger.open(network / "ledger").records() == records_before


def test_cli_weights_commit_with_traversal_subnet_writes_nothing(network: Path) -> None:
    box = network.parent
    before = _listing(box)
    proc = _cli(
        network, "weights", "commit", "--subnet", "../../x", "--wallet", "alice", "--weights", "0:1"
    )
    assert _one_line_error(proc) == f"error: invalid subnet name '../../x': {NAME_RULE}"
    assert _listing(box) == before


def test_cli_refuses_world_readable_coldkey_with_chmod_hint(network: Path) -> None:
    coldkey = network / "wallets" / "alice" / COLDKEY_FILE
    coldkey.chmod(0o644)
    records_before = Ledger.open(network / "ledger").records()
    proc = _cli(network, "subnet", "create", "--name", "ok", "--wallet", "alice", "--lock-tao", "0")
    line = _one_line_error(proc)
    assert line == (
        f"error: coldkey file {coldkey} is readable by others (mode 0644): "
        f"run `chmod 600 {coldkey}`"
    )
    assert Ledger.open(network / "ledger").records() == records_before
