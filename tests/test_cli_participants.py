"""Miners and validators through the CLI, on a fresh network, end to end.

A subnet owner creates a subnet; a miner registers, trains with the miner kit and submits; an
external validator registers, stakes, commits and reveals weights; one real epoch runs (Prefect,
Dask, DuckDB, ledger, MLflow). Hostile submissions are refused with a clear error and change
nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx
from taoflow.ledger.store import Ledger

pytestmark = pytest.mark.integration

PASSPHRASE = "correct horse battery staple"
TIMEOUT_S = 300


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update({"TAOFLOW_HOME": str(home), "TAOFLOW_WALLET_PASSPHRASE": PASSPHRASE})
    return env


def tf(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("participants") / "home"
    for name in ("owner", "miner", "validator"):
        tf(home, "wallet", "create", "--name", name)
    wallets = {w["name"]: w for w in json.loads(tf(home, "wallet", "list", "--json").stdout)}
    ledger = Ledger.open(home / "ledger")
    ledger.commit(
        [
            Tx(
                f"genesis/{name}",
                Kind.GENESIS_MINT,
                coldkey=wallets[name]["coldkey_public_hex"],
                amount_rao=1000 * RAO_PER_TAO,
            )
            for name in ("owner", "miner", "validator")
        ]
    )
    tf(
        home,
        "subnet",
        "create",
        "--name",
        "sn",
        "--wallet",
        "owner",
        "--evaluation-set",
        "digits",
        "--tempo",
        "10",
    )
    tf(
        home,
        "register",
        "--subnet",
        "sn",
        "--wallet",
        "validator",
        "--role",
        "validator",
        "--external",
    )
    tf(home, "register", "--subnet", "sn", "--wallet", "miner")
    return home


def test_submit_commit_reveal_and_one_epoch(network: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission"
    tf(
        network,
        "miner",
        "train",
        "--subnet",
        "sn",
        "--out",
        str(out),
        "--hidden",
        "32",
        "--epochs",
        "5",
    )
    submitted = json.loads(
        tf(
            network,
            "submit",
            str(out / "model.safetensors"),
            str(out / "config.json"),
            "--subnet",
            "sn",
            "--wallet",
            "miner",
            "--json",
        ).stdout
    )
    rows = json.loads(tf(network, "submissions", "--subnet", "sn", "--json").stdout)
    assert [r["state"] for r in rows] == ["eligible"]
    assert rows[0]["digest"] == submitted["digest"]
    # A validator permit needs stake (the chain's top-k rule); without it the commit is refused.
    stake = ("--wallet", "validator", "--hotkey", "validator/default", "--amount", "10")
    tf(network, "stake", "add", *stake)
    tf(
        network,
        "weights",
        "commit",
        "--subnet",
        "sn",
        "--wallet",
        "validator",
        "--weights",
        "1:65535",
    )
    tf(network, "weights", "reveal", "--subnet", "sn", "--wallet", "validator")
    state = Ledger(network / "ledger").state()
    validator_hot = state.neurons["sn"][0].hotkey
    assert state.revealed_weights[("sn", validator_hot)]["weights"] == [65535]

    result = json.loads(tf(network, "epoch", "run", "--subnet", "sn", "--json").stdout)
    assert result["epoch"] == 0 and result["batch_no"] is not None
    rows = json.loads(tf(network, "submissions", "--subnet", "sn", "--json").stdout)
    assert rows[0]["state"] == "evaluated"
    uids = Ledger(network / "ledger").epoch_records("sn", 0, names=("uids",))["uids"]
    assert uids.column("artifact_digest").to_pylist()[1] == submitted["digest"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("pickle", b"\x80\x04\x95" + b"\0" * 64, "model rejected"),
        ("truncated", b"\x10\x00\x00\x00\x00\x00\x00\x00{", "model rejected"),
        ("huge", b"\0" * (300 * 1024), "model rejected"),
    ],
)
def test_hostile_submission_is_refused_and_changes_nothing(
    network: Path, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    model = tmp_path / f"{name}.safetensors"
    model.write_bytes(content)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"family": "mlp", "input_dim": 64, "hidden_sizes": [8], "num_classes": 10})
    )
    before = len(Ledger(network / "ledger").records())
    proc = tf(
        network, "submit", str(model), str(config), "--subnet", "sn", "--wallet", "miner", ok=False
    )
    assert proc.returncode == 1
    assert reason in proc.stderr and "Traceback" not in proc.stderr
    assert len(Ledger(network / "ledger").records()) == before


def test_unregistered_hotkey_cannot_submit(network: Path, tmp_path: Path) -> None:
    tf(network, "wallet", "new-hotkey", "--name", "miner", "--hotkey", "other")
    out = tmp_path / "sub"
    tf(
        network,
        "miner",
        "train",
        "--subnet",
        "sn",
        "--out",
        str(out),
        "--hidden",
        "8",
        "--epochs",
        "1",
    )
    proc = tf(
        network,
        "submit",
        str(out / "model.safetensors"),
        str(out / "config.json"),
        "--subnet",
        "sn",
        "--wallet",
        "miner",
        "--hotkey",
        "other",
        ok=False,
    )
    assert proc.returncode == 1 and "not registered" in proc.stderr


def test_wrong_passphrase_is_a_clear_error(network: Path) -> None:
    env = env_for(network)
    env["TAOFLOW_WALLET_PASSPHRASE"] = "not the passphrase"
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "register", "--subnet", "sn", "--wallet", "owner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 1 and "wrong passphrase" in proc.stderr


def test_transfer_delegate_and_unstake(network: Path) -> None:
    tf(network, "transfer", "--wallet", "owner", "--dest", "miner", "--amount", "2.5")
    tf(
        network,
        "stake",
        "add",
        "--wallet",
        "miner",
        "--hotkey",
        "validator/default",
        "--amount",
        "1.25",
    )
    stakes = json.loads(tf(network, "stake", "list", "--wallet", "miner", "--json").stdout)
    assert [s["stake_rao"] for s in stakes] == [1_250_000_000]
    assert stakes[0]["take_ppm"] == 180_000
    too_much = tf(
        network,
        "stake",
        "remove",
        "--wallet",
        "miner",
        "--hotkey",
        "validator/default",
        "--amount",
        "2",
        ok=False,
    )
    assert too_much.returncode == 1 and "staked" in too_much.stderr
    tf(
        network,
        "stake",
        "remove",
        "--wallet",
        "miner",
        "--hotkey",
        "validator/default",
        "--amount",
        "0.25",
    )
    stakes = json.loads(tf(network, "stake", "list", "--wallet", "miner", "--json").stdout)
    assert [s["stake_rao"] for s in stakes] == [1_000_000_000]
    assert Ledger(network / "ledger").verify().ok
