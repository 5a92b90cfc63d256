"""Scenario schema v2 (tasks/consensus/scenario.md): one test per feature, the chain's own integers.

Every example in tasks/consensus/examples/ is replayed epoch by epoch through the NumPy reference
epoch with state edits done here independently (a dict of bonds), and each feature's effect is
asserted as an exact outcome. ``test_continues_subtensor_test_bonds`` starts from the chain's
state after an epoch of subtensor's ``test_bonds`` and asserts the integers the chain asserts.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.tasks.consensus import scenario_schema
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.reference import reference_epoch
from taoflow.tasks.consensus.scenario import (
    InvalidScenario,
    apply_state_overrides,
    chain_emission,
    parse_scenario,
    run_scenario,
)
from taoflow.tasks.consensus.scenario_schema import StateOverrides
from taoflow.tasks.consensus.types import (
    BONDS_FLOAT_SCHEMA,
    NO_COMMIT_BLOCK,
    EpochInputs,
    EpochOutputs,
    EpochState,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "tasks" / "consensus" / "examples"
EXAMPLE_NAMES = sorted(path.name for path in EXAMPLES.glob("*.json"))
FLOAT_ABS = 1e-9  # DuckDB epoch vs NumPy reference, both float64
CHAIN_FLOAT_ABS = 1e-6  # float64 vs the chain's I32F32 (spec §9)
U16_LSB = 1
RAO_LSB = 1


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return document


def refused(document: object) -> str:
    with pytest.raises(InvalidScenario) as caught:
        run_scenario(document)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- an independent replay through the NumPy reference ----------------------------------------


def _bonds_table(bonds: dict[tuple[int, int], int]) -> pa.Table:
    keys = sorted(bonds)
    return pa.table(
        {
            "validator": pa.array([v for v, _ in keys], pa.int32()),
            "miner": pa.array([m for _, m in keys], pa.int32()),
            "bond_u16": pa.array([bonds[key] for key in keys], pa.int32()),
        }
    )


def _edit(
    bonds: dict[tuple[int, int], int], permit: list[bool], overrides: dict[str, Any]
) -> list[bool]:
    if "validator_permit" in overrides:
        permit = list(overrides["validator_permit"])
    for miner in overrides.get("reset_bond_miners", []):
        for key in [key for key in bonds if key[1] == miner]:
            del bonds[key]
    for validator, miner, value in overrides.get("bonds_u16", []):
        bonds.pop((validator, miner), None)
        if value:
            bonds[(validator, miner)] = value
    return permit


def _inputs(document: dict[str, Any], raw: dict[str, Any]) -> EpochInputs:
    n = len(raw["stake_rao"])
    commit = raw.get("commit_block")
    return EpochInputs(
        stake_rao=np.array(raw["stake_rao"]),
        weights=pa.table(
            {
                "validator": pa.array([w[0] for w in raw.get("weights", [])], pa.int32()),
                "miner": pa.array([w[1] for w in raw.get("weights", [])], pa.int32()),
                "weight_u16": pa.array([w[2] for w in raw.get("weights", [])], pa.int32()),
            }
        ),
        last_update_block=np.array(raw["last_update_block"]),
        registered_block=np.array(raw.get("registered_block", [0] * n)),
        current_block=raw["current_block"],
        owner_uid=raw.get("owner_uid", document.get("owner_uid")),
        last_step_block=raw.get("last_step_block", 0),
        tempo_blocks=raw.get("tempo_blocks", document.get("tempo_blocks", 360)),
        commit_block=None
        if commit is None
        else np.array([NO_COMMIT_BLOCK if c is None else c for c in commit], dtype=np.int64),
    )


def reference_replay(document: dict[str, Any]) -> list[tuple[EpochOutputs, EpochState]]:
    """The v2 semantics of scenario.md, re-implemented on the NumPy reference epoch."""
    initial = document.get("initial_state", {})
    bonds = {(v, m): u for v, m, u in initial.get("bonds_u16", []) if u}
    permit = list(
        initial.get("validator_permit", [False] * len(document["epochs"][0]["stake_rao"]))
    )
    persistent = dict(document.get("hyperparameters", {}))
    replay = []
    for raw in document["epochs"]:
        persistent.update(raw.get("hyperparameters", {}))
        params = YumaParams(**{**persistent, **raw.get("hyperparameters_once", {})})
        inputs = _inputs(document, raw)
        permit = permit + [False] * (inputs.n_uids - len(permit))
        permit = _edit(bonds, permit, raw.get("state_overrides", {}))
        state = EpochState(bonds=_bonds_table(bonds), validator_permit=np.array(permit))
        outputs, after = reference_epoch(inputs, params, state)
        replay.append((outputs, after))
        table = after.bonds.to_pydict()
        bonds = dict(
            zip(
                zip(table["validator"], table["miner"], strict=True), table["bond_u16"], strict=True
            )
        )
        permit = after.validator_permit.tolist()
    return replay


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_matches_the_reference_replay(name: str) -> None:
    document = load(name)
    result = run_scenario(document)
    assert result["version"] == 2
    replay = reference_replay(document)
    assert len(result["epochs"]) == len(replay) == len(document["epochs"])
    for out, (expected, state) in zip(result["epochs"], replay, strict=True):
        for key in ("stake_weight", "validator_trust", "consensus", "incentive", "dividends"):
            np.testing.assert_allclose(out[key], getattr(expected, key), atol=FLOAT_ABS)
        np.testing.assert_allclose(out["chain"]["active_stake"], expected.active_stake, atol=1e-12)
        assert out["validator_permit"] == state.validator_permit.tolist()
        table = state.bonds.to_pydict()
        assert out["bonds_u16"] == [
            list(row)
            for row in zip(table["validator"], table["miner"], table["bond_u16"], strict=True)
        ]


def test_examples_cover_every_feature() -> None:
    assert EXAMPLE_NAMES == [
        "chain_test_bonds_epoch2.json",
        "commit_reveal.json",
        "owner_threshold_growth.json",
        "persistent_hyperparameters.json",
        "state_overrides.json",
        "tempo_zero.json",
    ]


# ---- 1. initial state ------------------------------------------------------------------------


def test_initial_state_is_what_the_first_epoch_reads() -> None:
    document = load("chain_test_bonds_epoch2.json")
    first = run_scenario(document)["epochs"][0]
    assert first["incentive"][4:] == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-4)
    assert first["dividends"][0] == pytest.approx(0.0899967032, abs=CHAIN_FLOAT_ABS)
    without_bonds = copy.deepcopy(document)
    del without_bonds["initial_state"]["bonds_u16"]
    # No stored bonds: validator 0 (self-weight only) has nothing to earn dividends from.
    assert run_scenario(without_bonds)["epochs"][0]["dividends"][0] == 0.0
    del without_bonds["initial_state"]
    # No permits either: every weight is ignored, as in a v1 first epoch.
    assert run_scenario(without_bonds)["epochs"][0]["incentive"] == [0.0] * 8


@pytest.mark.parametrize(
    ("initial_state", "message"),
    [
        ({"validator_permit": [True] * 7}, "initial_state.validator_permit must have n=8 entries"),
        ({"validator_permit": [1] + [True] * 7}, "initial_state.validator_permit[0] must be true"),
        ({"bonds_u16": [[0, 4, 65536]]}, "initial_state.bonds_u16[0]: u16 must be in [0, 65535]"),
        ({"bonds_u16": [[0, 8, 1]]}, "initial_state.bonds_u16[0]: uids must be in [0, 8)"),
        ({"bonds_u16": [[0, 4, -1]]}, "initial_state.bonds_u16[0]: u16 must be in"),
        ({"bonds_u16": [[0, 4]]}, "initial_state.bonds_u16[0] must be [validator, miner, u16]"),
        (
            {"bonds_u16": [[0, 4, 1], [1, 4, 1], [0, 4, 2]]},
            "initial_state.bonds_u16[2]: repeats (validator, miner) (0, 4)",
        ),
        ({"bonds": []}, "initial_state: unknown key 'bonds'"),
        ([], "initial_state must be an object"),
    ],
)
def test_initial_state_is_validated(initial_state: object, message: str) -> None:
    document = load("chain_test_bonds_epoch2.json")
    document["initial_state"] = initial_state
    assert refused(document).startswith(message)


# ---- 2. state overrides ----------------------------------------------------------------------


def test_state_overrides_apply_in_order_and_keep_bonds_sorted() -> None:
    state = EpochState(
        bonds=_bonds_table({(0, 2): 10, (0, 3): 20, (1, 2): 30, (1, 3): 40}),
        validator_permit=np.array([True, True, False, False]),
    )
    overrides = StateOverrides(
        validator_permit=np.array([True, False, False, False]),
        bonds_u16=np.array([[1, 2, 0], [1, 3, 7], [0, 1, 5]]),
        reset_bond_miners=(3,),
    )
    edited = apply_state_overrides(state, overrides)
    assert edited.validator_permit.tolist() == [True, False, False, False]
    # Column 3 reset, then (1, 3) set to 7; (1, 2) deleted; (0, 1) added.
    assert edited.bonds.to_pydict() == {
        "validator": [0, 0, 1],
        "miner": [1, 2, 3],
        "bond_u16": [5, 10, 7],
    }
    assert apply_state_overrides(state, StateOverrides()) is state


def test_state_overrides_example_resets_a_column_and_a_lost_permit_silences_a_validator() -> None:
    result = run_scenario(load("state_overrides.json"))["epochs"]
    assert [1, 3] in [row[:2] for row in result[0]["bonds_u16"]]
    assert result[2]["validator_trust"][:2] == [1.0, 0.0]  # validator 1's weights are ignored
    assert result[2]["consensus"][2:] == pytest.approx([0.5, 0.5], abs=FLOAT_ABS)
    # Without the overrides, validator 1 keeps voting and the epochs differ.
    plain = load("state_overrides.json")
    for epoch in plain["epochs"]:
        epoch.pop("state_overrides", None)
    unchanged = run_scenario(plain)["epochs"]
    assert unchanged[2]["validator_trust"][:2] == [1.0, 1.0]
    assert unchanged[1]["dividends"] != result[1]["dividends"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"bonds_u16": [[0, 2, 1], [0, 3, 1], [1, 2, 70000]]},
            "epochs[0].state_overrides.bonds_u16[2]: u16 must be in [0, 65535], got 70000",
        ),
        (
            {"reset_bond_miners": [9]},
            "epochs[0].state_overrides.reset_bond_miners[0] must be an integer in [0, 3], got 9",
        ),
        ({"reset_bond_miners": [2, 2]}, "epochs[0].state_overrides.reset_bond_miners repeats"),
        ({"validator_permit": [True]}, "epochs[0].state_overrides.validator_permit must have n=4"),
        ({"permits": []}, "epochs[0].state_overrides: unknown key 'permits'"),
    ],
)
def test_state_overrides_are_validated(overrides: dict[str, Any], message: str) -> None:
    document = load("state_overrides.json")
    document["epochs"][0]["state_overrides"] = overrides
    assert refused(document).startswith(message)


# ---- 3. persistent hyper-parameters ----------------------------------------------------------


def test_hyperparameters_persist_and_once_applies_to_one_epoch() -> None:
    epochs = run_scenario(load("persistent_hyperparameters.json"))["epochs"]
    assert [e["hyperparameters"]["yuma3"] for e in epochs] == [False, True, True, True]
    assert [e["hyperparameters"]["bonds_penalty_u16"] for e in epochs] == [
        65_535,
        65_535,
        0,
        65_535,
    ]
    assert {e["hyperparameters"]["kappa_u16"] for e in epochs} == {32_767}


def test_v1_hyperparameters_still_apply_to_their_epoch_only() -> None:
    document = load("persistent_hyperparameters.json")
    del document["version"], document["initial_state"]
    epochs = run_scenario(document)["epochs"]
    assert "version" not in run_scenario(document)
    assert [e["hyperparameters"]["yuma3"] for e in epochs] == [False, True, False, False]


# ---- 4. commit-reveal -------------------------------------------------------------------------


def test_commit_before_a_reregistration_masks_that_miner() -> None:
    document = load("commit_reveal.json")
    epoch = run_scenario(document)["epochs"][0]
    assert epoch["incentive"] == pytest.approx([0.0, 0.0, 1.0, 0.0], abs=FLOAT_ABS)
    assert epoch["incentive"][3] == 0.0
    assert epoch["emission_rao"]["miners"][3] == 0
    assert epoch["chain"]["server_emission_rao"][3] == 0
    assert epoch["emission_rao"]["miners"][2] == 410_000_000

    document["hyperparameters"]["commit_reveal"] = False
    unmasked = run_scenario(document)["epochs"][0]
    assert unmasked["incentive"] == pytest.approx([0.0, 0.0, 0.5, 0.5], abs=FLOAT_ABS)
    assert unmasked["emission_rao"]["miners"][3] == 205_000_000

    document["hyperparameters"]["commit_reveal"] = True
    document["epochs"][0]["commit_block"] = [150, None, None, None]  # not before block 150
    assert run_scenario(document)["epochs"][0]["emission_rao"]["miners"][3] == 205_000_000


def test_v1_ignores_commit_blocks() -> None:
    document = load("commit_reveal.json")
    del document["version"], document["initial_state"]
    document["epochs"].insert(0, copy.deepcopy(document["epochs"][0]))  # grants the permits
    document["epochs"][0]["current_block"] = 100
    document["epochs"][0]["last_update_block"] = [90, 90, 0, 0]
    document["epochs"][0]["registered_block"] = [0, 0, 0, 0]
    assert run_scenario(document)["epochs"][1]["incentive"][3] == pytest.approx(0.5)


# ---- 5. last_step_block and tempo 0 -----------------------------------------------------------


def test_last_step_block_defaults_to_zero_in_v2_and_to_the_previous_block_in_v1() -> None:
    document = load("tempo_zero.json")
    v2 = parse_scenario(document)
    assert [e.inputs.last_step_block for e in v2.epochs] == [0, 100]
    assert [e.inputs.tempo_blocks for e in v2.epochs] == [0, 0]
    del document["version"], document["initial_state"], document["epoch_emission_rao"]
    del document["epochs"][1]["last_step_block"]
    assert [e.inputs.last_step_block for e in parse_scenario(document).epochs] == [0, 200]


def test_new_registration_mask_follows_last_step_block() -> None:
    document = load("tempo_zero.json")
    masked = run_scenario(document)["epochs"][1]
    # last_step_block 100: miner 3 (registered at 150) is new, so its old bond column is dropped,
    # exactly as if its bonds had been reset before the epoch.
    reset = load("tempo_zero.json")
    del reset["epochs"][1]["last_step_block"]
    reset["epochs"][1]["state_overrides"] = {"reset_bond_miners": [3]}
    assert run_scenario(reset)["epochs"][1]["dividends"] == masked["dividends"]
    assert run_scenario(reset)["epochs"][1]["bonds_u16"] == masked["bonds_u16"]
    # With the v2 default (0) and tempo 0, last_tempo = current_block: the bonds stay.
    del reset["epochs"][1]["state_overrides"]
    kept = run_scenario(reset)["epochs"][1]
    assert kept["dividends"] != masked["dividends"]
    assert kept["dividends"][1] > masked["dividends"][1]


# ---- 6. owner uid, stake threshold, growing n -------------------------------------------------


def test_owner_keeps_its_stake_permit_and_self_weight_below_the_threshold() -> None:
    document = load("owner_threshold_growth.json")
    first, second = run_scenario(document)["epochs"]
    assert first["stake_weight"] == pytest.approx([900 / 1900, 0.0, 1000 / 1900, 0.0, 0.0])
    assert first["validator_permit"] == [True, False, True, False, False]
    assert first["validator_trust"][0] == pytest.approx(32_767 / (32_767 + 2 * 65_535), abs=1e-4)
    assert first["incentive"][0] > 0
    assert len(second["incentive"]) == 6
    assert second["validator_permit"] == [True, False, True, False, False, False]
    assert second["incentive"][5] == pytest.approx(second["incentive"][3])

    document["epochs"][0]["owner_uid"] = None  # the per-epoch override wins
    no_owner = run_scenario(document)["epochs"][0]
    assert no_owner["stake_weight"][0] == 0.0
    assert no_owner["owner_uid"] is None
    assert run_scenario(document)["epochs"][1]["owner_uid"] == 0


def test_uids_are_never_removed() -> None:
    document = load("owner_threshold_growth.json")
    second = document["epochs"][1]
    for key in ("stake_rao", "last_update_block"):
        second[key] = second[key][:4]
    second["weights"] = [[2, 3, 65535]]
    del second["registered_block"]
    assert refused(document) == (
        "epochs[1]: n=4 is less than the previous n=5 (uids are never removed on chain)"
    )


# ---- 7. the chain's integer forms -------------------------------------------------------------


def _outputs(**vectors: list[float]) -> EpochOutputs:
    n = len(next(iter(vectors.values())))
    zeros = [0.0] * n
    fields: dict[str, Any] = {
        name: np.array(vectors.get(name, zeros))
        for name in (
            "stake_weight",
            "active_stake",
            "validator_trust",
            "consensus",
            "incentive",
            "dividends",
            "server_emission_share",
            "validator_emission_share",
        )
    }
    return EpochOutputs(
        **fields,
        active=np.ones(n, dtype=np.bool_),
        validator_permit=np.ones(n, dtype=np.bool_),
        bonds=BONDS_FLOAT_SCHEMA.empty_table(),
    )


def test_chain_emission_floors_each_share_and_leaves_dust() -> None:
    outputs = _outputs(incentive=[0.0, 0.25, 0.75], dividends=[1.0, 0.0, 0.0])
    emission = chain_emission(outputs, epoch_emission_rao=1_000_000_001)
    # E_sum = 2: floor(0.125 E), floor(0.375 E) and floor(0.5 E); the three lost fractions are dust.
    assert emission.server_emission_rao == (0, 125_000_000, 375_000_000)
    assert emission.validator_emission_rao == (500_000_000, 0, 0)
    assert emission.combined_emission_rao == (500_000_000, 125_000_000, 375_000_000)
    assert 1_000_000_001 - sum(emission.combined_emission_rao) == 1


def test_chain_emission_falls_back_to_active_stake_then_stake() -> None:
    active = _outputs(active_stake=[0.75, 0.25, 0.0], stake_weight=[0.5, 0.25, 0.25])
    emission = chain_emission(active, epoch_emission_rao=1_000)
    assert emission.server_emission_rao == (0, 0, 0)
    assert emission.validator_emission_rao == (750, 250, 0)
    assert emission.combined_emission_rao == (750, 250, 0)
    stake_only = _outputs(stake_weight=[0.5, 0.25, 0.25])
    assert chain_emission(stake_only, epoch_emission_rao=1_000).validator_emission_rao == (
        500,
        250,
        250,
    )


def test_chain_object_is_v2_only_and_epoch_emission_defaults_to_the_pool() -> None:
    document = load("commit_reveal.json")
    chain = run_scenario(document)["epochs"][0]["chain"]
    assert chain["epoch_emission_rao"] == 820_000_000  # 1e9 less the owner's 18 %
    assert chain["incentive_u16"] == [0, 0, 65_535, 0]
    assert chain["dividends_u16"] == [49_151, 16_383, 0, 0]  # 0.75 and 0.25, floored
    # 0.6 and 0.4 are exactly 39321/65535 and 26214/65535: the chain stores k − 1 (spec §9).
    assert chain["stake_weight_u16"] == chain["active_stake_u16"] == [39_320, 26_213, 0, 0]
    assert chain["server_emission_rao"] == [0, 0, 410_000_000, 0]
    assert chain["validator_emission_rao"] == [307_500_000, 102_500_000, 0, 0]
    document["epochs"][0]["epoch_emission_rao"] = 7
    assert run_scenario(document)["epochs"][0]["chain"]["epoch_emission_rao"] == 7
    del document["version"], document["initial_state"]
    v1_epoch = run_scenario(document)["epochs"][0]
    assert "chain" not in v1_epoch and "last_step_block" not in v1_epoch


# ---- 8. continuing subtensor's test_bonds ------------------------------------------------------

TEST_BONDS_WEIGHTS = [16383, 32767, 49149, 65535]  # u16::MAX/4, /2, (/4)*3, MAX on servers 4..7
"""test_bonds: every validator's weights on servers 4, 5, 6, 7."""


def bonds_epoch(current_block: int, self_weights: int, *, only_server_7: bool) -> dict[str, Any]:
    """Epoch ``current_block`` of test_bonds: validators < ``self_weights`` set only a
    self-weight; validator 2 has set [7 → 65535] once ``only_server_7``."""
    weights = [[v, v, 65535] for v in range(self_weights)]
    for validator in range(self_weights, 4):
        if only_server_7 and validator == 2:
            weights.append([2, 7, 65535])
            continue
        weights += [[validator, 4 + k, w] for k, w in enumerate(TEST_BONDS_WEIGHTS)]
    return {
        "current_block": current_block,
        "stake_rao": [1, 2, 3, 4, 0, 0, 0, 0],
        "last_update_block": [
            1,
            min(current_block - 1, 2),
            min(current_block - 1, 4),
            1,
            0,
            0,
            0,
            0,
        ],
        "weights": weights,
    }


def bonds_document(state_bonds: list[list[int]], epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """A v2 document starting from test_bonds' stored bonds ``state_bonds[v][m - 4]``."""
    return {
        "version": 2,
        "tempo_blocks": 1,
        "epoch_emission_rao": 1_000_000_000,
        "hyperparameters": {"max_validators": 8},
        "initial_state": {
            "validator_permit": [True] * 4 + [False] * 4,
            "bonds_u16": [
                [v, 4 + k, u] for v in range(4) for k, u in enumerate(state_bonds[v]) if u
            ],
        },
        "epochs": epochs,
    }


# Stored bonds (rows: validators 0..3; columns: servers 4..7) after each epoch of test_bonds, as
# the chain asserts them (bonds[i][4] or bonds[i][7]) and prints them (B at the next epoch).
CHAIN_BONDS = {
    1: [[16383] * 4, [32767] * 4, [49151] * 4, [65535] * 4],
    2: [[14582] * 4, [32767] * 4, [49151] * 4, [65535] * 4],
    3: [[12603] * 4, [28321] * 4, [49151] * 4, [65535] * 4],
    4: [[12602] * 4, [28320] * 4, [49150] * 4, [65535] * 4],
    5: [[12601] * 3 + [10951], [28319] * 3 + [24609], [49149] * 3 + [49150], [65535] * 4],
    6: [[12600] * 3 + [9559], [28318] * 3 + [21482], [49148] * 3 + [49150], [65535] * 4],
    7: [[12599] * 3 + [8376], [28317] * 3 + [18824], [49147] * 3 + [49150], [65535] * 4],
}
# The chain's printed D (dividends of validators 0..3) and E (rao emission per uid, the stored
# combined ``Emission``) of each epoch.
CHAIN_DIVIDENDS = {
    2: [0.0899967032, 0.2022211233, 0.303334432, 0.404447741],
    3: [0.0809936118, 0.1819995677, 0.3158592721, 0.421147548],
    4: [0.0, 0.0, 0.0, 0.0],
    5: [0.0728874663, 0.1637972582, 0.3271309866, 0.4361842885],
    6: [0.0655988548, 0.1474132247, 0.3372762585, 0.4497116616],
    7: [0.0590361361, 0.1326722752, 0.3464062694, 0.4618853189],
}
CHAIN_CONSENSUS = {  # the chain's printed C of servers 4..7
    2: [0.0999975584, 0.2000012207, 0.2999926754, 0.400008545],
    3: [0.0999975584, 0.2000012207, 0.2999926754, 0.400008545],
    4: [0.0, 0.0, 0.0, 0.0],  # nothing reaches kappa: validator 3 alone holds 40 %
    5: [0.0, 0.0, 0.0, 0.400008545],
    6: [0.0, 0.0, 0.0, 0.400008545],
    7: [0.0, 0.0, 0.0, 0.400008545],
}
CHAIN_EMISSION_RAO = {
    2: [44998351, 101110561, 151667215, 202223870, 49998779, 100000610, 149996337, 200004272],
    3: [40496805, 90999783, 157929636, 210573773, 49998779, 100000610, 149996337, 200004272],
    4: [99999999, 199999999, 299999999, 399999999, 0, 0, 0, 0],
    5: [36443733, 81898628, 163565493, 218092144, 0, 0, 0, 500000000],
    6: [32799427, 73706612, 168638129, 224855830, 0, 0, 0, 500000000],
    7: [29518068, 66336137, 173203134, 230942659, 0, 0, 0, 500000000],
}
# Stored bonds that are mathematically k/65535 (a column max-upscaled to an exact multiple), which
# the chain floors to k − 1: they hold only with fixed.proportion_to_u16 (the chain's u16 rule).
FLOOR_SNAP_EPOCHS = frozenset({4, 5, 6, 7})


def chain_epoch(block: int) -> dict[str, Any]:
    """test_bonds' epoch at ``block`` (2 … 7)."""
    if block >= 5:  # validator 2 moved from its self-weight to [7 → 65535]
        return bonds_epoch(block, 2, only_server_7=True)
    return bonds_epoch(block, block - 1, only_server_7=False)


@pytest.mark.parametrize(
    "epoch",
    [2, 3, 4, 5, 6, 7],
    ids=lambda epoch: f"epoch{epoch}" + ("-k_minus_1" if epoch in FLOOR_SNAP_EPOCHS else ""),
)
def test_continues_subtensor_test_bonds(epoch: int) -> None:
    """subtensor ``test_bonds`` (pallets/subtensor/src/tests/epoch.rs, commit
    03f92770a0081475b69811334b0a7c7163157c1b; legacy bonds, β = 1, α = 0.1, tempo 1, stakes
    1, 2, 3, 4 on validators 0..3, servers 4..7): start from the chain's stored state after the
    previous epoch, run this one, and compare with the chain.

    Exact: the stored u16 bonds, which the chain asserts (and prints as the next epoch's B).
    In epochs 4–7 some of them are k − 1 where the exact value is k/65535 (``FLOOR_SNAP_EPOCHS``;
    they need the chain's u16 rule, ``fixed.proportion_to_u16``). Within spec §9 tolerances: the
    printed dividends (1e-6) and rao emissions (±1 rao); the consensus u16 is the floor of the
    printed C times 65535 (each at least 0.02 from an integer, so exact).
    """
    document = bonds_document(CHAIN_BONDS[epoch - 1], [chain_epoch(epoch)])
    result = run_scenario(document)["epochs"][0]
    stored = {(v, m): u for v, m, u in result["bonds_u16"]}
    expected = {(v, 4 + k): u for v in range(4) for k, u in enumerate(CHAIN_BONDS[epoch][v]) if u}
    assert stored == expected
    np.testing.assert_allclose(
        result["dividends"][:4], CHAIN_DIVIDENDS[epoch], atol=CHAIN_FLOAT_ABS
    )
    emission = result["chain"]["combined_emission_rao"]
    differences = [abs(a - b) for a, b in zip(emission, CHAIN_EMISSION_RAO[epoch], strict=True)]
    assert max(differences) <= RAO_LSB
    consensus = [math.floor(c * 65535) for c in CHAIN_CONSENSUS[epoch]]
    assert result["chain"]["consensus_u16"][4:] == consensus


def test_runs_subtensor_test_bonds_from_its_second_epoch_on() -> None:
    """The same chain run as one document: the epochs' own state carries the chain's integers."""
    document = bonds_document(CHAIN_BONDS[1], [chain_epoch(b) for b in range(2, 8)])
    for index, epoch in enumerate(run_scenario(document)["epochs"], start=2):
        stored = {(v, m): u for v, m, u in epoch["bonds_u16"]}
        assert [stored[(v, 4)] for v in range(4)] == [row[0] for row in CHAIN_BONDS[index]]
        assert [stored[(v, 7)] for v in range(4)] == [row[3] for row in CHAIN_BONDS[index]]
        assert math.isclose(sum(epoch["chain"]["combined_emission_rao"]), 1e9, abs_tol=8)


# ---- hostile documents: one line naming the location ------------------------------------------


def _base() -> dict[str, Any]:
    return load("state_overrides.json")


def _set(path: str, value: object) -> dict[str, Any]:
    document = _base()
    target: Any = document
    keys = [int(key) if key.isdigit() else key for key in path.split(".")]
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_set("version", 3), "version: unsupported scenario version 3 (supported: 1, 2)"),
        (_set("version", "2"), "version: unsupported scenario version '2'"),
        (_set("version", True), "version: unsupported scenario version True"),
        (_set("epoch", []), "document: unknown key 'epoch'"),
        (_set("epochs.1.weight", []), "epochs[1]: unknown key 'weight'"),
        (_set("epochs", []), "'epochs' must be a non-empty list"),
        (_set("epochs.0.stake_rao", [1, "x", 0, 0]), "epochs[0].stake_rao[1] must be an integer"),
        (_set("epochs.0.stake_rao", [1, True, 0, 0]), "epochs[0].stake_rao[1] must be an integer"),
        (_set("epochs.0.stake_rao", [1, 2**63, 0, 0]), "epochs[0].stake_rao[1] must be an integer"),
        (_set("epochs.0.stake_rao", [1, 1.5, 0, 0]), "epochs[0].stake_rao[1] must be an integer"),
        (_set("epochs.0.last_update_block", [1]), "epochs[0].last_update_block must have n=4"),
        (
            _set("epochs.0.weights", [[0, 1]]),
            "epochs[0].weights[0] must be [validator, miner, u16]",
        ),
        (
            _set("epochs.0.weights", [[0, 2, 1], [0, 2, 2]]),
            "epochs[0].weights[1]: repeats (validator, miner) (0, 2)",
        ),
        (_set("epochs.0.weights", [[4, 2, 1]]), "epochs[0]: weights.validator must be < n=4"),
        (_set("epochs.0.commit_block", [1, 2, 3]), "epochs[0].commit_block must have n=4 entries"),
        (_set("epochs.0.commit_block", [1, "a", 3, 4]), "epochs[0].commit_block[1] must be"),
        (_set("epochs.0.hyperparameters_once", {"kapa": 1}), "epochs[0]: unknown hyper-parameter"),
        (_set("epochs.0.hyperparameters", [1]), "epochs[0].hyperparameters must be an object"),
        (_set("epochs.0.hyperparameters", {"kappa_u16": 0}), "epochs[0]: kappa_u16 must be in"),
        (_set("epochs.0.last_step_block", 300), "epochs[0]: last_step_block (300) must be <="),
        (_set("epochs.0.owner_uid", 4), "epochs[0].owner_uid must be an integer or null in [0, 3]"),
        (_set("epochs.0.current_block", -1), "epochs[0].current_block must be an integer in"),
        (_set("tempo_blocks", -1), "tempo_blocks must be an integer in [0, "),
        (_set("emission_rao", 1.5), "emission_rao must be an integer in [0, "),
        (
            _set("emission_split_ppm", {"owner": 0, "miners": 500_000, "validators": 400_000}),
            "emission_split_ppm: the shares must add up to 1,000,000, got 900,000",
        ),
        (
            _set("emission_split_ppm", {"owner": 1_000_000, "pool": 0}),
            "emission_split_ppm: unknown",
        ),
        (_set("epochs.0.state_overrides", []), "epochs[0].state_overrides must be an object"),
        ([], "the scenario must be a JSON object"),
    ],
)
def test_hostile_documents_get_one_line_naming_the_location(document: object, message: str) -> None:
    assert refused(document).startswith(message)


def test_long_values_are_shortened_in_errors() -> None:
    message = refused(_set("epochs.0.stake_rao", ["x" * 10_000, 0, 0, 0]))
    assert len(message) < 200


def test_size_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario_schema, "ENTRIES_MAX", 20)
    assert "holds more than 20 values" in refused(_base())
    monkeypatch.setattr(scenario_schema, "ENTRIES_MAX", 10_000_000)
    monkeypatch.setattr(scenario_schema, "UIDS_MAX", 3)
    assert refused(_base()).startswith("epochs[0]: n=4 uids exceeds the maximum 3")


def test_v1_stays_lenient_about_unknown_keys() -> None:
    legacy = json.loads((EXAMPLES.parent / "example_scenario.json").read_text())
    expected = run_scenario(legacy)
    legacy["notes"] = "anything"
    legacy["epochs"][0]["comment"] = 1
    assert run_scenario(legacy) == expected


# ---- the command ------------------------------------------------------------------------------


def test_cli_runs_v2_in_every_format(tmp_path: Path) -> None:
    runner = CliRunner()
    example = str(EXAMPLES / "commit_reveal.json")
    expected = run_scenario(load("commit_reveal.json"))
    out = tmp_path / "out.json"
    quiet = runner.invoke(app, ["consensus", "run", example, "--out", str(out)])
    assert quiet.exit_code == 0 and quiet.output == ""
    assert json.loads(out.read_text()) == expected
    as_json = runner.invoke(app, ["consensus", "run", example, "--format", "json"])
    assert json.loads(as_json.stdout) == expected
    table = runner.invoke(app, ["consensus", "run", example])
    assert table.exit_code == 0
    assert "Active" in table.stdout and "410,000,000" in table.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_set("epochs.0.state_overrides", {"bonds_u16": [[0, 2, -1]]})))
    refusal = runner.invoke(app, ["consensus", "run", str(bad)])
    assert refusal.exit_code == 1
    assert len(refusal.output.strip().splitlines()) == 1
    assert "epochs[0].state_overrides.bonds_u16[0]: u16 must be in" in refusal.output
