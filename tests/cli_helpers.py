"""Test helpers: a small network whose accounts are real local wallets, and the CLI run in-process.

``wallet_network`` builds, in one home: wallets ``alice`` (hotkey ``default``) and ``bob``
(hotkeys ``default`` and ``owner``), a network entry, a genesis mint to alice of ``ALICE_RAO`` and
to bob of ``BOB_RAO``, a subnet ``sn`` that bob owns (hotkey ``bob/owner``) with ``bob/default``
registered on it as a validator, so transfers and stakes between named wallets can be run
through the real CLI. Alice's balance is untouched by the set-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from taoflow.cli.app import run
from taoflow.ledger.keys import Keypair
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.signing import sign
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.writer_key import load_or_create_writer_key
from taoflow.wallet import (
    PASSPHRASE_ENV,
    SCRYPT_N_MIN,
    create_wallet,
    load_hotkey,
    unlock_coldkey,
)

TAO = 10**9
PASSPHRASE = "correct horse battery staple"
ALICE_RAO = 41_449_300_965
BOB_RAO = 20 * TAO
SUBNET = "sn"
SUBNET_LOCK_RAO = 1 * TAO
REGISTRATION_RAO = 1 * TAO


@dataclass(frozen=True)
class Ran:
    """One in-process CLI run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> Ran:
    """``taoflow ARGS --home HOME`` through the real entry point's error handling."""
    capsys.readouterr()
    code = run([*args, "--home", str(home)])
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def ledger_files(home: Path) -> dict[str, bytes]:
    """Every file under the home's ledger, by relative path: equal before and after = unchanged."""
    root = home / "ledger"
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "LOCK"
    }


def _signed(ledger: Ledger, tx: Tx, keypair: Keypair) -> Tx:
    state = ledger.state()
    with_nonce = dataclasses.replace(tx, nonce=state.next_nonce(keypair.public_hex))
    return sign(with_nonce, keypair, network_id=state.network_id)


def wallet_network(home: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """The network described in the module docstring; the passphrase is set in the env."""
    wallets = home / "wallets"
    for name, hotkeys in (("alice", ("default",)), ("bob", ("default", "owner"))):
        create_wallet(
            wallets, name=name, passphrase=PASSPHRASE, hotkeys=hotkeys, scrypt_n=SCRYPT_N_MIN
        )
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    alice = unlock_coldkey(wallets, name="alice", passphrase=PASSPHRASE)
    bob = unlock_coldkey(wallets, name="bob", passphrase=PASSPHRASE)
    owner_hot = load_hotkey(wallets, wallet="bob", hotkey="owner")
    bob_hot = load_hotkey(wallets, wallet="bob", hotkey="default")
    writer_path = home / "keys" / "writer.key"
    writer = load_or_create_writer_key(writer_path)
    ledger = Ledger.open(home / "ledger", writer_key_path=writer_path)
    params = NetworkParams.create(name="amounts", writer_key=writer.public_hex)
    network = Tx("genesis/network", Kind.NETWORK, payload=canonical_json(params.to_payload()))
    mints = [
        Tx("m/alice", Kind.GENESIS_MINT, coldkey=alice.public_hex, amount_rao=ALICE_RAO),
        Tx("m/bob", Kind.GENESIS_MINT, coldkey=bob.public_hex, amount_rao=BOB_RAO),
    ]
    ledger.commit([network, *mints])
    config = canonical_json({"tempo_blocks": 100, "registration_cost_rao": REGISTRATION_RAO})
    create = Tx(
        "create",
        Kind.SUBNET_CREATE,
        subnet=SUBNET,
        coldkey=bob.public_hex,
        hotkey=owner_hot.public_hex,
        amount_rao=SUBNET_LOCK_RAO,
        payload=config,
    )
    ledger.commit([_signed(ledger, create, bob)], allow_system=False)
    register = Tx(
        "reg/bob",
        Kind.REGISTER,
        subnet=SUBNET,
        coldkey=bob.public_hex,
        hotkey=bob_hot.public_hex,
        amount_rao=ledger.state().registration_cost(SUBNET),
        payload=canonical_json({"role": "validator"}),
    )
    ledger.commit([_signed(ledger, register, bob)], allow_system=False)
    return ledger
