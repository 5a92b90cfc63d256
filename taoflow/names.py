"""Human labels for account ids (64-hex ed25519 public keys) from the local wallets."""

from __future__ import annotations

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


def label(account: str, labels: dict[str, str]) -> str:
    return labels.get(account, short_id(account))


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
