"""An epoch's consensus is the same bits every run: float sums add in one order.

DuckDB's parallel aggregates add float terms in the order threads finish; without a fixed order
the last bits of dividends differ run to run (and a quantised share can move by one unit), so a
retried epoch would propose another batch and a replay could not compare bit for bit.
``run_epoch`` runs single-threaded on whatever database it is given.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.types import EpochInputs, EpochState

VALIDATORS, MINERS = 64, 256
N_UIDS = VALIDATORS + MINERS
RUNS = 8


def dense(seed: int, value_column: str, value_type: pa.DataType) -> pa.Table:
    rng = np.random.default_rng(seed)
    validator, miner = np.meshgrid(
        np.arange(VALIDATORS), np.arange(VALIDATORS, N_UIDS), indexing="ij"
    )
    return pa.table(
        {
            "validator": pa.array(validator.ravel(), pa.int32()),
            "miner": pa.array(miner.ravel(), pa.int32()),
            value_column: pa.array(rng.integers(1, 65_536, validator.size), value_type),
        }
    )


def epoch_inputs(seed: int) -> EpochInputs:
    stake = np.zeros(N_UIDS, dtype=np.int64)
    stake[:VALIDATORS] = np.random.default_rng(seed).integers(10**9, 10**13, VALIDATORS)
    return EpochInputs(
        stake_rao=stake,
        weights=dense(seed, "weight_u16", pa.int32()),
        last_update_block=np.full(N_UIDS, 100, dtype=np.int64),
        registered_block=np.zeros(N_UIDS, dtype=np.int64),
        current_block=100,
        owner_uid=None,
        last_step_block=0,
        tempo_blocks=100,
    )


def previous_state(seed: int) -> EpochState:
    """Dense u16 bonds of a previous epoch: their moving average is where parallel sums differ."""
    return EpochState(
        bonds=dense(seed, "bond_u16", pa.uint16()),
        validator_permit=np.arange(N_UIDS) < VALIDATORS,
    )


def distinct_results(params: YumaParams, *, threads: int) -> int:
    inputs, state = epoch_inputs(1), previous_state(101)
    seen = set()
    for _ in range(RUNS):
        database = duckdb.connect(config={"threads": threads})  # a caller asking for parallelism
        outputs, _ = run_epoch(inputs, params, state, connection=database)
        database.close()
        seen.add(
            b"".join(
                getattr(outputs, name).tobytes()
                for name in ("dividends", "incentive", "validator_trust", "consensus")
            )
        )
    return len(seen)


def test_the_same_inputs_give_the_same_bits_on_every_run() -> None:
    # With DuckDB's parallel sums, 8 runs here gave 2-7 different results.
    assert distinct_results(YumaParams(), threads=4) == 1
    assert distinct_results(YumaParams(yuma3=True, liquid_alpha=True), threads=4) == 1
