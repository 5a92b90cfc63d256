"""Property test: the DuckDB SQL epoch equals the dense NumPy reference on random inputs.

Each example is a short chain of epochs (three on the legacy bond path, four on the Yuma3 path,
with and without liquid alpha) over a small subnet (1–12 uids, possibly growing), with the
commit-reveal mask on or off.
Each implementation is fed its *own* returned state, so the stored u16 bonds and permits are
compared through the feedback loop, not just once. Continuous outputs must agree to 1e-9
absolute; booleans, permits and stored u16 bonds must agree exactly (both implementations quantise
with the same chain rule (``fixed.proportion_to_u16``), so no ±1 allowance is needed).

The generators deliberately produce the awkward cases of the spec: explicit zero weights, tied
weights, zero stakes, stakes whose cumulative sum hits κ exactly (e.g. 32767 vs 32768 with
kappa_u16 = 32767, or three equal stakes with kappa_u16 = 21845 = 65535/3), inactive validators,
validators without permits, miners registered at or after their validator's last weight update,
commit blocks before / at / after a miner's registration, weights to uids ≥ n, owner self-weights,
a single uid, and no weights at all. For Yuma3 they add stored bonds equal to the new weight
(65535 vs a weight of 1, 21845 vs 1/3: the W_b ≥ B_old tie of liquid alpha), weight rows that omit
a miner the validator holds a bond to (the sparse-path quirk), explicit zero weights (which keep
the bond decaying), β ∈ {0, 1} and in between, and the liquid-alpha parameter extremes
(alpha_low = alpha_high, steepness 0 and 32767, whose exp argument hits the ±20 clamp).
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

from taoflow.tasks.consensus import (
    EpochInputs,
    EpochOutputs,
    EpochState,
    YumaParams,
    reference_epoch,
    run_epoch,
)
from taoflow.tasks.consensus.types import NO_COMMIT_BLOCK

LEGACY_EPOCHS = 3
YUMA3_EPOCHS = 4
MAX_UIDS = 12
ATOL = 1e-9

STAKE_POOL_RAO = [0, 1, 2, 3, 5, 7, 32_767, 32_768, 65_535, 1_000_000, 10**12, 10**18]
WEIGHT_POOL_U16 = [0, 1, 2, 3, 21_845, 32_767, 32_768, 65_535]
KAPPA_POOL_U16 = [32_767, 32_768, 21_845, 43_690, 13_107, 1, 65_535]
BMA_POOL_PPM = [900_000, 975_000, 0, 500_000]
PENALTY_POOL_U16 = [65_535, 0, 32_768, 1]
# (0.1, 0.3) as subtensor's tests store them, the chain default (0.7, 0.9), the setter's minimum.
ALPHA_LOW_POOL_U16 = [6_553, 45_875, 1_638]
ALPHA_HIGH_POOL_U16 = [19_660, 58_982, 65_535]
STEEPNESS_POOL = [1_000, 0, 100, 32_767]

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


# κ values that m equal stakes hit exactly with k of them: k/m = kappa_u16/65535 for m ∈ {3, 5, 15}.
EQUAL_STAKE_KAPPA_POOL_U16 = [21_845, 43_690, 13_107, 26_214, 39_321, 52_428, 4_369]


def _stake(draw: st.DrawFn, *, mode: str) -> int:
    if mode == "equal":  # every uid holds the same stake or nothing
        return draw(st.sampled_from([0, 7, 7, 7]))
    if mode == "split":  # 32767 + 32768 = 65535: one of two validators holds exactly κ
        return draw(st.sampled_from([0, 32_767, 32_768]))
    return draw(st.one_of(st.sampled_from(STAKE_POOL_RAO), st.integers(1, 100)))


def _registered_block(draw: st.DrawFn, *, specials: list[int], upper: int) -> int:
    kind = draw(st.sampled_from(["genesis", "genesis", "special", "any"]))
    if kind == "genesis":
        return 0
    if kind == "special":
        return draw(st.sampled_from(sorted({b for b in specials if 0 <= b <= upper})))
    return draw(st.integers(0, upper))


def _last_update_block(draw: st.DrawFn, *, specials: list[int], upper: int) -> int:
    kind = draw(st.sampled_from(["now", "now", "special", "any"]))
    if kind == "now":
        return upper
    if kind == "special":
        return draw(st.sampled_from(sorted({b for b in specials if 0 <= b <= upper})))
    return draw(st.integers(0, upper))


def _weight_u16(draw: st.DrawFn) -> int:
    return draw(st.one_of(st.sampled_from(WEIGHT_POOL_U16), st.integers(0, 65_535)))


def _weight_row(draw: st.DrawFn, *, n_uids: int) -> list[tuple[int, int]]:
    """One validator's (miner, weight_u16) row; miners ≥ n are legal and dropped by the epoch."""
    if not draw(st.sampled_from([True, True, True, False])):
        return []
    miners = draw(st.lists(st.integers(0, n_uids + 1), min_size=1, max_size=4, unique=True))
    return [(miner, _weight_u16(draw)) for miner in miners]


def _scattered_weights(draw: st.DrawFn, *, n_uids: int) -> list[tuple[int, int, int]]:
    return draw(
        st.lists(
            st.tuples(
                st.integers(0, n_uids - 1),
                st.integers(0, n_uids + 1),
                st.one_of(st.sampled_from(WEIGHT_POOL_U16), st.integers(0, 65_535)),
            ),
            max_size=3 * n_uids + 2,
            unique_by=lambda entry: (entry[0], entry[1]),
        )
    )


def _weights_table(entries: list[tuple[int, int, int]]) -> pa.Table:
    validators, miners, values = zip(*entries, strict=True) if entries else ((), (), ())
    return pa.table(
        {
            "validator": pa.array(validators, pa.int32()),
            "miner": pa.array(miners, pa.int32()),
            "weight_u16": pa.array(values, pa.int32()),
        }
    )


def _liquid_alpha_params(draw: st.DrawFn) -> dict[str, int]:
    alpha_low_u16 = draw(st.one_of(st.sampled_from(ALPHA_LOW_POOL_U16), st.integers(1_638, 65_535)))
    high_pool = [alpha_low_u16, *(h for h in ALPHA_HIGH_POOL_U16 if h >= alpha_low_u16)]
    alpha_high_u16 = draw(st.one_of(st.sampled_from(high_pool), st.integers(alpha_low_u16, 65_535)))
    steepness = draw(st.one_of(st.sampled_from(STEEPNESS_POOL), st.integers(0, 32_767)))
    return {
        "alpha_low_u16": alpha_low_u16,
        "alpha_high_u16": alpha_high_u16,
        "alpha_sigmoid_steepness": steepness,
    }


def _params(draw: st.DrawFn, *, stake_mode: str, bond_path: str) -> YumaParams:
    if stake_mode == "equal":
        kappa_u16 = draw(st.sampled_from(EQUAL_STAKE_KAPPA_POOL_U16))
    elif stake_mode == "split":
        kappa_u16 = 32_767
    else:
        kappa_u16 = draw(st.one_of(st.sampled_from(KAPPA_POOL_U16), st.integers(1, 65_535)))
    # A threshold above the "equal"/"split" stakes would zero every stake: keep it low there.
    threshold_pool_rao = [0, 0, 0, 1, 3, 32_768] if stake_mode == "random" else [0, 1]
    liquid = bond_path == "yuma3_liquid"
    return YumaParams(
        yuma3=bond_path != "legacy",
        liquid_alpha=liquid,
        commit_reveal=draw(st.booleans()),
        **(_liquid_alpha_params(draw) if liquid else {}),
        kappa_u16=kappa_u16,
        bonds_moving_average_ppm=draw(
            st.one_of(st.sampled_from(BMA_POOL_PPM), st.integers(0, 975_000))
        ),
        bonds_penalty_u16=draw(
            st.one_of(st.sampled_from(PENALTY_POOL_U16), st.integers(0, 65_535))
        ),
        max_validators=draw(st.integers(1, MAX_UIDS + 2)),
        activity_cutoff_blocks=draw(st.integers(1, 40)),
        stake_threshold_rao=draw(st.sampled_from(threshold_pool_rao)),
    )


def _initial_state(draw: st.DrawFn, *, n_uids: int) -> EpochState:
    permits = draw(
        st.lists(st.sampled_from([True, True, True, False]), min_size=n_uids, max_size=n_uids)
    )
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
    bonds = pa.Table.from_arrays(
        [pa.array(list(column), pa.int32()) for column in bond_columns],
        names=["validator", "miner", "bond_u16"],
    )
    return EpochState(bonds=bonds, validator_permit=np.array(permits, dtype=np.bool_))


def _commit_blocks(draw: st.DrawFn, *, specials: list[int], n_uids: int) -> np.ndarray | None:
    """None (nobody has a commit), or per uid: no commit, or a commit at an interesting block."""
    if draw(st.sampled_from([True, False, False])):
        return None
    pool = sorted({b for b in specials if b >= 0})
    blocks = [
        draw(st.one_of(st.just(NO_COMMIT_BLOCK), st.sampled_from(pool), st.integers(0, 80)))
        for _ in range(n_uids)
    ]
    return np.array(blocks, dtype=np.int64)


@st.composite
def scenarios(draw: st.DrawFn, *, bond_path: str, n_epochs: int) -> Scenario:
    """Consecutive epochs; stakes and weight rows mostly persist, uids may be appended."""
    stake_mode = draw(st.sampled_from(["random", "random", "equal", "split"]))
    weights_mode = draw(st.sampled_from(["rows"] * 6 + ["scattered", "none"]))
    params = _params(draw, stake_mode=stake_mode, bond_path=bond_path)
    n_uids = draw(st.integers(1, 10))
    initial_state = _initial_state(draw, n_uids=n_uids)
    owner_uid = draw(st.one_of(st.none(), st.integers(0, n_uids - 1)))
    tempo_blocks = draw(st.integers(1, 20))
    current_block = draw(st.integers(0, 60))
    last_step_block = draw(st.sampled_from([0, 0, current_block // 2, current_block]))

    stake_rao: list[int] = []
    rows: dict[int, list[tuple[int, int]]] = {}
    epochs = []
    for epoch in range(n_epochs):
        # Existing uids sometimes restake; appended uids get a fresh stake.
        for uid in range(len(stake_rao)):
            if draw(st.sampled_from([False, False, False, True])):
                stake_rao[uid] = _stake(draw, mode=stake_mode)
        stake_rao.extend(_stake(draw, mode=stake_mode) for _ in range(n_uids - len(stake_rao)))
        # Validators sometimes set new weights; otherwise their last row stays stored.
        for validator in range(n_uids):
            if epoch == 0 or validator not in rows or draw(st.booleans()):
                rows[validator] = _weight_row(draw, n_uids=n_uids)
        if weights_mode == "rows":
            entries = [(i, j, w) for i, row in rows.items() for j, w in row]
        elif weights_mode == "scattered":
            entries = _scattered_weights(draw, n_uids=n_uids)
        else:
            entries = []

        last_tempo = last_step_block + 1 if last_step_block else current_block - tempo_blocks
        specials = [0, current_block, last_step_block, last_tempo, last_tempo - 1]
        registered = [
            _registered_block(draw, specials=specials, upper=current_block) for _ in range(n_uids)
        ]
        last_update = [
            _last_update_block(draw, specials=[*specials, registered[i]], upper=current_block)
            for i in range(n_uids)
        ]
        epochs.append(
            EpochInputs(
                stake_rao=np.array(stake_rao, dtype=np.int64),
                weights=_weights_table(entries),
                last_update_block=np.array(last_update, dtype=np.int64),
                registered_block=np.array(registered, dtype=np.int64),
                current_block=current_block,
                owner_uid=owner_uid,
                last_step_block=last_step_block,
                tempo_blocks=tempo_blocks,
                commit_block=_commit_blocks(draw, specials=[*specials, *registered], n_uids=n_uids),
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
    # The epochs are tiny: one DuckDB thread avoids parallel-scheduling overhead (~25 % faster).
    database.execute("SET threads = 1")
    yield database
    database.close()


def _run_both(scenario: Scenario, connection: duckdb.DuckDBPyConnection) -> None:
    """Feed each implementation its own state through the epochs and compare every epoch."""

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


def _settings(max_examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    # Example counts keep the whole consensus test run under a minute on 2 cores.
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@_settings(90)
@given(scenario=scenarios(bond_path="legacy", n_epochs=LEGACY_EPOCHS))
def test_sql_matches_reference_over_three_epochs(
    scenario: Scenario, connection: duckdb.DuckDBPyConnection
) -> None:
    _run_both(scenario, connection)


@_settings(60)
@given(scenario=scenarios(bond_path="yuma3", n_epochs=YUMA3_EPOCHS))
def test_yuma3_sql_matches_reference_over_four_epochs(
    scenario: Scenario, connection: duckdb.DuckDBPyConnection
) -> None:
    _run_both(scenario, connection)


@_settings(80)
@given(scenario=scenarios(bond_path="yuma3_liquid", n_epochs=YUMA3_EPOCHS))
def test_yuma3_liquid_alpha_sql_matches_reference_over_four_epochs(
    scenario: Scenario, connection: duckdb.DuckDBPyConnection
) -> None:
    _run_both(scenario, connection)
