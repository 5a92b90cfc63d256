"""Property test: the DuckDB SQL epoch equals the dense NumPy reference on random inputs.

Each example is a short chain of three epochs over a small subnet (1–12 uids, possibly growing). Each
implementation is fed its *own* returned state, so the stored u16 bonds and permits are compared
through the feedback loop, not just once. Continuous outputs must agree to 1e-9 absolute; booleans,
permits and stored u16 bonds must agree exactly (both implementations quantise with the same
``floor(65535·x + U16_FLOOR_SNAP_LSB)`` rule, so no ±1 allowance is needed).

The generators deliberately produce the awkward cases of the spec: explicit zero weights, tied
weights, zero stakes, stakes whose cumulative sum hits κ exactly (e.g. 32767 vs 32768 with
kappa_u16 = 32767, or three equal stakes with kappa_u16 = 21845 = 65535/3), inactive validators,
validators without permits, miners registered at or after their validator's last weight update,
weights to uids ≥ n, owner self-weights, a single uid, and no weights at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.consensus import (
    EpochInputs,
    EpochOutputs,
    EpochState,
    YumaParams,
    reference_epoch,
    run_epoch,
)

N_EPOCHS = 3
MAX_UIDS = 12
ATOL = 1e-9

STAKE_POOL_RAO = [0, 1, 2, 3, 5, 7, 32_767, 32_768, 65_535, 1_000_000, 10**12, 10**18]
WEIGHT_POOL_U16 = [0, 1, 2, 3, 21_845, 32_767, 32_768, 65_535]
KAPPA_POOL_U16 = [32_767, 32_768, 21_845, 43_690, 13_107, 0, 1, 65_535]
BMA_POOL_PPM = [900_000, 975_000, 0, 1_000_000, 500_000]
PENALTY_POOL_U16 = [65_535, 0, 32_768, 1]

FLOAT_VECTORS = (
    "stake_weight",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "server_emission_share",
    "validator_emission_share",
)
BOOL_VECTORS = ("active", "validator_permit")


@dataclass(frozen=True)
class Scenario:
    params: YumaParams
    initial_state: EpochState
    epochs: tuple[EpochInputs, ...]


def _stake(draw: st.DrawFn) -> int:
    return draw(st.one_of(st.sampled_from(STAKE_POOL_RAO), st.integers(0, 100)))


def _block(draw: st.DrawFn, *, specials: list[int], upper: int) -> int:
    candidates = sorted({b for b in specials if 0 <= b <= upper})
    return draw(st.one_of(st.sampled_from(candidates), st.integers(0, upper)))


def _weights(draw: st.DrawFn, *, n_uids: int) -> pa.Table:
    if draw(st.integers(0, 9)) == 0:
        entries: list[tuple[int, int, int]] = []  # no weights at all
    else:
        entries = draw(
            st.lists(
                st.tuples(
                    st.integers(0, n_uids - 1),
                    st.integers(0, n_uids + 1),  # uids ≥ n are dropped by the epoch
                    st.one_of(st.sampled_from(WEIGHT_POOL_U16), st.integers(0, 65_535)),
                ),
                max_size=3 * n_uids + 2,
                unique_by=lambda entry: (entry[0], entry[1]),
            )
        )
    validators, miners, values = zip(*entries, strict=True) if entries else ((), (), ())
    return pa.table(
        {
            "validator": pa.array(validators, pa.int32()),
            "miner": pa.array(miners, pa.int32()),
            "weight_u16": pa.array(values, pa.int32()),
        }
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    params = YumaParams(
        kappa_u16=draw(st.one_of(st.sampled_from(KAPPA_POOL_U16), st.integers(0, 65_535))),
        bonds_moving_average_ppm=draw(
            st.one_of(st.sampled_from(BMA_POOL_PPM), st.integers(0, 1_000_000))
        ),
        bonds_penalty_u16=draw(
            st.one_of(st.sampled_from(PENALTY_POOL_U16), st.integers(0, 65_535))
        ),
        max_validators=draw(st.integers(1, MAX_UIDS + 2)),
        activity_cutoff_blocks=draw(st.integers(1, 40)),
        stake_threshold_rao=draw(st.sampled_from([0, 0, 1, 3, 32_768])),
    )
    n_uids = draw(st.integers(1, 10))
    owner_uid = draw(st.one_of(st.none(), st.integers(0, n_uids - 1)))
    tempo_blocks = draw(st.integers(1, 20))
    current_block = draw(st.integers(0, 60))
    last_step_block = draw(st.sampled_from([0, 0, current_block // 2, current_block]))

    initial_permits = np.array(draw(st.lists(st.booleans(), min_size=n_uids, max_size=n_uids)))
    bond_entries = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_uids - 1),
                st.integers(0, n_uids - 1),
                st.one_of(st.sampled_from([1, 21_845, 65_535]), st.integers(1, 65_535)),
            ),
            max_size=2 * n_uids,
            unique_by=lambda entry: (entry[0], entry[1]),
        )
    )
    bond_columns = zip(*bond_entries, strict=True) if bond_entries else ((), (), ())
    initial_bonds = pa.Table.from_arrays(
        [pa.array(list(column), pa.int32()) for column in bond_columns],
        names=["validator", "miner", "bond_u16"],
    )
    initial_state = EpochState(bonds=initial_bonds, validator_permit=initial_permits)

    epochs = []
    for _ in range(N_EPOCHS):
        last_tempo = last_step_block + 1 if last_step_block else current_block - tempo_blocks
        specials = [0, current_block, last_step_block, last_tempo, last_tempo - 1]
        stake_rao = np.array([_stake(draw) for _ in range(n_uids)], dtype=np.int64)
        registered = np.array(
            [_block(draw, specials=specials, upper=current_block) for _ in range(n_uids)],
            dtype=np.int64,
        )
        last_update = np.array(
            [
                _block(draw, specials=[*specials, int(registered[i])], upper=current_block)
                for i in range(n_uids)
            ],
            dtype=np.int64,
        )
        epochs.append(
            EpochInputs(
                stake_rao=stake_rao,
                weights=_weights(draw, n_uids=n_uids),
                last_update_block=last_update,
                registered_block=registered,
                current_block=current_block,
                owner_uid=owner_uid,
                last_step_block=last_step_block,
                tempo_blocks=tempo_blocks,
            )
        )
        last_step_block = current_block
        current_block += draw(st.integers(1, 2 * tempo_blocks))
        n_uids = min(MAX_UIDS, n_uids + draw(st.sampled_from([0, 0, 1, 2])))
    return Scenario(params=params, initial_state=initial_state, epochs=tuple(epochs))


def _dense_bonds(outputs: EpochOutputs) -> np.ndarray:
    n_uids = outputs.n_uids
    dense = np.zeros((n_uids, n_uids))
    bonds = outputs.bonds
    for i, j, value in zip(
        bonds.column("validator").to_pylist(),
        bonds.column("miner").to_pylist(),
        bonds.column("bond").to_pylist(),
        strict=True,
    ):
        dense[i, j] += value
    return dense


def _stored_bonds(state: EpochState) -> list[tuple[int, int, int]]:
    return sorted(
        zip(
            state.bonds.column("validator").to_pylist(),
            state.bonds.column("miner").to_pylist(),
            state.bonds.column("bond_u16").to_pylist(),
            strict=True,
        )
    )


def _assert_same_epoch(
    *,
    sql: tuple[EpochOutputs, EpochState],
    reference: tuple[EpochOutputs, EpochState],
    epoch: int,
) -> None:
    sql_out, sql_state = sql
    ref_out, ref_state = reference
    for name in FLOAT_VECTORS:
        np.testing.assert_allclose(
            getattr(sql_out, name),
            getattr(ref_out, name),
            rtol=0,
            atol=ATOL,
            err_msg=f"epoch {epoch}: {name}",
        )
    for name in BOOL_VECTORS:
        np.testing.assert_array_equal(
            getattr(sql_out, name), getattr(ref_out, name), err_msg=f"epoch {epoch}: {name}"
        )
    np.testing.assert_allclose(
        _dense_bonds(sql_out), _dense_bonds(ref_out), rtol=0, atol=ATOL, err_msg=f"epoch {epoch}"
    )
    assert _stored_bonds(sql_state) == _stored_bonds(ref_state), f"epoch {epoch}: stored bonds"
    np.testing.assert_array_equal(sql_state.validator_permit, ref_state.validator_permit)
    # Independent sanity on the shared contract: shares sum to 1 whenever anything is emitted.
    share_total = ref_out.server_emission_share.sum() + ref_out.validator_emission_share.sum()
    assert share_total == pytest.approx(1.0, abs=1e-9) or share_total == 0.0


@pytest.fixture(scope="module")
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    database = duckdb.connect()
    yield database
    database.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_sql_matches_reference_over_three_epochs(
    scenario: Scenario, connection: duckdb.DuckDBPyConnection
) -> None:
    def sql_epoch(
        inputs: EpochInputs, params: YumaParams, state: EpochState
    ) -> tuple[EpochOutputs, EpochState]:
        return run_epoch(inputs, params, state, connection=connection)

    implementations: dict[str, Callable[..., tuple[EpochOutputs, EpochState]]] = {
        "sql": sql_epoch,
        "reference": reference_epoch,
    }
    states = dict.fromkeys(implementations, scenario.initial_state)
    for epoch, inputs in enumerate(scenario.epochs):
        results = {
            name: epoch_fn(inputs, scenario.params, states[name])
            for name, epoch_fn in implementations.items()
        }
        _assert_same_epoch(sql=results["sql"], reference=results["reference"], epoch=epoch)
        states = {name: result[1] for name, result in results.items()}
