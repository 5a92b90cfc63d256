"""Stage 3 — consensus: build the Yuma inputs of an epoch and run them in DuckDB.

Pure glue between the epoch context (from the ledger), the hosted validators' weights and
``tasks.consensus.sql.run_epoch``. The previous epoch's consensus state (u16 bonds and validator
permits) is read from the ledger's last epoch's records (``EpochContext.previous``) and the new
one is returned (``ConsensusOutcome.state``) for the next epoch's ``bonds`` and ``uids``
records, so consensus depends on the ledger alone.

Invariants: stake is the total stake on each uid's hotkey at the start of the epoch; a validator
that set weights this epoch has ``last_update = current block``; one that never did keeps its
registration block; weights are u16 and max-upscaled per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from taoflow.ledger.config import SubnetConfig
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.types import EpochInputs, EpochOutputs, EpochState
from taoflow.tasks.gather import EpochContext

WEIGHTS_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
)


@dataclass(frozen=True)
class ConsensusOutcome:
    """The epoch's consensus outputs, the weights that produced them, and the state to store
    (u16 bonds and validator permits, read back by the next epoch)."""

    outputs: EpochOutputs
    weights: pa.Table
    state: EpochState


def yuma_params(config: SubnetConfig) -> YumaParams:
    """The subnet's Yuma parameters (``SubnetConfig.yuma``)."""
    return YumaParams(**dict(config.yuma))


def previous_state(ctx: EpochContext) -> EpochState:
    """The consensus state stored by the previous epoch (empty before the first)."""
    previous = ctx.previous
    if len(previous.permits) == 0:
        return EpochState.empty(ctx.n)
    permits = np.asarray(previous.permits.to_numpy(zero_copy_only=False), dtype=np.bool_)
    return EpochState(bonds=previous.bonds, validator_permit=permits).for_uids(ctx.n)


def weights_table(weights: Mapping[int, Mapping[int, int]]) -> pa.Table:
    rows = [
        {"validator": v, "miner": m, "weight_u16": w}
        for v, row in sorted(weights.items())
        for m, w in sorted(row.items())
    ]
    return pa.Table.from_pylist(rows, schema=WEIGHTS_SCHEMA)


def epoch_inputs(
    ctx: EpochContext,
    weights: Mapping[int, Mapping[int, int]],
    *,
    last_update_block: Mapping[int, int] | None = None,
) -> EpochInputs:
    """Yuma inputs; a validator's last update is ``last_update_block[uid]`` or this block."""
    last_update = np.array([n.registered_block for n in ctx.neurons], dtype=np.int64)
    for validator in weights:
        last_update[validator] = (last_update_block or {}).get(validator, ctx.block)
    return EpochInputs(
        stake_rao=np.array([n.stake_rao for n in ctx.neurons], dtype=np.int64),
        weights=weights_table(weights),
        last_update_block=last_update,
        registered_block=np.array([n.registered_block for n in ctx.neurons], dtype=np.int64),
        current_block=ctx.block,
        owner_uid=ctx.owner_uid,
        last_step_block=ctx.previous.block,
        tempo_blocks=ctx.tempo_blocks,
    )


def run_consensus(
    ctx: EpochContext,
    weights: Mapping[int, Mapping[int, int]],
    *,
    last_update_block: Mapping[int, int] | None = None,
) -> ConsensusOutcome:
    """Yuma consensus of the epoch in DuckDB."""
    inputs = epoch_inputs(ctx, weights, last_update_block=last_update_block)
    outputs, state = run_epoch(inputs, yuma_params(ctx.config), previous_state(ctx))
    return ConsensusOutcome(outputs=outputs, weights=inputs.weights, state=state)
