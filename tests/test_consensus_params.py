"""Validation of Yuma hyper-parameters and epoch data: invalid values are rejected with reasons."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from taoflow.tasks.consensus import EpochInputs, EpochState, InvalidHyperparameter, YumaParams
from taoflow.tasks.consensus.types import NO_COMMIT_BLOCK


def test_defaults_are_the_chain_defaults() -> None:
    params = YumaParams()
    assert params.to_dict() == {
        "kappa_u16": 32_767,
        "bonds_moving_average_ppm": 900_000,
        "bonds_penalty_u16": 65_535,
        "max_validators": 128,
        "activity_cutoff_blocks": 5_000,
        "stake_threshold_rao": 0,
        "yuma3": False,
        "liquid_alpha": False,
        "alpha_low_u16": 45_875,
        "alpha_high_u16": 58_982,
        "alpha_sigmoid_steepness": 1_000,
        # Chain default is on; off here because the hosted validators set weights directly.
        "commit_reveal": False,
        "immunity_period_blocks": 4_096,
    }
    assert params.kappa == 32_767 / 65_535
    assert params.bonds_penalty == 1.0
    assert params.bonds_alpha == pytest.approx(0.1, abs=1e-15)
    assert params.alpha_low == 45_875 / 65_535
    assert params.alpha_high == 58_982 / 65_535
    assert params.sigmoid_steepness == 10.0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"kappa_u16": -1}, r"kappa_u16 must be in \[1, 65535\]"),
        ({"kappa_u16": 65_536}, r"kappa_u16 must be in \[1, 65535\]"),
        ({"kappa_u16": 0}, r"kappa_u16 must be in \[1, 65535\], got 0: κ = 0 would make"),
        ({"kappa_u16": 0.5}, "kappa_u16 must be an int"),
        ({"kappa_u16": True}, "kappa_u16 must be an int"),
        (
            {"bonds_moving_average_ppm": 975_001},
            r"bonds_moving_average_ppm must be <= 975000 \(the subnet owner's maximum",
        ),
        ({"bonds_moving_average_ppm": 1_000_000}, "bonds_moving_average_ppm must be <= 975000"),
        ({"bonds_moving_average_ppm": -1}, "bonds_moving_average_ppm must be in"),
        ({"bonds_penalty_u16": 65_536}, "bonds_penalty_u16 must be in"),
        ({"max_validators": 0}, r"max_validators must be in \[1, ∞\]"),
        ({"activity_cutoff_blocks": 0}, "activity_cutoff_blocks must be in"),
        ({"stake_threshold_rao": -1}, "stake_threshold_rao must be in"),
        ({"yuma3": 1}, "yuma3 must be a bool"),
        ({"liquid_alpha": "yes"}, "liquid_alpha must be a bool"),
        ({"alpha_low_u16": 1_637}, r"alpha_low_u16 must be in \[1638, 65535\]"),
        ({"alpha_high_u16": 65_536}, "alpha_high_u16 must be in"),
        ({"alpha_low_u16": 50_000, "alpha_high_u16": 49_999}, "must be <= alpha_high_u16"),
        ({"alpha_low_u16": 1_638, "alpha_high_u16": 1_637}, "must be <= alpha_high_u16"),
        ({"alpha_sigmoid_steepness": 32_768}, "alpha_sigmoid_steepness must be in"),
        ({"alpha_sigmoid_steepness": -1}, "only root may set a negative steepness"),
        ({"alpha_sigmoid_steepness": 10.0}, "alpha_sigmoid_steepness must be an int"),
        ({"commit_reveal": 1}, "commit_reveal must be a bool"),
        ({"immunity_period_blocks": -1}, r"immunity_period_blocks must be in \[0, 65535\]"),
        ({"immunity_period_blocks": 65_536}, "immunity_period_blocks must be in"),
        ({"immunity_period_blocks": 4_096.0}, "immunity_period_blocks must be an int"),
    ],
)
def test_invalid_hyperparameters_are_rejected(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidHyperparameter, match=reason):
        YumaParams(**overrides)


def test_invalid_hyperparameter_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        YumaParams(kappa_u16=70_000)


@pytest.mark.parametrize(
    "overrides",
    [
        {"bonds_moving_average_ppm": 975_000},  # the owner's maximum (α = 0.025)
        {"bonds_moving_average_ppm": 0},
        {"kappa_u16": 1},
        {"kappa_u16": 65_535},
        {"alpha_low_u16": 1_638, "alpha_high_u16": 1_638},
        {"alpha_low_u16": 65_535, "alpha_high_u16": 65_535},
        {"alpha_sigmoid_steepness": 0},
        {"alpha_sigmoid_steepness": 32_767},
        {"yuma3": True, "liquid_alpha": True},
        {"commit_reveal": True},
        {"immunity_period_blocks": 0},
        {"immunity_period_blocks": 65_535},
    ],
)
def test_boundary_values_are_accepted(overrides: dict[str, Any]) -> None:
    params = YumaParams(**overrides)
    for name, value in overrides.items():
        assert params.to_dict()[name] == value


def _weights(validators: list[int], miners: list[int], values: list[int]) -> pa.Table:
    return pa.table(
        {
            "validator": pa.array(validators, pa.int32()),
            "miner": pa.array(miners, pa.int32()),
            "weight_u16": pa.array(values, pa.int32()),
        }
    )


def _inputs(**overrides: Any) -> EpochInputs:
    fields: dict[str, Any] = {
        "stake_rao": np.array([10, 0, 0]),
        "weights": _weights([0], [1], [65_535]),
        "last_update_block": np.array([5, 0, 0]),
        "registered_block": np.array([0, 0, 0]),
        "current_block": 10,
        "owner_uid": None,
        "last_step_block": 0,
        "tempo_blocks": 5,
    }
    fields.update(overrides)
    return EpochInputs(**fields)


def test_valid_inputs_are_frozen_copies() -> None:
    stake = np.array([10, 0, 0])
    inputs = _inputs(stake_rao=stake, weights=_weights([0, 0], [1, 7], [0, 65_535]))
    stake[0] = 99
    assert inputs.stake_rao.tolist() == [10, 0, 0]
    assert inputs.stake_rao.dtype == np.int64
    assert not inputs.stake_rao.flags.writeable
    assert inputs.n_uids == 3
    assert inputs.weights.schema.field("weight_u16").type == pa.int32()


@pytest.mark.parametrize(
    ("overrides", "error", "reason"),
    [
        ({"stake_rao": np.array([], dtype=np.int64)}, ValueError, "at least one uid"),
        ({"stake_rao": np.array([1.5, 0, 0])}, TypeError, "stake_rao must hold integers"),
        ({"stake_rao": np.array([-1, 0, 0])}, ValueError, "stake_rao must be non-negative"),
        ({"stake_rao": np.array([[1, 0, 0]])}, ValueError, "one-dimensional"),
        ({"last_update_block": np.array([1, 2])}, ValueError, "last_update_block must have"),
        ({"registered_block": np.array([0, -1, 0])}, ValueError, "registered_block must be"),
        ({"weights": _weights([3], [1], [1])}, ValueError, "weights.validator must be < n=3"),
        ({"weights": _weights([0], [1], [65_536])}, ValueError, "weights.weight_u16 must be in"),
        ({"weights": _weights([0], [-1], [1])}, ValueError, "weights.miner must be in"),
        ({"weights": _weights([0, 0], [1, 1], [1, 2])}, ValueError, "duplicate"),
        ({"weights": pa.table({"validator": [0], "miner": [1]})}, ValueError, "missing column"),
        ({"weights": {"validator": [0]}}, TypeError, "weights must be a pyarrow.Table"),
        ({"owner_uid": 3}, ValueError, "owner_uid must be < n=3"),
        ({"owner_uid": -1}, ValueError, "owner_uid must be >= 0"),
        ({"last_step_block": 11}, ValueError, "last_step_block .* must be <= current_block"),
        ({"tempo_blocks": -1}, ValueError, "tempo_blocks must be >= 0"),
        ({"current_block": -1}, ValueError, "current_block must be >= 0"),
        ({"current_block": 10.0}, TypeError, "current_block must be an int"),
        ({"commit_block": np.array([1, 2])}, ValueError, "commit_block must have length n=3"),
        ({"commit_block": np.array([0, -1, 0])}, ValueError, "commit_block must be non-negative"),
        ({"commit_block": np.array([0.5, 0, 0])}, TypeError, "commit_block must hold integers"),
    ],
)
def test_invalid_inputs_are_rejected(
    overrides: dict[str, Any], error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        _inputs(**overrides)


def test_commit_block_defaults_to_no_commit_and_is_frozen() -> None:
    assert _inputs().commit_block is None
    assert _inputs().commit_blocks().tolist() == [NO_COMMIT_BLOCK] * 3
    blocks = np.array([7, NO_COMMIT_BLOCK, 0], dtype=np.uint64)
    inputs = _inputs(commit_block=blocks)
    blocks[0] = 99
    assert inputs.commit_blocks().tolist() == [7, NO_COMMIT_BLOCK, 0]
    assert inputs.commit_block is not None
    assert inputs.commit_block.dtype == np.int64
    assert not inputs.commit_block.flags.writeable


def test_state_is_padded_for_new_uids_and_rejects_inconsistent_sizes() -> None:
    bonds = pa.table(
        {
            "validator": pa.array([0], pa.int32()),
            "miner": pa.array([1], pa.int32()),
            "bond_u16": pa.array([65_535], pa.int32()),
        }
    )
    state = EpochState(bonds=bonds, validator_permit=np.array([True, False]))
    assert state.for_uids(4).validator_permit.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="permits for 2 uids but the epoch has only n=1"):
        state.for_uids(1)
    wide = EpochState(bonds=bonds, validator_permit=np.array([True]))
    with pytest.raises(ValueError, match="miner uid >= n=1"):
        wide.for_uids(1)
    with pytest.raises(ValueError, match="bond_u16 must be in"):
        EpochState(
            bonds=bonds.set_column(2, "bond_u16", pa.array([70_000], pa.int32())),
            validator_permit=np.array([True, False]),
        )
    with pytest.raises(TypeError, match="validator_permit must be a bool array"):
        EpochState(bonds=bonds, validator_permit=np.array([1, 0]))
    assert EpochState.empty(3).bonds.num_rows == 0
