"""Co-signers of an epoch batch: the hosted validators whose hotkeys this machine holds.

Each hosted validator signs the hash of the epoch batch it helped compute (``Ledger.commit``
puts the signatures in the batch file); ``taoflow ledger verify`` reports the share of validator
stake that signed. A validator whose hotkey is not on this machine, or whose wallet cannot be
read, simply does not sign — finality shows it; the epoch is never blocked by it.

Bound: at most ``WALLETS_MAX`` wallets are examined.
"""

from __future__ import annotations

import logging
from pathlib import Path

from taoflow.ledger.keys import Keypair
from taoflow.tasks.gather import EpochContext

WALLETS_MAX = 10_000
log = logging.getLogger("taoflow.cosign")


def hosted_cosigners(ctx: EpochContext, *, wallets_root: Path | None) -> list[Keypair]:
    """The hotkeys of ``ctx``'s hosted validators found in the wallets under ``wallets_root``."""
    from taoflow.wallet import WalletError, list_wallets, load_hotkey

    wanted = {n.hotkey for n in ctx.neurons if ctx.is_hosted_validator(n.uid)}
    if not wanted or wallets_root is None or not wallets_root.is_dir():
        return []
    try:
        wallets = list_wallets(wallets_root)[:WALLETS_MAX]
    except WalletError as exc:
        log.warning("no co-signatures: wallets unreadable: %s", exc)
        return []
    keys: list[Keypair] = []
    for info in wallets:
        for name, account in info.hotkeys.items():
            if account not in wanted:
                continue
            try:
                keys.append(load_hotkey(wallets_root, wallet=info.name, hotkey=name))
            except WalletError as exc:
                log.warning("validator %s… does not co-sign: %s", account[:12], exc)
    return keys
