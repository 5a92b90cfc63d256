"""Named Yuma3 scenarios (shared/yuma-spec.md §4.9b, §4.5.5) against independent expectations.

Every scenario runs against both the DuckDB SQL epoch and the NumPy reference. Expected numbers
come either from subtensor's own Yuma3 tests (``pallets/subtensor/src/tests/epoch.rs``,
``test_yuma_3_kappa_moves_{first,second,last}``, targets printed there to 4 decimals) or from
hand derivations in the comments. None is copied from either implementation's output.

Conventions: κ = 32767/65535 unless stated; u16 bonds are stored as floor(65535·B) and read back
as u/65535 (spec §4.9b.1, .5).
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
from taoflow.tasks.consensus.types import NO_COMMIT_BLOCK

EpochFn = Callable[[EpochInputs, YumaParams, EpochState], tuple[EpochOutputs, EpochState]]
U16 = 65_535
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
    """{validator: {miner: weight_u16}} → sparse weights table (explicit zeros kept)."""
    entries = [(i, j, w) for i, row in rows.items() for j, w in row.items()]
    return pa.table(
        {
            "validator": pa.array([e[0] for e in entries], pa.int32()),
            "miner": pa.array([e[1] for e in entries], pa.int32()),
            "weight_u16": pa.array([e[2] for e in entries], pa.int32()),
        }
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


def u16_bonds_table(bonds: dict[tuple[int, int], int]) -> pa.Table:
    return pa.table(
        {
            "validator": pa.array([i for i, _ in bonds], pa.int32()),
            "miner": pa.array([j for _, j in bonds], pa.int32()),
            "bond_u16": pa.array(list(bonds.values()), pa.int32()),
        }
    )


def floor_u16(value: Fraction) -> int:
    return math.floor(value * U16)


# ------------------------------------------------------------------------------------------------
# subtensor's test_yuma_3_kappa_moves_{first,second,last}
# ------------------------------------------------------------------------------------------------
# setup_yuma_3_scenario: 5 uids registered at the start (block 1), validators 0, 1, 2 with stake
# 8, 1, 1 (S = 0.8, 0.1, 0.1), servers 3 and 4; tempo 1, bonds_penalty 0 (β = 0 ⇒ W_b = W),
# steepness 1000 (→ 10), bonds_moving_average 975 000, kappa u16::MAX / 2 = 32767, liquid alpha on
# with set_alpha_values_32(0.1, 0.3), Yuma3 on, max_allowed_validators 3. set_alpha_values_32
# stores floor(I32F32(0.1)·65535) = floor(6553.50001) = 6553 and floor(I32F32(0.3)·65535) =
# floor(19660.50000) = 19660, read back as 6553/65535 ≈ 0.099992 and 19660/65535 = 0.2999924.
# A first epoch without weights hands out the permits; then, for each of 6 epochs, the validators
# may call set_weights at block b (explicit zeros are stored) and the epoch runs at block b + 1.
SUBTENSOR_YUMA3 = YumaParams(
    yuma3=True,
    liquid_alpha=True,
    alpha_low_u16=6_553,
    alpha_high_u16=19_660,
    alpha_sigmoid_steepness=1_000,
    bonds_penalty_u16=0,
    bonds_moving_average_ppm=975_000,
    kappa_u16=32_767,
    max_validators=3,
)
SERVER_1, SERVER_2 = 3, 4
TO_1 = (U16, 0)  # set_weights(indices [3, 4], [u16::MAX, 0])
TO_2 = (0, U16)

# Which server each validator (A, B, C) weights, by epoch; an epoch absent from the schedule
# keeps the previously set weights (the chain test does not call set_weights after epoch 3).
KAPPA_SCHEDULES: dict[str, dict[int, tuple[tuple[int, int], ...]]] = {
    # A (big, 0.8) moves first, B second, C last.
    "first": {0: (TO_1,) * 3, 1: (TO_2, TO_1, TO_1), 2: (TO_2, TO_2, TO_1), 3: (TO_2,) * 3},
    # B moves first, A second, C last.
    "second": {0: (TO_1,) * 3, 1: (TO_1, TO_2, TO_1), 2: (TO_2, TO_2, TO_1), 3: (TO_2,) * 3},
    # B moves first, C second, A last.
    "last": {0: (TO_1,) * 3, 1: (TO_1, TO_2, TO_1), 2: (TO_1, TO_2, TO_2), 3: (TO_2,) * 3},
}

# targets_bonds[epoch][validator] = (bond to server 1, bond to server 2), as printed in epoch.rs.
KAPPA_TARGET_BONDS: dict[str, list[list[tuple[float, float]]]] = {
    "first": [
        [(0.1013, 0.0000), (0.1013, 0.0000), (0.1013, 0.0000)],
        [(0.0908, 0.1013), (0.3697, 0.0000), (0.3697, 0.0000)],
        [(0.0815, 0.1924), (0.3170, 0.1013), (0.5580, 0.0000)],
        [(0.0731, 0.2742), (0.2765, 0.1924), (0.4306, 0.1013)],
        [(0.0656, 0.3478), (0.2435, 0.2742), (0.3589, 0.1924)],
        [(0.0588, 0.4139), (0.2157, 0.3478), (0.3089, 0.2742)],
    ],
    "second": [
        [(0.1013, 0.0000), (0.1013, 0.0000), (0.1013, 0.0000)],
        [(0.1924, 0.0000), (0.0908, 0.2987), (0.1924, 0.0000)],
        [(0.1715, 0.1013), (0.0815, 0.3697), (0.4336, 0.0000)],
        [(0.1531, 0.1924), (0.0731, 0.4336), (0.3608, 0.1013)],
        [(0.1369, 0.2742), (0.0656, 0.4910), (0.3103, 0.1924)],
        [(0.1225, 0.3478), (0.0588, 0.5426), (0.2712, 0.2742)],
    ],
    "last": [
        [(0.1013, 0.0000), (0.1013, 0.0000), (0.1013, 0.0000)],
        [(0.1924, 0.0000), (0.0908, 0.2987), (0.1924, 0.0000)],
        [(0.2742, 0.0000), (0.0815, 0.5081), (0.1715, 0.2987)],
        [(0.2416, 0.1013), (0.0731, 0.5580), (0.1531, 0.3697)],
        [(0.2141, 0.1924), (0.0656, 0.6028), (0.1369, 0.4336)],
        [(0.1903, 0.2742), (0.0588, 0.6430), (0.1225, 0.4910)],
    ],
}

# targets_dividends[epoch] for uids 0..4, as printed in epoch.rs.
KAPPA_TARGET_DIVIDENDS: dict[str, list[tuple[float, ...]]] = {
    "first": [
        (0.8000, 0.1000, 0.1000, 0.0, 0.0),
        (1.0000, 0.0000, 0.0000, 0.0, 0.0),
        (0.9382, 0.0618, 0.0000, 0.0, 0.0),
        (0.8819, 0.0773, 0.0407, 0.0, 0.0),
        (0.8564, 0.0844, 0.0592, 0.0, 0.0),
        (0.8418, 0.0884, 0.0697, 0.0, 0.0),
    ],
    "second": [
        (0.8000, 0.1000, 0.1000, 0.0, 0.0),
        (0.8446, 0.0498, 0.1056, 0.0, 0.0),
        (0.6868, 0.3132, 0.0000, 0.0, 0.0),
        (0.7421, 0.2090, 0.0489, 0.0, 0.0),
        (0.7625, 0.1706, 0.0669, 0.0, 0.0),
        (0.7730, 0.1508, 0.0762, 0.0, 0.0),
    ],
    "last": [
        (0.8000, 0.1000, 0.1000, 0.0, 0.0),
        (0.8446, 0.0498, 0.1056, 0.0, 0.0),
        (0.8966, 0.0333, 0.0701, 0.0, 0.0),
        (0.4663, 0.3210, 0.2127, 0.0, 0.0),
        (0.5976, 0.2340, 0.1683, 0.0, 0.0),
        (0.6592, 0.1932, 0.1475, 0.0, 0.0),
    ],
}

# Tolerance 1e-4: the targets are printed to 4 decimals (±5e-5); the chain's dividends are read
# back from u16 storage (floor, −1.5e-5); and stored bonds are floor(65535·B) each epoch (−1.5e-5,
# accumulating through the EMA, spec §9), which printed targets need not carry exactly (the chain
# test itself only asserts 1e-3). Both implementations stay within 9e-5 of every target.
KAPPA_TOLERANCE = 1e-4


def run_subtensor_schedule(
    epoch_fn: EpochFn, schedule: dict[int, tuple[tuple[int, int], ...]], n_epochs: int
) -> list[tuple[dict[tuple[int, int], int], np.ndarray]]:
    """Run setup + n_epochs epochs; per epoch return the stored u16 bonds and the dividends."""
    stake_rao = np.array([8, 1, 1, 0, 0])
    registered_block = np.array([1] * 5)
    last_update_block = [1] * 5
    # Setup epoch at block 2: no weights, no permits yet → new permits for the top-3 stakes.
    setup = EpochInputs(
        stake_rao=stake_rao,
        weights=weights_table({}),
        last_update_block=np.array(last_update_block),
        registered_block=registered_block,
        current_block=2,
        owner_uid=None,
        last_step_block=0,
        tempo_blocks=1,
    )
    _, state = epoch_fn(setup, SUBTENSOR_YUMA3, EpochState.empty(5))
    assert state.validator_permit.tolist() == [True, True, True, False, False]

    rows: dict[int, dict[int, int]] = {}
    previous_block = 2
    results = []
    for epoch in range(n_epochs):
        epoch_block = 4 + 2 * epoch
        if epoch in schedule:
            rows = {
                validator: {SERVER_1: to_1, SERVER_2: to_2}
                for validator, (to_1, to_2) in enumerate(schedule[epoch])
            }
            for validator in rows:
                last_update_block[validator] = epoch_block - 1
        inputs = EpochInputs(
            stake_rao=stake_rao,
            weights=weights_table(rows),
            last_update_block=np.array(last_update_block),
            registered_block=registered_block,
            current_block=epoch_block,
            owner_uid=None,
            last_step_block=previous_block,
            tempo_blocks=1,
        )
        outputs, state = epoch_fn(inputs, SUBTENSOR_YUMA3, state)
        results.append((stored_bonds(state), outputs.dividends))
        previous_block = epoch_block
    return results


@pytest.mark.parametrize("kappa_moves", ["first", "second", "last"])
def test_subtensor_yuma3_kappa_moves(epoch_fn: EpochFn, kappa_moves: str) -> None:
    target_bonds = KAPPA_TARGET_BONDS[kappa_moves]
    target_dividends = KAPPA_TARGET_DIVIDENDS[kappa_moves]
    results = run_subtensor_schedule(epoch_fn, KAPPA_SCHEDULES[kappa_moves], len(target_bonds))
    for epoch, (bonds_u16, dividends) in enumerate(results):
        bonds = [
            (bonds_u16.get((i, SERVER_1), 0) / U16, bonds_u16.get((i, SERVER_2), 0) / U16)
            for i in range(3)
        ]
        assert np.asarray(bonds) == pytest.approx(
            np.asarray(target_bonds[epoch]), abs=KAPPA_TOLERANCE
        ), f"epoch {epoch} bonds"
        assert dividends.tolist() == pytest.approx(
            list(target_dividends[epoch]), abs=KAPPA_TOLERANCE
        ), f"epoch {epoch} dividends"


def test_subtensor_first_epoch_bond_by_hand(epoch_fn: EpochFn) -> None:
    # Epoch 0 of the kappa scenarios, derived exactly: every validator gives server 1 weight 1,
    # so C_3 = 1, and B_old = 0 ≤ W_b = 1 ⇒ d = buy = clamp(W_b − C, 0, 1) = 0.
    # σ = 1/(1 + exp(−10·(0 − 0.5))) = 1/(1 + e^5); α = 6553/65535 + σ·13107/65535 = 0.1013310.
    # B = min(1, (1 − α)·0 + α·1) = α → stored floor(65535·α) = floor(6640.73) = 6640 (0.1013 in
    # the chain's table). All three bonds are equal, so B̂ = 1/3 and D = A·(1/3)·I_3 ∝ A = S.
    sigma = 1 / (1 + math.exp(5))
    alpha = 6_553 / U16 + sigma * (19_660 - 6_553) / U16
    results = run_subtensor_schedule(epoch_fn, KAPPA_SCHEDULES["first"], 1)
    bonds_u16, dividends = results[0]
    assert bonds_u16 == {(i, SERVER_1): math.floor(U16 * alpha) for i in range(3)}
    assert math.floor(U16 * alpha) == 6_640
    assert dividends.tolist() == pytest.approx([0.8, 0.1, 0.1, 0, 0], abs=ABS)


# ------------------------------------------------------------------------------------------------
# Bonds reset on re-registration.
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("registered_block_2", "bond_kept"),
    [
        (0, True),  # never re-registered
        (100, True),  # re-registered at block 100 = lms: not "new" (new means reg ≥ lms + 1)
        (101, False),  # re-registered after the last epoch: its column of old bonds is dropped
    ],
)
def test_yuma3_bond_to_reregistered_miner_starts_from_zero(
    epoch_fn: EpochFn, registered_block_2: int, bond_kept: bool
) -> None:
    # Yuma3, fixed α = 1 − 900 000/10^6 = 0.1, β = 1. Validators 0 and 1 (stake 1 each),
    # miners 2 and 3.
    params = YumaParams(yuma3=True)
    permits = np.array([True, True, False, False])
    # Epoch 1 (block 100, first epoch): both put all weight on miner 2 → C_2 = 1, W_b = W̄ = 1,
    # B = 0.1·1 = 1/10 each → stored floor(6553.5) = 6553.
    first = EpochInputs(
        stake_rao=np.array([1, 1, 0, 0]),
        weights=weights_table({0: {2: 1}, 1: {2: 1}}),
        last_update_block=np.array([100, 100, 0, 0]),
        registered_block=np.array([0, 0, 0, 0]),
        current_block=100,
        owner_uid=None,
        last_step_block=0,
        tempo_blocks=10,
    )
    _, state = epoch_fn(
        first, params, EpochState(bonds=EpochState.empty(4).bonds, validator_permit=permits)
    )
    assert stored_bonds(state) == {(0, 2): 6_553, (1, 2): 6_553}

    # Epoch 2 (block 110, lms = 100): validator 0 stays on miner 2, validator 1 moves to miner 3.
    # Each column has one validator with stake 1/2 ≥ κ at weight 1 → C = (1, 1), I = (1/2, 1/2).
    second = EpochInputs(
        stake_rao=np.array([1, 1, 0, 0]),
        weights=weights_table({0: {2: 1}, 1: {3: 1}}),
        last_update_block=np.array([110, 110, 0, 0]),
        registered_block=np.array([0, 0, registered_block_2, 0]),
        current_block=110,
        owner_uid=None,
        last_step_block=100,
        tempo_blocks=10,
    )
    outputs, next_state = epoch_fn(second, params, state)
    assert outputs.incentive.tolist() == pytest.approx([0, 0, 0.5, 0.5], abs=ABS)
    old = Fraction(6_553, U16)
    if bond_kept:
        # B_02 = 0.1·1 + 0.9·old, B_12 = 0.9·old (no weight: decays), B_13 = 0.1.
        bond_02, bond_12 = Fraction(1, 10) + Fraction(9, 10) * old, Fraction(9, 10) * old
        expected_bonds = {
            (0, 2): floor_u16(bond_02),  # floor(6553.5 + 5897.7) = 12451
            (1, 2): floor_u16(bond_12),  # floor(5897.7) = 5897
            (1, 3): 6_553,
        }
        assert expected_bonds[(0, 2)] == 12_451
        # B̂ column 2 = (B_02, B_12)/(B_02 + B_12), column 3 = (0, 1). A = (1/2, 1/2):
        # D_raw = (½·½·B̂_02, ½·(½·B̂_12 + ½)), whose sum is ½ → D = (½·B̂_02, ½·B̂_12 + ½).
        share_0 = bond_02 / (bond_02 + bond_12)
        expected_dividends = [share_0 / 2, (1 - share_0) / 2 + Fraction(1, 2)]
    else:
        # Column 2 starts from zero: B_02 = 0.1 (new bond), validator 1's old bond to the old
        # occupant of uid 2 is gone, B_13 = 0.1. Symmetric bonds → D = (½, ½).
        expected_bonds = {(0, 2): 6_553, (1, 3): 6_553}
        expected_dividends = [Fraction(1, 2), Fraction(1, 2)]
    assert stored_bonds(next_state) == expected_bonds
    assert outputs.dividends.tolist() == pytest.approx(
        [float(d) for d in expected_dividends] + [0, 0], abs=1e-12
    )


# ------------------------------------------------------------------------------------------------
# Sparse-path quirk of the liquid-alpha EMA (§4.9).
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("explicit_zero", [True, False], ids=["explicit-zero", "omitted"])
def test_yuma3_liquid_alpha_drops_bonds_without_weight_entry(
    epoch_fn: EpochFn, explicit_zero: bool
) -> None:
    # Liquid alpha with subtensor's test bounds (6553, 19660)/65535, steepness 10, β = 1.
    # Validator 0 (stake 3) and validator 1 (stake 1); miners 2 and 3. Validator 1 holds a stored
    # bond of 65535 (= 1.0) to miner 3 and now gives miner 3 either an explicit zero weight or no
    # entry at all. Both put all their weight on miner 2, so C_2 = 1 and liquid alpha is on.
    params = YumaParams(yuma3=True, liquid_alpha=True, alpha_low_u16=6_553, alpha_high_u16=19_660)
    state = EpochState(
        bonds=u16_bonds_table({(1, 3): U16}),
        validator_permit=np.array([True, True, False, False]),
    )
    row_1 = {2: U16, 3: 0} if explicit_zero else {2: U16}
    inputs = EpochInputs(
        stake_rao=np.array([3, 1, 0, 0]),
        weights=weights_table({0: {2: U16}, 1: row_1}),
        last_update_block=np.array([100, 100, 0, 0]),
        registered_block=np.array([0, 0, 0, 0]),
        current_block=100,
        owner_uid=None,
        last_step_block=90,
        tempo_blocks=10,
    )
    _, next_state = epoch_fn(inputs, params, state)

    # New bonds to miner 2 (both validators): W_b = 1 ≥ B_old = 0 ⇒ d = buy = clamp(1 − C_2) = 0,
    # σ = 1/(1 + e^5), α = 0.1013310 ⇒ B = α → floor(6640.73) = 6640.
    alpha_buy = 6_553 / U16 + (1 / (1 + math.exp(5))) * 13_107 / U16
    expected = {(0, 2): math.floor(U16 * alpha_buy), (1, 2): math.floor(U16 * alpha_buy)}
    assert expected[(0, 2)] == 6_640
    if explicit_zero:
        # The zero weight survives clipping (min(0, C_3 = 0) = 0 is kept, not "clipped"), so W_b
        # has the entry 0 < B_old = 1 ⇒ d = sell = clamp(1 − 0, 0, 1) = 1,
        # σ = 1/(1 + e^−5) = 0.9933071, α = 6553/65535 + σ·13107/65535 = 0.2986538,
        # B = (1 − α)·1 + max(0, α·0) = 0.7013462 → floor(45962.73) = 45962: it decays.
        alpha_sell = 6_553 / U16 + (1 / (1 + math.exp(-5))) * 13_107 / U16
        expected[(1, 3)] = math.floor(U16 * (1 - alpha_sell))
        assert expected[(1, 3)] == 45_962
    # Omitted: no W_b entry, and the chain's sparse liquid EMA only emits W_b entries, so the
    # bond is dropped to 0 instead of decaying to 45962 (spec §4.9 "Sparse-path quirk").
    assert stored_bonds(next_state) == expected


def test_yuma3_fixed_alpha_decays_bonds_without_weight_entry(epoch_fn: EpochFn) -> None:
    # Same as above without liquid alpha (fixed α = 0.1): the sparse EMA runs over the union of
    # entries, so the omitted miner's bond decays, B = 0.9·1 → floor(58981.5) = 58981.
    params = YumaParams(yuma3=True)
    state = EpochState(
        bonds=u16_bonds_table({(1, 3): U16}),
        validator_permit=np.array([True, True, False, False]),
    )
    inputs = EpochInputs(
        stake_rao=np.array([3, 1, 0, 0]),
        weights=weights_table({0: {2: U16}, 1: {2: U16}}),
        last_update_block=np.array([100, 100, 0, 0]),
        registered_block=np.array([0, 0, 0, 0]),
        current_block=100,
        owner_uid=None,
        last_step_block=90,
        tempo_blocks=10,
    )
    _, next_state = epoch_fn(inputs, params, state)
    # Miner 2: B = 0.1·1 → floor(6553.5) = 6553 for both validators.
    assert stored_bonds(next_state) == {(0, 2): 6_553, (1, 2): 6_553, (1, 3): 58_981}


# ------------------------------------------------------------------------------------------------
# Weight copier.
# ------------------------------------------------------------------------------------------------
MINERS = (4, 5, 6)


def _max_upscaled_u16(values: list[float]) -> list[int]:
    top = max(values)
    return [math.floor(U16 * value / top) for value in values]


def run_weight_copier(
    epoch_fn: EpochFn, params: YumaParams, qualities: list[list[float]]
) -> np.ndarray:
    """Honest validators 0–2 weight the miners' current quality; validator 3 copies the
    consensus of the previous epoch (max-upscaled to u16). Equal stakes. Returns the per-epoch
    dividends of validators 0–3."""
    n_uids = 7
    state = EpochState(
        bonds=EpochState.empty(n_uids).bonds,
        validator_permit=np.array([True] * 4 + [False] * 3),
    )
    previous_consensus: list[float] | None = None
    dividends = []
    for epoch, quality in enumerate(qualities):
        block = 100 + 10 * epoch
        honest = _max_upscaled_u16(quality)
        # Before any consensus exists the copier has nothing to copy and weights like the others.
        copied = honest if previous_consensus is None else _max_upscaled_u16(previous_consensus)
        rows = {i: dict(zip(MINERS, honest, strict=True)) for i in range(3)}
        rows[3] = dict(zip(MINERS, copied, strict=True))
        inputs = EpochInputs(
            stake_rao=np.array([1, 1, 1, 1, 0, 0, 0]),
            weights=weights_table(rows),
            last_update_block=np.array([block] * 4 + [0] * 3),
            registered_block=np.zeros(n_uids, dtype=np.int64),
            current_block=block,
            owner_uid=None,
            last_step_block=block - 10 if epoch else 0,
            tempo_blocks=10,
        )
        outputs, state = epoch_fn(inputs, params, state)
        previous_consensus = [float(outputs.consensus[j]) for j in MINERS]
        dividends.append(outputs.dividends[:4])
    return np.array(dividends)


# The best miner changes every 3 epochs: 4, then 5, then 6.
CHANGING_QUALITY = [[1.0, 0.5, 0.1]] * 3 + [[0.1, 1.0, 0.5]] * 3 + [[0.5, 0.1, 1.0]] * 3


@pytest.mark.parametrize(
    "params",
    [
        YumaParams(yuma3=True),  # fixed α = 0.1, β = 1
        YumaParams(yuma3=True, liquid_alpha=True),  # liquid alpha, chain defaults (0.7, 0.9)
        YumaParams(
            yuma3=True,
            liquid_alpha=True,
            alpha_low_u16=6_553,
            alpha_high_u16=19_660,
            bonds_penalty_u16=0,
        ),  # subtensor's Yuma3 test settings
    ],
    ids=["fixed-alpha", "liquid-alpha", "liquid-alpha-beta0"],
)
def test_weight_copier_earns_less_than_honest_validators(
    epoch_fn: EpochFn, params: YumaParams
) -> None:
    dividends = run_weight_copier(epoch_fn, params, CHANGING_QUALITY)
    honest, copier = dividends[:, :3], dividends[:, 3]
    # The three honest validators are indistinguishable (same stake, weights and history).
    np.testing.assert_allclose(honest, np.repeat(honest[:, :1], 3, axis=1), rtol=0, atol=1e-12)
    # Epoch 0: nothing to copy yet, the copier weights exactly like everyone → equal dividends.
    # (In epochs 1–2 it copies C, the honest weights up to u16 rounding, so it stays close.)
    assert copier[0] == pytest.approx(honest[0, 0], abs=1e-12)
    # From each quality change on, the copier still weights the old best miner for one epoch,
    # so it bonds to the new best miner one epoch late and earns less in every later epoch.
    for epoch in range(3, len(CHANGING_QUALITY)):
        assert copier[epoch] < honest[epoch, 0], f"epoch {epoch}"
    assert copier.sum() < honest[:, 0].sum()


def test_weight_copier_earns_nothing_in_the_epoch_the_best_miner_changes(
    epoch_fn: EpochFn,
) -> None:
    # Sharp qualities: honest validators give all weight to the best miner (explicit zeros to the
    # others). Fixed α = 0.1, β = 1. In epoch 3 the honest 3/4 of the stake move to miner 5, so
    # C = (0, 1, 0) and I = (0, 1, 0). The copier still weights miner 4 (last epoch's
    # consensus), has never given miner 5 positive weight, so B_copier,5 = 0 and
    # D_copier = A·Σ_j B̂_copier,j·I_j = A·B̂_copier,5 = 0. In epochs 0–2 all four validators
    # weight identically, so each gets ¼.
    sharp = [[1.0, 0.0, 0.0]] * 3 + [[0.0, 1.0, 0.0]] * 2
    dividends = run_weight_copier(epoch_fn, YumaParams(yuma3=True), sharp)
    for epoch in range(3):
        assert dividends[epoch].tolist() == pytest.approx([0.25] * 4, abs=1e-12)
    assert dividends[3, 3] == 0.0
    assert dividends[3, :3].tolist() == pytest.approx([1 / 3] * 3, abs=1e-12)
    # Epoch 4: the copier now weights miner 5 too and starts bonding: 0 < D_copier < D_honest.
    assert 0.0 < dividends[4, 3] < dividends[4, 0]


# ------------------------------------------------------------------------------------------------
# Commit-reveal mask (§4.5.5).
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("commit_reveal", "commit_block_0", "expected_incentive"),
    [
        # Off: the mask is not applied, whatever the commit blocks. W_0 = W_1 = (½, ½) on miners
        # 2 and 3 → C = (½, ½), I = (½, ½).
        (False, 49, [0, 0, 0.5, 0.5]),
        # Validator 0's oldest unexpired commit (block 49) predates miner 3's registration
        # (block 50): commit_block < reg ⇒ (0, 3) dropped, so W_0 = (1, 0). C_2 = 1 (stake ⅔ ≥ κ
        # at level 1); C_3 = 0 (only validator 1, stake ⅓ < κ, supports it) → I = (1, 0).
        (True, 49, [0, 0, 1, 0]),
        # Committed at block 50 = reg_3: not before the registration, nothing masked.
        (True, 50, [0, 0, 0.5, 0.5]),
        # No unexpired commit (the sentinel): nothing masked.
        (True, NO_COMMIT_BLOCK, [0, 0, 0.5, 0.5]),
    ],
)
def test_commit_reveal_masks_weights_committed_before_registration(
    epoch_fn: EpochFn, commit_reveal: bool, commit_block_0: int, expected_incentive: list[float]
) -> None:
    # Validators 0 (stake 2) and 1 (stake 1) both weight miners 2 and 3 equally; last_update 60
    # is after miner 3's registration at block 50, so the outdated mask keeps everything.
    inputs = EpochInputs(
        stake_rao=np.array([2, 1, 0, 0]),
        weights=weights_table({0: {2: U16, 3: U16}, 1: {2: U16, 3: U16}}),
        last_update_block=np.array([60, 60, 0, 0]),
        registered_block=np.array([0, 0, 0, 50]),
        current_block=60,
        owner_uid=None,
        last_step_block=0,
        tempo_blocks=10,
        commit_block=np.array([commit_block_0, NO_COMMIT_BLOCK, NO_COMMIT_BLOCK, NO_COMMIT_BLOCK]),
    )
    params = YumaParams(commit_reveal=commit_reveal)
    permits = np.array([True, True, False, False])
    outputs, _ = epoch_fn(
        inputs, params, EpochState(bonds=EpochState.empty(4).bonds, validator_permit=permits)
    )
    assert outputs.incentive.tolist() == pytest.approx(expected_incentive, abs=ABS)
