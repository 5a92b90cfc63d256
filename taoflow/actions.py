"""User actions: build a transaction, sign it with a local wallet, commit it to the ledger.

Imperative shell over ``ledger`` and ``taoflow.wallet``. Every action either commits exactly one
signed transaction or raises ``ActionError`` with a one-line reason, changing nothing. A reason
names accounts as a person knows them: every account id a local wallet holds is replaced by its
wallet (or ``wallet/hotkey``) name (``taoflow.names.name_accounts``); amounts are τ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taoflow.ledger.errors import BatchRejected, LedgerError
from taoflow.ledger.keys import Keypair
from taoflow.ledger.names import PathOutsideRoot, check_subnet_name
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.signing import sign
from taoflow.ledger.store import CommitResult, Ledger
from taoflow.ledger.submissions import submission_binding
from taoflow.names import account_labels, name_accounts
from taoflow.settings import Settings
from taoflow.wallet import WalletError, load_hotkey, unlock_coldkey_for_command

TX_ID_RANDOM_BYTES = 12


class ActionError(Exception):
    """An action could not be carried out; the message says why. Nothing was committed."""


@dataclass(frozen=True)
class Done:
    tx_id: str
    batch_no: int | None
    detail: dict[str, Any]


def new_tx_id(kind: Kind) -> str:
    return f"{kind.value}/{secrets.token_hex(TX_ID_RANDOM_BYTES)}"


def coldkey(settings: Settings, wallet: str) -> Keypair:
    try:
        return unlock_coldkey_for_command(settings.wallets_dir, name=wallet)
    except WalletError as exc:
        raise ActionError(str(exc)) from None


def hotkey(settings: Settings, wallet: str, name: str) -> Keypair:
    try:
        return load_hotkey(settings.wallets_dir, wallet=wallet, hotkey=name)
    except WalletError as exc:
        raise ActionError(str(exc)) from None


def commit_signed(settings: Settings, tx: Tx, keypair: Keypair) -> CommitResult:
    """Sign ``tx`` with the signer's next nonce and commit it alone, as a user transaction."""
    ledger = Ledger.open(settings.ledger_dir)
    state = ledger.state()
    signed = sign(
        dataclasses.replace(tx, nonce=state.next_nonce(keypair.public_hex)),
        keypair,
        network_id=state.network_id,
    )
    try:
        return ledger.commit([signed], allow_system=False)
    except BatchRejected as exc:
        raise ActionError(named(settings, exc.reason)) from None
    except LedgerError as exc:
        raise ActionError(named(settings, str(exc))) from None


def named(settings: Settings, message: str) -> str:
    """``message`` with the account ids of local wallets shown as wallet names."""
    return name_accounts(message, account_labels(settings.wallets_dir))


def weights_commit_hash(*, uids: list[int], weights: list[int], salt: str) -> str:
    body = canonical_json({"uids": uids, "weights": weights, "salt": salt}).encode()
    return hashlib.sha256(body).hexdigest()


def pending_weights_path(settings: Settings, *, subnet: str, hotkey_hex: str) -> Path:
    """Where a commit's weights wait for the reveal; ``ActionError`` for a name that is not one."""
    problem = check_subnet_name(subnet)
    if problem is not None:
        raise ActionError(problem)
    try:
        return settings.path_under_home("pending-weights", subnet, f"{hotkey_hex}.json")
    except PathOutsideRoot as exc:
        raise ActionError(str(exc)) from None


def save_pending_weights(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    tmp.chmod(0o600)
    tmp.replace(path)


def submission_payload(*, digest: str, uri: str, hotkey_hex: str) -> str:
    return canonical_json(
        {
            "digest": digest,
            "uri": uri,
            "binding": submission_binding(digest=digest, hotkey=hotkey_hex),
        }
    )
