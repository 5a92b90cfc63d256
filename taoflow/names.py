"""Human labels for account ids (64-hex ed25519 public keys) from the local wallets.

Invariants:
- A label is the wallet name for a coldkey and ``wallet/hotkey`` for a hotkey; an account that
  no local wallet holds is shown by its short id (``label``) or left as it is (``name_accounts``).
- The ledger never sees these names: it speaks in account ids, and the CLI turns the ids in what
  it prints (tables, confirmations, the ledger's refusals) into names here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from taoflow.wallet import WalletError, list_wallets

SHORT_ID_CHARS = 10


def short_id(account: str) -> str:
    return account if len(account) <= SHORT_ID_CHARS else f"{account[:SHORT_ID_CHARS]}…"


def account_labels(wallets_root: Path) -> dict[str, str]:
    """account id → "wallet" (coldkey) or "wallet/hotkey" for every local wallet."""
    labels: dict[str, str] = {}
    try:
        wallets = list_wallets(wallets_root)
    except WalletError:
        return labels
    for info in wallets:
        labels[info.coldkey_public_hex] = info.name
        for hotkey, account in info.hotkeys.items():
            labels[account] = f"{info.name}/{hotkey}"
    return labels


def label(account: str, labels: Mapping[str, str]) -> str:
    return labels.get(account, short_id(account))


ACCOUNT_ID_IN_TEXT = re.compile(r"'([0-9a-f]{64})'|\b([0-9a-f]{64})\b")
"""An account id in a message, quoted (as ``repr`` writes it) or bare."""


def name_accounts(text: str, labels: Mapping[str, str]) -> str:
    """``text`` with every account id that a local wallet holds replaced by its label.

    Ids of accounts no local wallet holds, and other 64-hex values (digests, hashes), are left
    exactly as they are.
    """

    def named(match: re.Match[str]) -> str:
        account = match.group(1) or match.group(2)
        return labels.get(account, match.group(0))

    return ACCOUNT_ID_IN_TEXT.sub(named, text)


class UnknownAccount(LookupError):
    """A name that is neither an account id nor a local wallet (or wallet/hotkey)."""


def resolve_account(wallets_root: Path, value: str) -> str:
    """An account id from a hex id, a wallet name (its coldkey) or ``wallet/hotkey``."""
    from taoflow.ledger.keys import is_account_id

    if is_account_id(value):
        return value
    by_label = {lab: account for account, lab in account_labels(wallets_root).items()}
    if value in by_label:
        return by_label[value]
    raise UnknownAccount(
        f"{value!r} is neither an account id nor a local wallet (or wallet/hotkey)"
    )
