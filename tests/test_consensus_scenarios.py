"""Named Yuma scenarios with hand-worked expected numbers (shared/yuma-spec.md §4, legacy path).

Every scenario runs against both the DuckDB SQL epoch and the NumPy reference. The expected values
are derived by hand in the comments from the spec's formulas — they are not copied from either
implementation. Conventions used in the derivations: κ = 32767/65535 ≈ 0.4999924 (default),
β = 1 (default bonds_penalty, so W_b = W̄), α = 0.1 (default bonds_moving_average 900 000).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from fractions import Fraction

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from taoflow.tasks.consensus import (
    EpochInputs,
    EpochOutputs,
    EpochState,
    YumaParams,
    reference_epoch,
    run_epoch,
)

EpochFn = Callable[[EpochInputs, YumaParams, EpochState], tuple[EpochOutputs, EpochState]]
ABS = 1e-12


@pytest.fixture(scope="module")
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    database = duckdb.connect()
    yield database
    database.close()


@pytest.fixture(params=["sql", "reference"])
def epoch_fn(request: pytest.FixtureRequest, connection: duckdb.DuckDBPyConnection) -> EpochFn:
    if request.param == "reference":
        return reference_epoch

    def sql_epoch(
        inputs: EpochInputs, params: YumaParams, state: EpochState
    ) -> tuple[EpochOutputs, EpochState]:
        return run_epoch(inputs, params, state, connection=connection)

    return sql_epoch


def weights_table(rows: dict[int, dict[int, int]]) -> pa.Table:
    """{validator: {miner: weight_u16}} → sparse weights table."""
    entries = [(i, j, w) for i, row in rows.items() for j, w in row.items()]
    return pa.table(
        {
            "validator": pa.array([e[0] for e in entries], pa.int32()),
            "miner": pa.array([e[1] for e in entries], pa.int32()),
            "weight_u16": pa.array([e[2] for e in entries], pa.int32()),
        }
    )


def make_inputs(
    stake_rao: list[int],
    weights: dict[int, dict[int, int]],
    *,
    last_update_block: list[int] | None = None,
    registered_block: list[int] | None = None,
    current_block: int = 100,
    owner_uid: int | None = None,
    last_step_block: int = 0,
    tempo_blocks: int = 10,
) -> EpochInputs:
    n_uids = len(stake_rao)
    return EpochInputs(
        stake_rao=np.array(stake_rao, dtype=np.int64),
        weights=weights_table(weights),
        last_update_block=np.array(last_update_block or [current_block] * n_uids),
        registered_block=np.array(registered_block or [0] * n_uids),
        current_block=current_block,
        owner_uid=owner_uid,
        last_step_block=last_step_block,
        tempo_blocks=tempo_blocks,
    )


def state_with_permits(permits: list[bool]) -> EpochState:
    return EpochState(
        bonds=EpochState.empty(len(permits)).bonds,
        validator_permit=np.array(permits, dtype=np.bool_),
    )


def stored_bonds(state: EpochState) -> dict[tuple[int, int], int]:
    table = state.bonds
    return {
        (i, j): value
        for i, j, value in zip(
            table.column("validator").to_pylist(),
            table.column("miner").to_pylist(),
            table.column("bond_u16").to_pylist(),
            strict=True,
        )
    }


def approx(values: list[float]) -> object:
    return pytest.approx(values, abs=ABS)


def test_stable_miner(epoch_fn: EpochFn) -> None:
    # Validators 0, 1, 2 (stake 100, 200, 300 → A = S = 1/6, 1/3, 1/2) all set weights 3:1 on
    # miners 3 and 4, i.e. W_i = (0.75, 0.25) on every row.
    inputs = make_inputs([100, 200, 300, 0, 0], {i: {3: 3, 4: 1} for i in range(3)})
    outputs, state = epoch_fn(inputs, YumaParams(), state_with_permits([True] * 3 + [False] * 2))

    # They agree, so the median of each column is the common weight: C = (0.75, 0.25) and nothing
    # is clipped (VT = 1). R_j = Σ_i A_i W_ij = W_j, so I = (0.75, 0.25).
    assert outputs.consensus.tolist() == approx([0, 0, 0, 0.75, 0.25])
    assert outputs.validator_trust.tolist() == approx([1, 1, 1, 0, 0])
    assert outputs.incentive.tolist() == approx([0, 0, 0, 0.75, 0.25])
    # ΔB column j = W_ij·A_i / Σ = A; no old bonds so B = ΔB = A per column; D = B·I = A.
    assert outputs.dividends.tolist() == approx([1 / 6, 1 / 3, 1 / 2, 0, 0])
    # E_sum = ΣI + ΣD = 2: shares are halves.
    assert outputs.server_emission_share.tolist() == approx([0, 0, 0, 0.375, 0.125])
    assert outputs.validator_emission_share.tolist() == approx([1 / 12, 1 / 6, 1 / 4, 0, 0])
    assert outputs.stake_weight.tolist() == approx([1 / 6, 1 / 3, 1 / 2, 0, 0])
    assert outputs.active.tolist() == [True] * 5
    assert outputs.validator_permit.tolist() == [True, True, True, False, False]
    # Stored: column max-upscale (1/6, 1/3, 1/2) / (1/2) = (1/3, 2/3, 1); ×65535 is exactly 21845,
    # 43690, 65535, but the chain floors 1/3 and 2/3 to I32F32 first (just below), so it stores
    # 21844 and 43689 (spec §9; subtensor's test_bonds asserts the same k − 1).
    expected = {(0, j): 21_844 for j in (3, 4)}
    expected |= {(1, j): 43_689 for j in (3, 4)}
    expected |= {(2, j): 65_535 for j in (3, 4)}
    assert stored_bonds(state) == expected
    assert state.validator_permit.tolist() == [True, True, True, False, False]


def test_colluding_minority_below_kappa_cannot_move_consensus(epoch_fn: EpochFn) -> None:
    # Honest validators 0 and 1 (stake 30 each) put all weight on miner 3. Validator 2 (stake 40,
    # 0.4 < κ) splits evenly between miner 3 and its accomplice miner 4: W_2 = (0.5, 0.5).
    inputs = make_inputs(
        [30, 30, 40, 0, 0], {0: {3: 65_535}, 1: {3: 65_535}, 2: {3: 65_535, 4: 65_535}}
    )
    outputs, _ = epoch_fn(inputs, YumaParams(), state_with_permits([True] * 3 + [False] * 2))

    # Column 3: level 1.0 is met by stake 0.6 ≥ κ → C_3 = 1.
    # Column 4: level 0.5 is met only by stake 0.4 < κ; level 0 always qualifies → C_4 = 0.
    assert outputs.consensus.tolist() == approx([0, 0, 0, 1, 0])
    # W̄_2 = (min(0.5, 1), min(0.5, 0)) = (0.5, 0) → VT_2 = 0.5; honest VT = 1.
    assert outputs.validator_trust.tolist() == approx([1, 1, 0.5, 0, 0])
    # R_3 = 0.3 + 0.3 + 0.4·0.5 = 0.8, R_4 = 0 → I = (1, 0): the accomplice earns nothing.
    assert outputs.incentive.tolist() == approx([0, 0, 0, 1, 0])
    # ΔB column 3 = (0.3·1, 0.3·1, 0.4·0.5) / 0.8 = (3/8, 3/8, 1/4) = B; D = B·I.
    assert outputs.dividends.tolist() == approx([3 / 8, 3 / 8, 1 / 4, 0, 0])
    assert outputs.validator_emission_share.tolist() == approx([3 / 16, 3 / 16, 1 / 8, 0, 0])


@pytest.mark.parametrize(
    ("stake_0_rao", "expected_consensus_2", "expected_incentive"),
    [
        # Total stake 65535: validator 0 holds exactly 32767/65535 = κ → counts (≥), C_2 = 1.
        # R = (A_0, A_1) on miners (2, 3), so I = (32767, 32768)/65535.
        (32_767, 1.0, [0, 0, 32_767 / 65_535, 32_768 / 65_535]),
        # One rao less: 32766/65535 < κ → C_2 = 0 and miner 3 takes all incentive.
        (32_766, 0.0, [0, 0, 0, 1]),
    ],
)
def test_kappa_exactly_at_boundary_counts(
    epoch_fn: EpochFn,
    stake_0_rao: int,
    expected_consensus_2: float,
    expected_incentive: list[float],
) -> None:
    inputs = make_inputs([stake_0_rao, 65_535 - stake_0_rao, 0, 0], {0: {2: 1}, 1: {3: 1}})
    outputs, _ = epoch_fn(inputs, YumaParams(), state_with_permits([True, True, False, False]))

    assert outputs.consensus[2] == expected_consensus_2
    assert outputs.consensus[3] == 1.0  # 32768/65535 or more > κ either way
    assert outputs.incentive.tolist() == approx(expected_incentive)


@pytest.mark.parametrize(
    ("kappa_u16", "expected_consensus"),
    [
        # κ = 21845/65535 = 1/3 exactly; each of three equal stakes is exactly 1/3 → each C = 1.
        (21_845, 1.0),
        # κ just above 1/3: no single validator qualifies; only level 0 does → C = 0.
        (21_846, 0.0),
    ],
)
def test_kappa_boundary_with_three_equal_stakes(
    epoch_fn: EpochFn, kappa_u16: int, expected_consensus: float
) -> None:
    inputs = make_inputs([7, 7, 7, 0, 0, 0], {0: {3: 9}, 1: {4: 9}, 2: {5: 9}})
    outputs, _ = epoch_fn(
        inputs, YumaParams(kappa_u16=kappa_u16), state_with_permits([True] * 3 + [False] * 3)
    )
    assert outputs.consensus.tolist() == [0, 0, 0, *([expected_consensus] * 3)]


def test_outdated_weights_are_masked(epoch_fn: EpochFn) -> None:
    # Validator 0 last set weights at block 50. Miner 1 registered at block 50 (last_update ≤ reg:
    # masked), miner 2 at block 49 (kept), miner 3 at block 51 (masked).
    inputs = make_inputs(
        [1, 0, 0, 0],
        {0: {1: 65_535, 2: 65_535, 3: 65_535}},
        last_update_block=[50, 0, 0, 0],
        registered_block=[0, 50, 49, 51],
        current_block=60,
    )
    outputs, _ = epoch_fn(inputs, YumaParams(), state_with_permits([True, False, False, False]))

    # Only (0, 2) survives → W_0 = (0, 0, 1, 0); without the mask all three would get 1/3.
    assert outputs.consensus.tolist() == approx([0, 0, 1, 0])
    assert outputs.incentive.tolist() == approx([0, 0, 1, 0])
    assert outputs.validator_trust.tolist() == approx([1, 0, 0, 0])


def test_self_weight_dropped_except_owner(epoch_fn: EpochFn) -> None:
    # uid 0 is the subnet owner. Both validators (stake 50 each) weight themselves and miner 2.
    # The owner had no permit last epoch but is always permitted.
    inputs = make_inputs(
        [50, 50, 0], {0: {0: 65_535, 2: 65_535}, 1: {1: 65_535, 2: 65_535}}, owner_uid=0
    )
    outputs, state = epoch_fn(inputs, YumaParams(), state_with_permits([False, True, False]))

    # W_0 = (0.5, 0, 0.5) keeps its self-weight (owner burn); W_1 = (0, 0, 1) loses it.
    # Column 0: level 0.5 met by stake 0.5 ≥ κ → C_0 = 0.5. Column 2: level 1 met by 0.5 → C_2 = 1.
    assert outputs.consensus.tolist() == approx([0.5, 0, 1])
    # R_0 = 0.5·0.5 = 0.25, R_2 = 0.5·0.5 + 0.5·1 = 0.75, ΣR = 1.
    assert outputs.incentive.tolist() == approx([0.25, 0, 0.75])
    assert outputs.validator_trust.tolist() == approx([1, 1, 0])
    assert state.validator_permit.tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("stake_rao", "max_validators", "owner_uid", "expected_permits"),
    [
        # Stable ascending sort: uid3(5), uid0(10), uid1(10), uid2(10); drop the first n − k = 2.
        ([10, 10, 10, 5], 2, None, [False, True, True, False]),
        # The owner is always permitted, on top of the top-k.
        ([10, 10, 10, 5], 2, 3, [False, True, True, True]),
        # n < k: every non-zero stake qualifies, zero stake does not.
        ([0, 10, 10, 5], 5, None, [False, True, True, True]),
    ],
)
def test_topk_permit_ties_drop_lower_uid(
    epoch_fn: EpochFn,
    stake_rao: list[int],
    max_validators: int,
    owner_uid: int | None,
    expected_permits: list[bool],
) -> None:
    inputs = make_inputs(stake_rao, {}, owner_uid=owner_uid)
    params = YumaParams(max_validators=max_validators)
    outputs, state = epoch_fn(inputs, params, EpochState.empty(len(stake_rao)))
    assert outputs.validator_permit.tolist() == expected_permits
    assert state.validator_permit.tolist() == expected_permits


def test_new_permit_counts_only_from_next_epoch(epoch_fn: EpochFn) -> None:
    # Equal stakes; only validator 0 held a permit last epoch. Validator 1 enters the top-k now but
    # its weights are ignored until the next epoch (forbid uses the old permits).
    # W_0 = (1, 0) and W_1 = (0.5, 0.5) on miners (2, 3).
    inputs = make_inputs([10, 10, 0, 0], {0: {2: 1}, 1: {2: 1, 3: 1}})
    first, state = epoch_fn(inputs, YumaParams(), state_with_permits([True, False, False, False]))
    # A = (1, 0): column 2 level 1 met by all active stake → C_2 = 1; column 3: only level 0.
    assert first.consensus.tolist() == approx([0, 0, 1, 0])
    assert first.incentive.tolist() == approx([0, 0, 1, 0])
    # The forbidden row is emptied, so validator 1 keeps no clipped weight: VT_1 = 0 (had its row
    # been kept, min(0.5, C_2 = 1) would give VT_1 = 0.5).
    assert first.validator_trust.tolist() == approx([1, 0, 0, 0])
    assert state.validator_permit.tolist() == [True, True, False, False]

    second, _ = epoch_fn(inputs, YumaParams(), state)
    # Now A = (0.5, 0.5). Column 2: level 1 met by 0.5 ≥ κ → C_2 = 1. Column 3: level 0.5 met by
    # 0.5 → C_3 = 0.5. R = (0.5·1 + 0.5·0.5, 0.5·0.5) = (0.75, 0.25) = I.
    assert second.consensus.tolist() == approx([0, 0, 1, 0.5])
    assert second.incentive.tolist() == approx([0, 0, 0.75, 0.25])
    assert second.validator_trust.tolist() == approx([1, 1, 0, 0])


@pytest.mark.parametrize(
    ("weights", "permits", "expected_validator_share"),
    [
        # No weights at all; only validator 0 is permitted → A = (1, 0, 0).
        ({}, [True, False, False], [1, 0, 0]),
        # Nobody permitted → A = 0 → fall back to S = (1, 3, 0)/4.
        ({}, [False, False, False], [0.25, 0.75, 0]),
        # Only self-weights (no owner) are all dropped → E_sum = 0; A = S = (0.25, 0.75, 0).
        ({0: {0: 65_535}, 1: {1: 65_535}}, [True, True, False], [0.25, 0.75, 0]),
    ],
)
def test_all_zero_incentive_falls_back_to_stake(
    epoch_fn: EpochFn,
    weights: dict[int, dict[int, int]],
    permits: list[bool],
    expected_validator_share: list[float],
) -> None:
    outputs, _ = epoch_fn(
        make_inputs([1, 3, 0], weights), YumaParams(), state_with_permits(permits)
    )
    assert outputs.incentive.tolist() == [0, 0, 0]
    assert outputs.dividends.tolist() == [0, 0, 0]
    assert outputs.server_emission_share.tolist() == [0, 0, 0]
    assert outputs.validator_emission_share.tolist() == approx(expected_validator_share)


_B_OLD_0 = Fraction(65_535, 87_379)
_B_OLD_1 = Fraction(21_844, 87_379)


def _chain_u16(proportion: Fraction) -> int:
    """subtensor's stored u16 of an exact proportion: floor to I32F32, then ×65535, floor."""
    return math.floor(proportion * 2**32) * 65_535 >> 32


def _first_bond_epoch(epoch_fn: EpochFn, params: YumaParams) -> EpochState:
    # Validators 0 (stake 3) and 1 (stake 1) both put everything on miner 3 at block 100.
    # A = (0.75, 0.25); B column 3 = ΔB = (0.75, 0.25); upscaled (1, 1/3) → (65535, 21844): the
    # chain stores 1/3 as 21844, one below 65535/3 (its I32F32 floor, spec §9).
    inputs = make_inputs([3, 1, 0, 0], {0: {3: 1}, 1: {3: 1}})
    _, state = epoch_fn(inputs, params, state_with_permits([True, True, False, False]))
    assert stored_bonds(state) == {(0, 3): 65_535, (1, 3): 21_844}
    return state


@pytest.mark.parametrize(
    ("registered_block_3", "expected_dividends"),
    [
        # Registered at block 100 = lms: not new. B_old column 3 = (65535, 21844)/87379.
        # ΔB column 3 = (0.75·1, 0.25·0.5)/0.875 = (6/7, 1/7).
        # B = 0.1·ΔB + 0.9·B_old, which sums to 1; I_3 = 1 so D = B.
        (
            100,
            (
                Fraction(6, 70) + _B_OLD_0 * Fraction(9, 10),
                Fraction(1, 70) + _B_OLD_1 * Fraction(9, 10),
            ),
        ),
        # Re-registered at block 101 = lms + 1: its old bonds are dropped, B column 3 = ΔB.
        (101, (Fraction(6, 7), Fraction(1, 7))),
    ],
)
def test_legacy_bond_ema_and_new_registration_mask(
    epoch_fn: EpochFn, registered_block_3: int, expected_dividends: tuple[Fraction, Fraction]
) -> None:
    params = YumaParams()
    state = _first_bond_epoch(epoch_fn, params)
    # Block 110, previous epoch at 100. Validator 0 stays on miner 3; validator 1 splits between
    # miners 2 and 3 (W_1 = (0.5, 0.5)). Column 2: stake 0.25 < κ → C_2 = 0; column 3: C_3 = 1.
    inputs = make_inputs(
        [3, 1, 0, 0],
        {0: {3: 1}, 1: {2: 1, 3: 1}},
        registered_block=[0, 0, 0, registered_block_3],
        current_block=110,
        last_step_block=100,
    )
    outputs, next_state = epoch_fn(inputs, params, state)
    assert outputs.consensus.tolist() == approx([0, 0, 0, 1])
    assert outputs.incentive.tolist() == approx([0, 0, 0, 1])
    dividend_0, dividend_1 = expected_dividends
    assert outputs.dividends.tolist() == approx([float(dividend_0), float(dividend_1), 0, 0])
    # Stored: column 3 upscaled by its max (validator 0) → 65535 and the chain's u16 of B_13/B_03.
    expected_u16 = _chain_u16(dividend_1 / dividend_0)
    assert stored_bonds(next_state) == {(0, 3): 65_535, (1, 3): expected_u16}


def test_inactive_validator_keeps_earning_on_old_bonds(epoch_fn: EpochFn) -> None:
    params = YumaParams(activity_cutoff_blocks=5)
    state = _first_bond_epoch(epoch_fn, params)
    # Block 110: validator 1 last updated at block 100; 100 + 5 < 110 → inactive, A = (1, 0).
    inputs = make_inputs(
        [3, 1, 0, 0],
        {0: {3: 1}, 1: {3: 1}},
        last_update_block=[110, 100, 0, 0],
        current_block=110,
        last_step_block=100,
    )
    outputs, _ = epoch_fn(inputs, params, state)
    assert outputs.active.tolist() == [True, False, False, False]
    # ΔB column 3 = (1, 0). B = 0.1·(1, 0) + 0.9·B_old (B_old = (65535, 21844)/87379); I_3 = 1
    # → D = B.
    expected = [0.1 + 0.9 * _B_OLD_0, 0.9 * _B_OLD_1]
    assert outputs.dividends.tolist() == approx([float(d) for d in expected] + [0, 0])
    # Its row still counts for validator trust (W̄ is computed for every permitted row).
    assert outputs.validator_trust.tolist() == approx([1, 1, 0, 0])


def test_new_uids_get_no_permit_and_state_is_padded(epoch_fn: EpochFn) -> None:
    # Last epoch had 2 uids; uids 2 and 3 were appended since. Validator 0 (permitted) → miner 2.
    inputs = make_inputs([5, 0, 0, 7], {0: {2: 1}, 3: {1: 1}})
    outputs, state = epoch_fn(inputs, YumaParams(), state_with_permits([True, False]))
    # uid 3 has stake but no old permit, so its weights are ignored this epoch.
    assert outputs.incentive.tolist() == approx([0, 0, 1, 0])
    assert state.validator_permit.tolist() == [True, False, False, True]


def test_losing_the_permit_clears_stored_bonds(epoch_fn: EpochFn) -> None:
    # Both validators were permitted last epoch, but with max_validators = 1 only validator 0
    # (stake 3 > 1) keeps a permit. Both still count this epoch (old permits), so B column 3 =
    # (0.75, 0.25), yet only validator 0's row is stored: upscaled 0.75/0.75 → 65535.
    inputs = make_inputs([3, 1, 0, 0], {0: {3: 1}, 1: {3: 1}})
    params = YumaParams(max_validators=1)
    outputs, state = epoch_fn(inputs, params, state_with_permits([True, True, False, False]))
    assert outputs.validator_permit.tolist() == [True, False, False, False]
    assert outputs.bonds.column("bond").to_pylist() == approx([0.75, 0.25])
    assert stored_bonds(state) == {(0, 3): 65_535}


@pytest.mark.parametrize(
    ("owner_uid", "expected_stake_weight"),
    [
        # s_i < threshold (5) is zeroed: stake 4 drops out, stake 5 (exactly at it) stays.
        (None, [1, 0, 0]),
        # The owner is exempt from the threshold.
        (1, [5 / 9, 4 / 9, 0]),
    ],
)
def test_stake_threshold(
    epoch_fn: EpochFn, owner_uid: int | None, expected_stake_weight: list[float]
) -> None:
    inputs = make_inputs([5, 4, 0], {}, owner_uid=owner_uid)
    outputs, _ = epoch_fn(inputs, YumaParams(stake_threshold_rao=5), EpochState.empty(3))
    assert outputs.stake_weight.tolist() == approx(expected_stake_weight)


def test_activity_cutoff_boundary(epoch_fn: EpochFn) -> None:
    # inactive ⇔ last_update + cutoff < current_block: 90 + 10 = 100 is still active, 89 is not.
    inputs = make_inputs([1, 1, 0], {0: {2: 1}, 1: {2: 1}}, last_update_block=[90, 89, 0])
    outputs, _ = epoch_fn(
        inputs, YumaParams(activity_cutoff_blocks=10), state_with_permits([True, True, False])
    )
    assert outputs.active.tolist() == [True, False, False]
    # Only validator 0 carries active stake: A = (1, 0, 0) → D = B·I with B column 2 = ΔB = (1, 0).
    assert outputs.dividends.tolist() == approx([1, 0, 0])


def test_zero_stake_validators_take_no_part_in_consensus(epoch_fn: EpochFn) -> None:
    # κ = 1/65535 (the smallest accepted): C_j is the largest weight that any staked validator
    # holding ≥ κ of the active stake gives j. Validator 0 (stake 1, all the active stake) gives
    # (0.5, 0.5) to miners 2, 3; permitted validator 1 has no stake and gives 1.0 to miner 2,
    # which must not raise C_2 above 0.5.
    inputs = make_inputs([1, 0, 0, 0], {0: {2: 1, 3: 1}, 1: {2: 1}})
    outputs, _ = epoch_fn(
        inputs, YumaParams(kappa_u16=1), state_with_permits([True] * 2 + [False] * 2)
    )
    assert outputs.consensus.tolist() == approx([0, 0, 0.5, 0.5])
    # Validator 1's row is clipped to 0.5 too: VT_1 = 0.5.
    assert outputs.validator_trust.tolist() == approx([1, 0.5, 0, 0])


def test_sql_leaves_callers_connection_clean(connection: duckdb.DuckDBPyConnection) -> None:
    inputs = make_inputs([100, 200, 300, 0, 0], {i: {3: 3, 4: 1} for i in range(3)})
    run_epoch(inputs, YumaParams(), EpochState.empty(5), connection=connection)
    names = {
        row[0] for row in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }
    names |= {
        row[0] for row in connection.execute("SELECT view_name FROM duckdb_views()").fetchall()
    }
    assert not {name for name in names if name.startswith("yuma_") or name.endswith("_in")}
    # And without a connection a private in-memory database is used.
    outputs, _ = run_epoch(inputs, YumaParams(), EpochState.empty(5))
    table = outputs.to_table()
    assert table.column_names[0] == "uid"
    assert table.column("uid").to_pylist() == [0, 1, 2, 3, 4]
    assert table.num_columns == 11  # uid + 10 per-uid vectors (active_stake included)
