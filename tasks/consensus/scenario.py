"""Multi-epoch consensus scenarios: JSON in, every epoch's outputs out (``taoflow consensus run``).

The schema (v2, and v1 which still runs unchanged) is documented in
``tasks/consensus/scenario.md``, with examples in ``tasks/consensus/examples/``; parsing and
validation live in ``scenario_schema``. Pure: ``run_scenario`` depends only on the document.

Invariants
----------
* Epochs run in order through the production DuckDB epoch, each fed the previous epoch's state
  (u16 bonds and permits), padded for uids appended since, then edited by that epoch's
  ``state_overrides`` (v2). The first epoch reads the v2 ``initial_state`` (v1: none).
* Every number in the output is a float share, a u16, or an exact integer rao amount.
  ``emission_rao`` is the network's own exact split (largest remainder, ties to the lower uid,
  nothing lost). The v2 ``chain`` object holds the chain's integer forms: u16 values as subtensor
  stores them (``fixed.proportion_to_u16``) and the epoch's rao emissions computed the chain's
  way (spec §4.10): shares floored to I32F32, divided by their sum in I32F32, multiplied by the
  epoch emission and floored, so they leave dust the exact split does not.
* The v1 output is exactly what it always was; v2 adds ``"version": 2`` and, per epoch,
  ``last_step_block``, ``tempo_blocks``, ``owner_uid`` and ``chain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from taoflow.ledger.emission import split_subnet_emission
from taoflow.tasks.consensus.fixed import (
    FIXED_FRACTION_BITS,
    fixed_raw,
    fixed_share_of_rao,
    proportion_to_u16,
)
from taoflow.tasks.consensus.scenario_schema import (
    ENTRIES_MAX,
    EPOCHS_MAX,
    SCENARIO_V1,
    SCENARIO_V2,
    UIDS_MAX,
    InvalidScenario,
    Scenario,
    ScenarioEpoch,
    StateOverrides,
    parse_scenario,
)
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.types import BONDS_U16_SCHEMA, EpochOutputs, EpochState
from taoflow.tasks.emit import compute_payouts

CHAIN_U16_VECTORS = (
    "stake_weight",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "active_stake",
)
"""Per-uid float outputs the ``chain`` object also gives as the chain's stored u16."""

__all__ = [
    "CHAIN_U16_VECTORS",
    "ENTRIES_MAX",
    "EPOCHS_MAX",
    "UIDS_MAX",
    "ChainEmission",
    "InvalidScenario",
    "apply_state_overrides",
    "chain_emission",
    "parse_scenario",
    "run_scenario",
    "summarise",
]


@dataclass(frozen=True)
class ChainEmission:
    """An epoch's emission in rao as subtensor's epoch computes it (spec §4.10).

    ``server_emission_rao[j] = floor(I_j / E_sum · E)``, ``validator_emission_rao[i] =
    floor(D_i / E_sum · E)`` and ``combined_emission_rao`` (the chain's ``Emission`` storage)
    ``floor((I + D)_i / E_sum · E)``, with E_sum = Σ (I + D); when E_sum is 0, validators (and the
    combined vector) get A, or S when A is all zero, times E, and servers nothing.
    """

    epoch_emission_rao: int
    server_emission_rao: tuple[int, ...]
    validator_emission_rao: tuple[int, ...]
    combined_emission_rao: tuple[int, ...]


def _fixed_times_rao(raw: int, amount_rao: int) -> int:
    """floor(x · amount) for the I32F32 value x = raw / 2^32 (exact, in Python integers)."""
    return (raw * amount_rao) >> FIXED_FRACTION_BITS


def _fixed_ratio(numerator_raw: int, denominator_raw: int) -> int:
    """I32F32 division (truncation) of two I32F32 raw values, as a raw value."""
    return (numerator_raw << FIXED_FRACTION_BITS) // denominator_raw


def _raw(vector: np.ndarray) -> list[int]:
    return [int(value) for value in fixed_raw(vector)]


def chain_emission(outputs: EpochOutputs, *, epoch_emission_rao: int) -> ChainEmission:
    """The chain's rao emissions of one epoch's outputs; integer arithmetic after the I32F32 floor
    of each float share (the same floor ``proportion_to_u16`` starts from)."""
    incentive = _raw(outputs.incentive)
    dividends = _raw(outputs.dividends)
    combined = [i + d for i, d in zip(incentive, dividends, strict=True)]
    total_raw = sum(combined)
    if total_raw == 0:
        fallback = outputs.active_stake if any(_raw(outputs.active_stake)) else outputs.stake_weight
        to_validators = tuple(
            int(rao) for rao in fixed_share_of_rao(fallback, amount_rao=epoch_emission_rao)
        )
        return ChainEmission(
            epoch_emission_rao=epoch_emission_rao,
            server_emission_rao=(0,) * len(incentive),
            validator_emission_rao=to_validators,
            combined_emission_rao=to_validators,
        )

    def share(raw: list[int]) -> tuple[int, ...]:
        return tuple(
            _fixed_times_rao(_fixed_ratio(value, total_raw), epoch_emission_rao) for value in raw
        )

    return ChainEmission(
        epoch_emission_rao=epoch_emission_rao,
        server_emission_rao=share(incentive),
        validator_emission_rao=share(dividends),
        combined_emission_rao=share(combined),
    )


def apply_state_overrides(state: EpochState, overrides: StateOverrides) -> EpochState:
    """``state`` edited by ``overrides`` (permits, then column resets, then entries; a 0 entry
    deletes). Bonds stay sorted by (validator, miner)."""
    if overrides.is_empty:
        return state
    permit = state.validator_permit
    if overrides.validator_permit is not None:
        permit = overrides.validator_permit
    validator = state.bonds.column("validator").to_numpy().astype(np.int64)
    miner = state.bonds.column("miner").to_numpy().astype(np.int64)
    bond = state.bonds.column("bond_u16").to_numpy().astype(np.int64)
    keep = ~np.isin(miner, np.array(overrides.reset_bond_miners, dtype=np.int64))
    edits = overrides.bonds_u16
    keys = (validator << 32) | miner
    keep &= ~np.isin(keys, (edits[:, 0] << 32) | edits[:, 1])
    added = edits[edits[:, 2] > 0]
    validator = np.concatenate([validator[keep], added[:, 0]])
    miner = np.concatenate([miner[keep], added[:, 1]])
    bond = np.concatenate([bond[keep], added[:, 2]])
    order = np.lexsort((miner, validator))
    bonds = pa.Table.from_arrays(
        [pa.array(column[order], pa.int32()) for column in (validator, miner, bond)],
        schema=BONDS_U16_SCHEMA,
    )
    return EpochState(bonds=bonds, validator_permit=permit)


def _epoch_emission_rao(scenario: Scenario, epoch: ScenarioEpoch) -> int:
    """E of spec §4.10: given, or the miners + validators pool of ``emission_rao``."""
    if epoch.epoch_emission_rao is not None:
        return epoch.epoch_emission_rao
    split = split_subnet_emission(
        epoch.emission_rao,
        owner_ppm=scenario.split_ppm.owner,
        miners_ppm=scenario.split_ppm.miners,
        validators_ppm=scenario.split_ppm.validators,
    )
    return split.miners_rao + split.validators_rao


def _chain_object(outputs: EpochOutputs, *, epoch_emission_rao: int) -> dict[str, Any]:
    chain: dict[str, Any] = {"active_stake": outputs.active_stake.tolist()}
    for name in CHAIN_U16_VECTORS:
        chain[f"{name}_u16"] = proportion_to_u16(getattr(outputs, name)).tolist()
    emission = chain_emission(outputs, epoch_emission_rao=epoch_emission_rao)
    chain["epoch_emission_rao"] = emission.epoch_emission_rao
    chain["server_emission_rao"] = list(emission.server_emission_rao)
    chain["validator_emission_rao"] = list(emission.validator_emission_rao)
    chain["combined_emission_rao"] = list(emission.combined_emission_rao)
    return chain


def _epoch_result(
    scenario: Scenario, epoch: ScenarioEpoch, outputs: EpochOutputs, state: EpochState
) -> dict[str, Any]:
    payouts = compute_payouts(
        emission_rao=epoch.emission_rao,
        incentive=outputs.incentive.tolist(),
        dividends=outputs.dividends.tolist(),
        validator_share=outputs.validator_emission_share.tolist(),
        split_ppm=scenario.split_ppm.as_mapping(),
    )
    bonds = state.bonds.to_pydict()
    result: dict[str, Any] = {
        "epoch": epoch.index,
        "current_block": epoch.inputs.current_block,
        "stake_weight": outputs.stake_weight.tolist(),
        "active": outputs.active.tolist(),
        "validator_permit": state.validator_permit.tolist(),
        "validator_trust": outputs.validator_trust.tolist(),
        "consensus": outputs.consensus.tolist(),
        "incentive": outputs.incentive.tolist(),
        "dividends": outputs.dividends.tolist(),
        "server_emission_share": outputs.server_emission_share.tolist(),
        "validator_emission_share": outputs.validator_emission_share.tolist(),
        "bonds_u16": [
            [int(v), int(m), int(b)]
            for v, m, b in zip(bonds["validator"], bonds["miner"], bonds["bond_u16"], strict=True)
        ],
        "emission_rao": {
            "total": payouts.total_rao,
            "owner": payouts.owner_rao,
            "miners": list(payouts.incentive_rao),
            "validators": list(payouts.dividends_rao),
            "unissued": payouts.unissued_rao,
        },
        "hyperparameters": epoch.params.to_dict(),
    }
    if scenario.version == SCENARIO_V1:
        return result
    result["last_step_block"] = epoch.inputs.last_step_block
    result["tempo_blocks"] = epoch.inputs.tempo_blocks
    result["owner_uid"] = epoch.inputs.owner_uid
    result["chain"] = _chain_object(
        outputs, epoch_emission_rao=_epoch_emission_rao(scenario, epoch)
    )
    return result


def run_scenario(document: Mapping[str, Any]) -> dict[str, Any]:
    """Run every epoch of ``document``; return ``{"epochs": [...]}`` (v2: with ``"version": 2``).

    Raises :class:`InvalidScenario` (one line naming the location) before any epoch runs if the
    document does not follow the schema.
    """
    scenario = parse_scenario(document)
    state = scenario.initial_state
    results = []
    for epoch in scenario.epochs:
        previous = apply_state_overrides(state.for_uids(epoch.inputs.n_uids), epoch.overrides)
        outputs, state = run_epoch(epoch.inputs, epoch.params, previous)
        results.append(_epoch_result(scenario, epoch, outputs, state))
    if scenario.version == SCENARIO_V1:
        return {"epochs": results}
    return {"version": SCENARIO_V2, "epochs": results}


def summarise(result: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """One row per (epoch, uid) for a terminal table; ``emission_rao`` is the uid's part of the
    exact split, ``active_stake`` is None for a v1 result."""
    rows = []
    for epoch in result["epochs"]:
        emission = epoch["emission_rao"]
        active_stake = epoch.get("chain", {}).get("active_stake")
        for uid in range(len(epoch["incentive"])):
            rows.append(
                {
                    "epoch": epoch["epoch"],
                    "uid": uid,
                    "validator_trust": epoch["validator_trust"][uid],
                    "consensus": epoch["consensus"][uid],
                    "incentive": epoch["incentive"][uid],
                    "dividends": epoch["dividends"][uid],
                    "permit": epoch["validator_permit"][uid],
                    "active_stake": None if active_stake is None else active_stake[uid],
                    "emission_rao": emission["miners"][uid] + emission["validators"][uid],
                }
            )
    return rows
