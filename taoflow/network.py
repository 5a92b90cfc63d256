"""The demo network's genesis: accounts, the ``digits`` subnet, trained miners, staked validators.

Imperative shell: trains real models (``tasks.miner_kit``), stores them in the content-addressed
artifact store and writes everything to the ledger as one genesis batch with deterministic
transaction ids, so a second genesis on the same ledger is a no-op.

The batch starts with the ``network`` entry (name, the writer key that signs batches, a random
salt, the per-transaction fee); every user transaction after it is signed for that network and
pays the fee like any other (genesis is not free): the demo balances cover it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from taoflow.evaluation_sets import EvaluationSet, load_evaluation_set
from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.keys import Keypair
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.registration import RegistrationPolicy
from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json
from taoflow.ledger.signing import sign, signer_of
from taoflow.ledger.store import CommitResult, Ledger
from taoflow.ledger.store.writer_key import load_or_create_writer_key
from taoflow.ledger.submissions import submission_binding
from taoflow.tasks import artifact_store
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.miner_kit import train_mlp
from taoflow.tasks.models.artifacts import submission_bytes
from taoflow.wallet import DEMO_PASSPHRASE as DEMO_PASSPHRASE  # re-exported for the demo
from taoflow.wallet import create_wallet, list_wallets, load_hotkey, unlock_coldkey

SUBNET = "digits"
NETWORK_NAME = "taoflow-demo"
OWNER = "owner"
LOCK_COST_RAO = 100 * RAO_PER_TAO
REGISTRATION_COST_RAO = 1 * RAO_PER_TAO


@dataclass(frozen=True)
class ValidatorSpec:
    name: str
    balance_tao: int
    stake_tao: int


@dataclass(frozen=True)
class MinerSpec:
    name: str
    hidden_sizes: tuple[int, ...]
    epochs: int
    seed: int


VALIDATORS = (
    ValidatorSpec("validator-0", 12_000, 10_000),
    ValidatorSpec("validator-1", 7_000, 6_000),
    ValidatorSpec("validator-2", 4_000, 3_000),
    ValidatorSpec("validator-3", 1_500, 1_000),
)
# Different sizes and training lengths → different accuracies.
MINERS = (
    MinerSpec("miner-0", (4,), 1, 100),
    MinerSpec("miner-1", (8,), 1, 101),
    MinerSpec("miner-2", (8,), 3, 102),
    MinerSpec("miner-3", (16,), 2, 103),
    MinerSpec("miner-4", (16,), 6, 104),
    MinerSpec("miner-5", (32,), 4, 105),
    MinerSpec("miner-6", (32,), 10, 106),
    MinerSpec("miner-7", (64,), 12, 107),
    MinerSpec("miner-8", (64, 32), 20, 108),
    MinerSpec("miner-9", (64,), 30, 109),
)
MINER_BALANCE_TAO = 5
OWNER_BALANCE_TAO = 1_000


NEW_SUBNET_YUMA = YumaParams(yuma3=True, liquid_alpha=True, commit_reveal=True)
"""Consensus settings of a NEW subnet (existing subnets keep the ones stored at creation).

Yuma3 bonds with liquid alpha make copying last epoch's consensus unprofitable: a copier bonds
to the new best miner one epoch late and earns 0.46× an honest validator's dividends in the
copier scenario (``tasks.audit.copier``), against 0.73× with the chain's legacy bonds.
Commit-reveal's column mask (spec §4.5.5) drops a validator's weight on a miner registered after
the validator's oldest unexpired weights commit; hosted validators set weights directly (no
commit block: never masked), and an external validator's revealed weights already count from
their commit block (``last_update``), whose outdated-entry rule (§4.5.4) drops at least as much.
The chain defaults in ``tasks.consensus.params.YumaParams`` stay as subtensor has them."""


def subnet_config(eval_set: EvaluationSet, **overrides: Any) -> dict[str, Any]:
    """A subnet on ``eval_set``: task, model family limits, hyper-parameters (with overrides)."""
    unknown = sorted(set(overrides) - set(_subnet_defaults(eval_set)))
    if unknown:
        raise ValueError(f"unknown subnet setting(s) {unknown}")
    return {**_subnet_defaults(eval_set), **overrides}


def _families(eval_set: EvaluationSet) -> list[str]:
    """MLPs for any float features, CNNs for square images, embedding bags for token ids."""
    if eval_set.feature_dtype == "int64":
        return ["embedding_bag"]
    side = int(eval_set.input_dim**0.5)
    return ["mlp", "cnn"] if side * side == eval_set.input_dim else ["mlp"]


def _subnet_defaults(eval_set: EvaluationSet) -> dict[str, Any]:
    return {
        "task": eval_set.task,
        "evaluation_set": eval_set.name,
        "evaluation_set_hash": eval_set.content_hash,
        "metric": eval_set.metric,
        "model_family": "mlp" if eval_set.feature_dtype == "float32" else "embedding_bag",
        "model_families": _families(eval_set),
        "params_max": 20_000 if eval_set.feature_dtype == "float32" else 200_000,
        "bytes_max": 256 * 1024 if eval_set.feature_dtype == "float32" else 1024 * 1024,
        "layers_max": 4,
        "tempo_blocks": 100,
        "uids_max": 64,
        "registration_cost_rao": REGISTRATION_COST_RAO,
        "registration_cost_min_rao": REGISTRATION_COST_RAO // 10,
        "registration_cost_max_rao": 100 * REGISTRATION_COST_RAO,
        "registration_cost_increase_ppm": 100_000,
        "registration_cost_decay_ppm": 50_000,
        "immunity_period_blocks": 4_096,
        "evaluation_delay_blocks": 0,
        "submissions_per_epoch_max": 2,
        "sample_size": 300,
        "validator_sample_size": 200,
        "validator_policy": {"temperature": 0.1, "epsilon": 0.005, "epsilon_decay_blocks": 7_200},
        "emission_split_ppm": {"owner": 180_000, "miners": 410_000, "validators": 410_000},
        "yuma": NEW_SUBNET_YUMA.to_dict(),
    }


HOTKEY_NAME = "default"


@dataclass(frozen=True)
class DemoKeys:
    """The unlocked coldkey and hotkey of one demo participant."""

    coldkey: Keypair
    hotkey: Keypair


def demo_wallets(wallets_root: Path, *, passphrase: str) -> dict[str, DemoKeys]:
    """Create (once) and unlock the wallets of every demo participant."""
    names = [OWNER, *(v.name for v in VALIDATORS), *(m.name for m in MINERS)]
    existing = {info.name for info in list_wallets(wallets_root)}
    keys = {}
    for name in names:
        if name not in existing:
            create_wallet(wallets_root, name=name, passphrase=passphrase, hotkeys=(HOTKEY_NAME,))
        keys[name] = DemoKeys(
            coldkey=unlock_coldkey(wallets_root, name=name, passphrase=passphrase),
            hotkey=load_hotkey(wallets_root, wallet=name, hotkey=HOTKEY_NAME),
        )
    return keys


class _Signer:
    """Signs a sequence of user transactions with consecutive nonces per signer."""

    def __init__(self, keys: dict[str, DemoKeys], *, network_id: str) -> None:
        self.network_id = network_id
        self.by_account = {}
        for k in keys.values():
            self.by_account[k.coldkey.public_hex] = k.coldkey
            self.by_account[k.hotkey.public_hex] = k.hotkey
        self.nonces: dict[str, int] = {}

    def __call__(self, tx: Tx) -> Tx:
        account = signer_of(tx)
        if account is None:
            return tx
        nonce = self.nonces.get(account, 0) + 1
        self.nonces[account] = nonce
        return sign(
            dataclasses.replace(tx, nonce=nonce),
            self.by_account[account],
            network_id=self.network_id,
        )


def genesis_transactions(
    *,
    artifacts_root: Path,
    keys: dict[str, DemoKeys],
    writer_key: Keypair,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Tx]:
    """Train the miners, store their artifacts and return the signed genesis batch."""
    eval_set = load_evaluation_set(SUBNET)
    subnet_cfg = subnet_config(eval_set)
    network = NetworkParams.create(name=NETWORK_NAME, writer_key=writer_key.public_hex)
    signer = _Signer(keys, network_id=network.network_id)
    cold = {name: k.coldkey.public_hex for name, k in keys.items()}
    hot = {name: k.hotkey.public_hex for name, k in keys.items()}
    balances = {
        OWNER: OWNER_BALANCE_TAO,
        **{v.name: v.balance_tao for v in VALIDATORS},
        **{m.name: MINER_BALANCE_TAO for m in MINERS},
    }
    txs: list[Tx] = [
        Tx("genesis/network", Kind.NETWORK, payload=canonical_json(network.to_payload()))
    ]
    txs += [
        Tx(
            f"genesis/mint/{name}",
            Kind.GENESIS_MINT,
            coldkey=cold[name],
            amount_rao=tao * RAO_PER_TAO,
        )
        for name, tao in balances.items()
    ]
    txs.append(
        signer(
            Tx(
                f"genesis/subnet/{SUBNET}",
                Kind.SUBNET_CREATE,
                subnet=SUBNET,
                coldkey=cold[OWNER],
                hotkey=hot[OWNER],
                amount_rao=LOCK_COST_RAO,
                payload=canonical_json(subnet_cfg),
            )
        )
    )
    txs.extend(_registrations(subnet_cfg, keys=keys, signer=signer))
    for v in VALIDATORS:
        txs.append(
            signer(
                Tx(
                    f"genesis/stake/{v.name}",
                    Kind.ADD_STAKE,
                    coldkey=cold[v.name],
                    hotkey=hot[v.name],
                    amount_rao=v.stake_tao * RAO_PER_TAO,
                )
            )
        )
    txs.extend(
        _trained_submissions(
            eval_set, artifacts_root=artifacts_root, keys=keys, signer=signer, progress=progress
        )
    )
    return txs


def _registrations(
    subnet_cfg: dict[str, Any], *, keys: dict[str, DemoKeys], signer: _Signer
) -> list[Tx]:
    """Every demo validator, then every miner, registered at the rising registration cost."""
    policy = RegistrationPolicy.from_config(SubnetConfig.from_payload(subnet_cfg))
    cost_rao = policy.initial_cost_rao
    txs = []
    for role, names in (
        ("validator", [v.name for v in VALIDATORS]),
        ("miner", [m.name for m in MINERS]),
    ):
        for name in names:
            txs.append(
                signer(
                    Tx(
                        f"genesis/register/{SUBNET}/{name}",
                        Kind.REGISTER,
                        subnet=SUBNET,
                        coldkey=keys[name].coldkey.public_hex,
                        hotkey=keys[name].hotkey.public_hex,
                        amount_rao=cost_rao,
                        payload=canonical_json({"role": role}),
                    )
                )
            )
            cost_rao = policy.after_registration(cost_rao)
    return txs


def _trained_submissions(
    eval_set: EvaluationSet,
    *,
    artifacts_root: Path,
    keys: dict[str, DemoKeys],
    signer: _Signer,
    progress: Callable[[str], None],
) -> list[Tx]:
    """Train each demo miner, store its artifact and return its signed submission commit."""
    torch.set_num_threads(1)
    txs = []
    for m in MINERS:
        progress(f"training {m.name} (hidden {list(m.hidden_sizes)}, {m.epochs} epochs)")
        model, config = train_mlp(
            eval_set, hidden_sizes=m.hidden_sizes, epochs=m.epochs, seed=m.seed
        )
        model_bytes, config_bytes = submission_bytes(model, config)
        stored = artifact_store.store(
            artifacts_root, model_bytes=model_bytes, config_bytes=config_bytes
        )
        hotkey = keys[m.name].hotkey.public_hex
        payload = {
            "digest": stored.digest,
            "uri": stored.uri,
            "binding": submission_binding(digest=stored.digest, hotkey=hotkey),
        }
        txs.append(
            signer(
                Tx(
                    f"genesis/submit/{SUBNET}/{m.name}",
                    Kind.SUBMISSION_COMMIT,
                    subnet=SUBNET,
                    coldkey=keys[m.name].coldkey.public_hex,
                    hotkey=hotkey,
                    payload=canonical_json(payload),
                )
            )
        )
    return txs


def ensure_genesis(
    ledger: Ledger,
    *,
    artifacts_root: Path,
    wallets_root: Path,
    passphrase: str,
    writer_key_path: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> CommitResult | None:
    """Write the genesis batch unless the ledger already has one.

    The network's writer key is loaded from ``writer_key_path`` (default: the one ``ledger``
    signs batches with, ``home / "keys" / "writer.key"``), created there if missing.
    """
    if ledger.records():
        return None
    writer_key = load_or_create_writer_key(writer_key_path or ledger.writer_key_path)
    progress("creating and unlocking wallets")
    keys = demo_wallets(wallets_root, passphrase=passphrase)
    txs = genesis_transactions(
        artifacts_root=artifacts_root, keys=keys, writer_key=writer_key, progress=progress
    )
    return ledger.commit(txs)
