"""Helpers of the explorer's in-process tests: a private copy of the demo network, signed
transactions committed with its wallets, and a fingerprint of the ledger directory.

Invariants: the shared ``demo_home`` is only ever read (``copy_home`` copies it under the
caller's tmp path); every transaction is signed by a demo wallet and committed through the same
path as the CLI (``taoflow.actions.commit_signed``), so the ledger's rules apply to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

from taoflow.actions import commit_signed, new_tx_id
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.names import account_labels
from taoflow.settings import Settings
from taoflow.wallet import DEMO_PASSPHRASE, PASSPHRASE_ENV, unlock_coldkey

SUBNET = "digits"
"""The demo network's subnet."""


def copy_home(demo_home: Path, dest: Path) -> Path:
    """A copy of the demo network at ``dest`` (which must not exist yet)."""
    shutil.copytree(demo_home, dest)
    return dest


def ledger_digests(home: Path) -> dict[str, str]:
    """sha256 of every file under ``home``/ledger, by relative path (equal = unchanged)."""
    root = home / "ledger"
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def account_of(home: Path, name: str) -> str:
    """The account id of a demo wallet (``owner``) or hotkey (``miner-3/default``)."""
    for account, label in account_labels(home / "wallets").items():
        if label == name:
            return account
    raise LookupError(f"no wallet {name!r} in {home}")


def commit_as(home: Path, wallet: str, tx: Tx) -> str:
    """Sign ``tx`` with ``wallet``'s coldkey (as its ``coldkey``) and commit it; its tx id."""
    settings = Settings(home=home)
    passphrase = os.environ.get(PASSPHRASE_ENV) or DEMO_PASSPHRASE
    key = unlock_coldkey(settings.wallets_dir, name=wallet, passphrase=passphrase)
    commit_signed(settings, dataclasses.replace(tx, coldkey=key.public_hex), key)
    return tx.tx_id


def transfer(home: Path, *, source: str, dest: str, amount_rao: int) -> str:
    """Commit a transfer of ``amount_rao`` from wallet ``source`` to wallet ``dest``."""
    tx = Tx(
        new_tx_id(Kind.TRANSFER),
        Kind.TRANSFER,
        dest=account_of(home, dest),
        amount_rao=amount_rao,
    )
    return commit_as(home, source, tx)


def propose(home: Path, *, title: str, text: str = "", wallet: str = "owner") -> str:
    """Commit, as ``wallet`` (funded in the demo), a ``signal`` proposal titled ``title`` with
    the network's minimum deposit and shortest voting period; its tx id."""
    from taoflow.ledger.store import Ledger

    params = Ledger(Settings(home=home).ledger_dir).state().governance
    payload = canonical_json(
        {
            "kind": "signal",
            "title": title,
            "text": text,
            "deposit_rao": params.deposit_min_rao,
            "voting_blocks": params.voting_blocks_min,
        }
    )
    tx = Tx(
        new_tx_id(Kind.PROPOSAL),
        Kind.PROPOSAL,
        amount_rao=params.deposit_min_rao,
        payload=payload,
    )
    return commit_as(home, wallet, tx)


def propose_change(
    home: Path, *, title: str, changes: dict[str, object], backtest_sha256: str
) -> str:
    """Commit, as the demo owner, a ``subnet_params`` proposal of ``changes`` to the demo's
    subnet naming the backtest report ``backtest_sha256``; its tx id."""
    from taoflow.ledger.store import Ledger

    params = Ledger(Settings(home=home).ledger_dir).state().governance
    payload = {
        "kind": "subnet_params",
        "title": title,
        "deposit_rao": params.deposit_min_rao,
        "voting_blocks": params.voting_blocks_min,
        "subnet": SUBNET,
        "changes": changes,
        "backtest_sha256": backtest_sha256,
    }
    tx = Tx(
        new_tx_id(Kind.PROPOSAL),
        Kind.PROPOSAL,
        amount_rao=params.deposit_min_rao,
        payload=canonical_json(payload),
    )
    return commit_as(home, "owner", tx)


def vote(home: Path, *, wallet: str, proposal_id: str, choice: int) -> str:
    """Commit ``wallet``'s vote ``choice`` (an index into ``PROPOSAL_OPTIONS``); its tx id."""
    payload = canonical_json({"proposal_id": proposal_id, "choice": choice})
    return commit_as(home, wallet, Tx(new_tx_id(Kind.VOTE), Kind.VOTE, payload=payload))
