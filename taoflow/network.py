"""The demo network's genesis: accounts, the ``digits`` subnet, trained miners, staked validators.

Imperative shell: trains real models (``tasks.miner_kit``), stores them in the content-addressed
artifact store and writes everything to the ledger as one genesis batch with deterministic
transaction ids, so a second genesis on the same ledger is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evaluation_sets import EvaluationSet, load_evaluation_set
from ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json
from ledger.store import CommitResult, Ledger
from tasks import artifact_store
from tasks.consensus.params import YumaParams
from tasks.miner_kit import train_mlp
from tasks.models.artifacts import submission_bytes

SUBNET = "digits"
OWNER = "owner"
OWNER_HOTKEY = "owner-hotkey"
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


def subnet_config(eval_set: EvaluationSet) -> dict[str, Any]:
    """The ``digits`` subnet: task, evaluation set, model family limits, hyper-parameters."""
    return {
        "task": eval_set.task,
        "evaluation_set": eval_set.name,
        "evaluation_set_hash": eval_set.content_hash,
        "metric": eval_set.metric,
        "model_family": "mlp",
        "params_max": 20_000,
        "bytes_max": 256 * 1024,
        "layers_max": 4,
        "tempo_blocks": 100,
        "uids_max": 64,
        "registration_cost_rao": REGISTRATION_COST_RAO,
        "sample_size": 300,
        "validator_sample_size": 200,
        "weights_temperature": 0.02,
        "emission_split_ppm": {"owner": 180_000, "miners": 410_000, "validators": 410_000},
        "yuma": YumaParams().to_dict(),
    }


def coldkey(name: str) -> str:
    return f"{name}-coldkey"


def hotkey(name: str) -> str:
    return f"{name}-hotkey"


def genesis_transactions(
    *, artifacts_root: Path, progress: Callable[[str], None] = lambda _: None
) -> list[Tx]:
    """Train the miners, store their artifacts and return the genesis batch."""
    eval_set = load_evaluation_set(SUBNET)
    txs: list[Tx] = [
        Tx(
            "genesis/mint/owner",
            Kind.GENESIS_MINT,
            coldkey=coldkey(OWNER),
            block=0,
            amount_rao=OWNER_BALANCE_TAO * RAO_PER_TAO,
        )
    ]
    for v in VALIDATORS:
        txs.append(
            Tx(
                f"genesis/mint/{v.name}",
                Kind.GENESIS_MINT,
                coldkey=coldkey(v.name),
                block=0,
                amount_rao=v.balance_tao * RAO_PER_TAO,
            )
        )
    for m in MINERS:
        txs.append(
            Tx(
                f"genesis/mint/{m.name}",
                Kind.GENESIS_MINT,
                coldkey=coldkey(m.name),
                block=0,
                amount_rao=MINER_BALANCE_TAO * RAO_PER_TAO,
            )
        )
    txs.append(
        Tx(
            f"genesis/subnet/{SUBNET}",
            Kind.SUBNET_CREATE,
            subnet=SUBNET,
            block=0,
            coldkey=coldkey(OWNER),
            hotkey=OWNER_HOTKEY,
            amount_rao=LOCK_COST_RAO,
            payload=canonical_json(subnet_config(eval_set)),
        )
    )
    for role, names in (
        ("validator", [v.name for v in VALIDATORS]),
        ("miner", [m.name for m in MINERS]),
    ):
        for name in names:
            txs.append(
                Tx(
                    f"genesis/register/{SUBNET}/{name}",
                    Kind.REGISTER,
                    subnet=SUBNET,
                    block=0,
                    coldkey=coldkey(name),
                    hotkey=hotkey(name),
                    amount_rao=REGISTRATION_COST_RAO,
                    payload=canonical_json({"role": role}),
                )
            )
    for v in VALIDATORS:
        txs.append(
            Tx(
                f"genesis/stake/{v.name}",
                Kind.ADD_STAKE,
                coldkey=coldkey(v.name),
                hotkey=hotkey(v.name),
                block=0,
                amount_rao=v.stake_tao * RAO_PER_TAO,
            )
        )
    torch.set_num_threads(1)
    for m in MINERS:
        progress(f"training {m.name} (hidden {list(m.hidden_sizes)}, {m.epochs} epochs)")
        model, config = train_mlp(
            eval_set, hidden_sizes=m.hidden_sizes, epochs=m.epochs, seed=m.seed
        )
        model_bytes, config_bytes = submission_bytes(model, config)
        stored = artifact_store.store(
            artifacts_root, model_bytes=model_bytes, config_bytes=config_bytes
        )
        txs.append(
            Tx(
                f"genesis/submit/{SUBNET}/{m.name}",
                Kind.SUBMISSION_COMMIT,
                subnet=SUBNET,
                block=0,
                coldkey=coldkey(m.name),
                hotkey=hotkey(m.name),
                payload=canonical_json({"digest": stored.digest, "uri": stored.uri}),
            )
        )
    return txs


def ensure_genesis(
    ledger: Ledger, *, artifacts_root: Path, progress: Callable[[str], None] = lambda _: None
) -> CommitResult | None:
    """Write the genesis batch unless the ledger already has one."""
    if ledger.records():
        return None
    return ledger.commit(genesis_transactions(artifacts_root=artifacts_root, progress=progress))
