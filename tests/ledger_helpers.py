"""Test helpers: deterministic ed25519 test accounts and signing with the right nonce."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from taoflow.ledger.keys import Keypair
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.payouts import EpochShares
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.signing import network_prefix, sign, signer_of, signing_message
from taoflow.ledger.state import Applied, LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.writer_key import load_or_create_writer_key

TAO = 10**9


@cache
def key(name: str) -> Keypair:
    """A fixed test key per name (never use derived keys outside tests)."""
    return Keypair.from_private_bytes(hashlib.sha256(f"test-key/{name}".encode()).digest())


def acct(name: str) -> str:
    """The account id (public key hex) of the test key ``name``."""
    return key(name).public_hex


KEYS_BY_ACCOUNT: dict[str, Keypair] = {}


def signed(state: LedgerState, tx: Tx, *, nonce: int | None = None) -> Tx:
    """``tx`` with the signer's next nonce (or ``nonce``) and a valid signature."""
    signer = signer_of(tx)
    if signer is None:
        return tx
    keypair = next(
        (k for k in (key(n) for n in NAMES) if k.public_hex == signer),
        None,
    )
    if keypair is None:
        raise KeyError(f"no test key for {signer[:12]}")
    chosen = state.next_nonce(signer) if nonce is None else nonce
    return sign(dataclasses.replace(tx, nonce=chosen), keypair, network_id=state.network_id)


def raw_signature(keypair: Keypair, tx: Tx, *, network_id: str = "") -> bytes:
    """The signature field ``keypair`` would give ``tx`` on the network ``network_id``."""
    return network_prefix(network_id) + keypair.sign(signing_message(tx, network_id))


NAMES = ("alice", "bob", "carol", "dave", "alice-hot", "bob-hot", "carol-hot", "eve", "frank")


def mint(tx_id: str, name: str, amount_rao: int) -> Tx:
    return Tx(tx_id, Kind.GENESIS_MINT, coldkey=acct(name), amount_rao=amount_rao)


def epoch_batch(
    state: LedgerState,
    subnet: str,
    *,
    block: int,
    incentive: Sequence[int] = (),
    dividends: Sequence[int] = (),
    validator_share: Sequence[int] = (),
    errors: Sequence[int] = (),
    note: str = "",
) -> list[Tx]:
    """The valid next epoch of ``subnet`` for these integer shares (default 0 per uid).

    ``note`` goes into the epoch payload: two notes give two valid but different batches.

    Built from the ledger's own plan (``LedgerState.epoch_plan``), as the epoch flow does.
    """
    uids = state.neurons.get(subnet, {})
    n = len(uids)
    shares = EpochShares(
        hotkeys=tuple(uids[u].hotkey for u in range(n)),
        incentive_q=tuple(incentive) or (0,) * n,
        dividends_q=tuple(dividends) or (0,) * n,
        validator_share_q=tuple(validator_share) or (0,) * n,
        rejected_uids=frozenset(errors),
    )
    plan = state.epoch_plan(subnet, shares)
    epoch = state.last_epoch.get(subnet, -1) + 1
    payload = {
        "scheduled_rao": plan.scheduled_rao,
        "unissued_rao": plan.payouts.unissued_rao,
        "shares": shares.to_payload(),
        "evaluation": {"errors": {str(uid): "rejected" for uid in errors}},
        **({"note": note} if note else {}),
    }
    prefix = f"epoch/{subnet}/{epoch}"
    txs = [
        Tx(
            prefix,
            Kind.EPOCH,
            subnet=subnet,
            epoch=epoch,
            block=block,
            amount_rao=plan.total_rao,
            payload=canonical_json(payload),
        )
    ]
    for entry in plan.entries:
        txs.append(
            Tx(
                f"{prefix}/{entry.kind.value}/{entry.uid}/{entry.coldkey}",
                entry.kind,
                subnet=subnet,
                epoch=epoch,
                block=block,
                coldkey=entry.coldkey,
                hotkey=entry.hotkey,
                uid=entry.uid,
                amount_rao=entry.amount_rao,
            )
        )
    return txs


def open_network(home: Path, name: str = "chaos", **kwargs: Any) -> Ledger:
    """A ledger whose first batch names a network, funds alice, bob, carol and dave."""
    writer_path = home / "keys" / "writer.key"
    writer = load_or_create_writer_key(writer_path)
    ledger = Ledger.open(home / "ledger", writer_key_path=writer_path, **kwargs)
    params = NetworkParams.create(name=name, writer_key=writer.public_hex)
    network = Tx("genesis/network", Kind.NETWORK, payload=canonical_json(params.to_payload()))
    mints = [mint(f"m/{who}", who, 100 * TAO) for who in ("alice", "bob", "carol", "dave")]
    ledger.commit([network, *mints])
    return ledger


def commit_signed(ledger: Ledger, *txs: Tx) -> None:
    """Commit each user transaction signed with the signer's next nonce, one batch each."""
    for tx in txs:
        ledger.commit([signed(ledger.state(), tx)], allow_system=False)


def network_with_subnet(home: Path, *, subnet: str = "sn", **open_kwargs: Any) -> Ledger:
    """``open_network`` plus subnet ``subnet`` owned by alice: uid 0 = bob-hot (miner),
    uid 1 = carol-hot (validator); one batch per transaction (4 batches in all)."""
    ledger = open_network(home, **open_kwargs)
    config = canonical_json({"tempo_blocks": 100, "registration_cost_rao": TAO})
    commit_signed(
        ledger,
        Tx(
            "create",
            Kind.SUBNET_CREATE,
            subnet=subnet,
            coldkey=acct("alice"),
            hotkey=acct("alice-hot"),
            amount_rao=10 * TAO,
            payload=config,
        ),
    )
    for who, role in (("bob", "miner"), ("carol", "validator")):
        commit_signed(
            ledger,
            Tx(
                f"reg/{who}",
                Kind.REGISTER,
                subnet=subnet,
                coldkey=acct(who),
                hotkey=acct(f"{who}-hot"),
                amount_rao=ledger.state().registration_cost(subnet),
                payload=canonical_json({"role": role}),
            ),
        )
    return ledger


def apply_all(state: LedgerState, txs: Sequence[Tx]) -> None:
    """Apply ``txs`` in order, failing on the first that is not ``Applied``."""
    for tx in txs:
        outcome = state.apply(tx)
        if not isinstance(outcome, Applied):
            raise AssertionError(f"{tx.tx_id}: {outcome}")
    state.check_supply()
    state.check_epochs_complete()


def concurrent_worker(
    root: str, name: str, transfers: int, barrier: object, results: object
) -> None:
    """Commit ``transfers`` signed transfers from ``name`` to carol, each as its own batch."""
    from pathlib import Path

    from taoflow.ledger.store import Ledger

    ledger = Ledger.open(Path(root))
    barrier.wait()  # type: ignore[attr-defined]
    for i in range(transfers):
        tx = Tx(
            f"{name}/{i}", Kind.TRANSFER, coldkey=acct(name), dest=acct("carol"), amount_rao=i + 1
        )
        result = ledger.commit([signed(ledger.state(), tx, nonce=i + 1)])
        results.put((name, i, result.batch_no))  # type: ignore[attr-defined]


def epoch_worker(root: str, note: str, barrier: object, results: object) -> None:
    """Try to commit epoch 0 of subnet "sn" (a valid batch whose payload carries ``note``)."""
    from pathlib import Path

    from taoflow.ledger.errors import BatchRejected
    from taoflow.ledger.store import Ledger

    ledger = Ledger.open(Path(root))
    batch = epoch_batch(ledger.state(), "sn", block=10, note=note)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        result = ledger.commit(batch)
        results.put(("epoch", note, result.batch_no))  # type: ignore[attr-defined]
    except BatchRejected as exc:
        results.put(("epoch", note, f"rejected: {exc.reason}"))  # type: ignore[attr-defined]
