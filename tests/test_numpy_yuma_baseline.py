"""The vectorised NumPy baseline of benchmarks/consensus.py equals the loop-based reference epoch.

``benchmarks/numpy_yuma.py`` is what the DuckDB epoch is timed against, so it must compute the same
epoch. On small seeded random subnets (1–12 uids, three chained epochs, each implementation fed its
own returned state) both of its layouts (dense and sparse) must match
``tasks.consensus.reference.reference_epoch``: continuous outputs to 1e-9 absolute, booleans,
permits and stored u16 bonds exactly. The generator includes the awkward cases of the spec: stakes
that hit κ exactly (32767 vs 32768, equal stakes with κ = k/m), zero stakes, stakes summing past
2^63, inactive or unpermitted validators, outdated and commit-reveal-masked weights, explicit zero
weights, weights to uids ≥ n, owner self-weights and appended uids.

The Yuma3 path (with liquid alpha) is compared with the reference once the reference implements it
(skipped while it raises ``NotImplementedError``); until then the two layouts are checked against
each other on Yuma3 inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from taoflow.tasks.consensus import (
    EpochInputs,
    EpochOutputs,
    EpochState,
    YumaParams,
    reference_epoch,
)
from taoflow.tasks.consensus.types import NO_COMMIT_BLOCK

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(_ROOT))

from benchmarks.numpy_yuma import numpy_epoch  # noqa: E402

EpochFn = Callable[[EpochInputs, YumaParams, EpochState], tuple[EpochOutputs, EpochState]]

N_SCENARIOS = 150
N_EPOCHS = 3
MAX_UIDS = 12
ATOL = 1e-9

STAKE_POOL_RAO = [0, 1, 2, 3, 5, 7, 32_767, 32_768, 65_535, 1_000_000, 10**12, 10**18, 4 * 10**18]
WEIGHT_POOL_U16 = [0, 1, 2, 3, 21_845, 32_767, 32_768, 65_535]
KAPPA_POOL_U16 = [32_767, 32_768, 21_845, 43_690, 13_107, 1, 65_535]
EQUAL_STAKE_KAPPA_POOL_U16 = [21_845, 43_690, 13_107, 26_214, 39_321, 52_428, 4_369]
BMA_POOL_PPM = [900_000, 975_000, 0, 500_000]
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


def _pick(rng: np.random.Generator, pool: list[int]) -> int:
    return int(pool[int(rng.integers(len(pool)))])


def _stake(rng: np.random.Generator, mode: str) -> int:
    if mode == "equal":
        return _pick(rng, [0, 7, 7, 7])
    if mode == "split":
        return _pick(rng, [0, 32_767, 32_768])
    return _pick(rng, STAKE_POOL_RAO) if rng.random() < 0.7 else int(rng.integers(1, 101))


def _weights_table(entries: list[tuple[int, int, int]]) -> pa.Table:
    columns = list(zip(*entries, strict=True)) if entries else [(), (), ()]
    return pa.table(
        {
            name: pa.array(list(values), pa.int32())
            for name, values in zip(("validator", "miner", "weight_u16"), columns, strict=True)
        }
    )


def _initial_state(rng: np.random.Generator, n_uids: int) -> EpochState:
    permits = rng.random(n_uids) < 0.75
    entries: dict[tuple[int, int], int] = {}
    for _ in range(int(rng.integers(0, 2 * n_uids + 1))):
        key = (int(rng.integers(n_uids)), int(rng.integers(n_uids)))
        entries[key] = (
            _pick(rng, [1, 21_845, 65_535]) if rng.random() < 0.5 else 1 + int(rng.integers(65_535))
        )
    triples = [(i, j, b) for (i, j), b in sorted(entries.items())]
    columns = list(zip(*triples, strict=True)) if triples else [(), (), ()]
    bonds = pa.table(
        {
            name: pa.array(list(values), pa.int32())
            for name, values in zip(("validator", "miner", "bond_u16"), columns, strict=True)
        }
    )
    return EpochState(bonds=bonds, validator_permit=permits)


def _scenario(seed: int, *, yuma3: bool = False) -> Scenario:
    rng = np.random.default_rng(seed)
    stake_mode = ["random", "random", "equal", "split"][int(rng.integers(4))]
    if stake_mode == "equal":
        kappa_u16 = _pick(rng, EQUAL_STAKE_KAPPA_POOL_U16)
    elif stake_mode == "split":
        kappa_u16 = 32_767
    else:
        kappa_u16 = (
            _pick(rng, KAPPA_POOL_U16) if rng.random() < 0.7 else int(rng.integers(1, 65_536))
        )
    params = YumaParams(
        kappa_u16=kappa_u16,
        bonds_moving_average_ppm=_pick(rng, BMA_POOL_PPM)
        if rng.random() < 0.7
        else int(rng.integers(975_001)),
        bonds_penalty_u16=_pick(rng, PENALTY_POOL_U16)
        if rng.random() < 0.7
        else int(rng.integers(65_536)),
        max_validators=int(rng.integers(1, MAX_UIDS + 3)),
        activity_cutoff_blocks=int(rng.integers(1, 41)),
        stake_threshold_rao=_pick(rng, [0, 0, 0, 1, 3, 32_768] if stake_mode == "random" else [0]),
        yuma3=yuma3,
        liquid_alpha=yuma3 and rng.random() < 0.8,
        alpha_low_u16=_pick(rng, [45_875, 6_554, 1_638]),
        alpha_high_u16=_pick(rng, [58_982, 65_535]),
        alpha_sigmoid_steepness=_pick(rng, [1_000, 100, 0, 2_000]),
        commit_reveal=bool(rng.random() < 0.25),
    )
    n_uids = int(rng.integers(1, 11))
    initial_state = _initial_state(rng, n_uids)
    owner_uid = None if rng.random() < 0.5 else int(rng.integers(n_uids))
    tempo = int(rng.integers(1, 21))
    block = int(rng.integers(0, 61))
    last_step = _pick(rng, [0, 0, block // 2, block])
    weights_mode = ["rows"] * 6 + ["scattered", "none"]
    mode = weights_mode[int(rng.integers(len(weights_mode)))]

    stakes: list[int] = []
    rows: dict[int, list[tuple[int, int]]] = {}
    epochs = []
    for epoch in range(N_EPOCHS):
        for uid in range(len(stakes)):
            if rng.random() < 0.25:
                stakes[uid] = _stake(rng, stake_mode)
        stakes.extend(_stake(rng, stake_mode) for _ in range(n_uids - len(stakes)))
        for validator in range(n_uids):
            if epoch == 0 or validator not in rows or rng.random() < 0.5:
                if rng.random() < 0.75:
                    size = min(n_uids + 2, int(rng.integers(1, 5)))
                    miners = rng.choice(n_uids + 2, size=size, replace=False)
                    rows[validator] = [
                        (
                            int(j),
                            _pick(rng, WEIGHT_POOL_U16)
                            if rng.random() < 0.5
                            else int(rng.integers(65_536)),
                        )
                        for j in miners
                    ]
                else:
                    rows[validator] = []
        if mode == "rows":
            entries = [(i, j, w) for i, row in rows.items() for j, w in row]
        elif mode == "scattered":
            scattered = {
                (int(rng.integers(n_uids)), int(rng.integers(n_uids + 2))): int(
                    rng.integers(65_536)
                )
                for _ in range(int(rng.integers(0, 3 * n_uids + 3)))
            }
            entries = [(i, j, w) for (i, j), w in scattered.items()]
        else:
            entries = []
        last_tempo = last_step + 1 if last_step else block - tempo
        specials = [0, block, last_step, last_tempo, last_tempo - 1]
        specials = sorted({b for b in specials if 0 <= b <= block})
        registered = [0 if rng.random() < 0.5 else _pick(rng, specials) for _ in range(n_uids)]
        last_update = [
            block if rng.random() < 0.5 else _pick(rng, [*specials, registered[i]])
            for i in range(n_uids)
        ]
        commit_block = None
        if rng.random() < 0.5:
            commit_block = np.array(
                [_pick(rng, [*specials, NO_COMMIT_BLOCK]) for _ in range(n_uids)], dtype=np.int64
            )
        epochs.append(
            EpochInputs(
                stake_rao=np.array(stakes, dtype=np.int64),
                weights=_weights_table(entries),
                last_update_block=np.array(last_update, dtype=np.int64),
                registered_block=np.array(registered, dtype=np.int64),
                current_block=block,
                owner_uid=owner_uid,
                last_step_block=last_step,
                tempo_blocks=tempo,
                commit_block=commit_block,
            )
        )
        last_step = block
        block += int(rng.integers(1, 2 * tempo + 1))
        n_uids = min(MAX_UIDS, n_uids + _pick(rng, [0, 0, 1, 2]))
    return Scenario(params=params, initial_state=initial_state, epochs=tuple(epochs))


def _dense_bonds(outputs: EpochOutputs) -> np.ndarray:
    dense = np.zeros((outputs.n_uids, outputs.n_uids))
    bonds = outputs.bonds
    validator = bonds.column("validator").to_numpy()
    miner = bonds.column("miner").to_numpy()
    np.add.at(dense, (validator, miner), bonds.column("bond").to_numpy())
    return dense


def _stored(state: EpochState) -> list[tuple[int, int, int]]:
    bonds = state.bonds
    return sorted(
        zip(
            bonds.column("validator").to_pylist(),
            bonds.column("miner").to_pylist(),
            bonds.column("bond_u16").to_pylist(),
            strict=True,
        )
    )


def _assert_same(
    got: tuple[EpochOutputs, EpochState], want: tuple[EpochOutputs, EpochState], label: str
) -> None:
    got_out, got_state = got
    want_out, want_state = want
    for name in FLOAT_VECTORS:
        np.testing.assert_allclose(
            getattr(got_out, name), getattr(want_out, name), rtol=0, atol=ATOL, err_msg=label + name
        )
    for name in BOOL_VECTORS:
        np.testing.assert_array_equal(
            getattr(got_out, name), getattr(want_out, name), err_msg=label + name
        )
    np.testing.assert_allclose(
        _dense_bonds(got_out), _dense_bonds(want_out), rtol=0, atol=ATOL, err_msg=label + "bonds"
    )
    assert _stored(got_state) == _stored(want_state), label + "stored bonds"
    np.testing.assert_array_equal(got_state.validator_permit, want_state.validator_permit)


def _layout_fn(layout: str) -> EpochFn:
    def epoch_fn(
        inputs: EpochInputs, params: YumaParams, state: EpochState
    ) -> tuple[EpochOutputs, EpochState]:
        return numpy_epoch(inputs, params, state, layout="dense" if layout == "dense" else "sparse")

    return epoch_fn


def _run_chain(scenario: Scenario, implementations: dict[str, EpochFn], seed: int) -> None:
    """Run each implementation on its own state; compare every one to the first."""
    names = list(implementations)
    states = dict.fromkeys(names, scenario.initial_state)
    for epoch, inputs in enumerate(scenario.epochs):
        results = {
            name: implementations[name](inputs, scenario.params, states[name]) for name in names
        }
        for name in names[1:]:
            _assert_same(results[name], results[names[0]], f"seed {seed} epoch {epoch} {name}: ")
        states = {name: result[1] for name, result in results.items()}


def _reference_supports_yuma3() -> bool:
    scenario = _scenario(0, yuma3=True)
    try:
        reference_epoch(scenario.epochs[0], scenario.params, scenario.initial_state)
    except NotImplementedError:
        return False
    return True


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_baseline_matches_reference_legacy(layout: str) -> None:
    for seed in range(N_SCENARIOS):
        implementations = {"reference": reference_epoch, layout: _layout_fn(layout)}
        _run_chain(_scenario(seed), implementations, seed)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_baseline_matches_reference_yuma3_liquid_alpha(layout: str) -> None:
    if not _reference_supports_yuma3():
        pytest.skip("reference_epoch does not implement the Yuma3 path yet")
    for seed in range(N_SCENARIOS):
        implementations = {"reference": reference_epoch, layout: _layout_fn(layout)}
        _run_chain(_scenario(seed, yuma3=True), implementations, seed)


def test_yuma3_dense_and_sparse_layouts_agree() -> None:
    for seed in range(N_SCENARIOS):
        implementations = {"dense": _layout_fn("dense"), "sparse": _layout_fn("sparse")}
        _run_chain(_scenario(seed, yuma3=True), implementations, seed)


def test_yuma3_bonds_are_proportions_stored_by_floor() -> None:
    """Yuma3 bonds stay in [0, 1] and are stored as the chain stores them for permitted rows:
    b floored to I32F32 (with 1e-5 quanta of float slack), then ×65535 and floored."""
    for seed in range(40):
        scenario = _scenario(seed, yuma3=True)
        params = replace(scenario.params, liquid_alpha=True)
        state = scenario.initial_state
        for inputs in scenario.epochs:
            outputs, state = numpy_epoch(inputs, params, state, layout="sparse")
            bonds = outputs.bonds.column("bond").to_numpy()
            assert np.all((bonds > 0) & (bonds <= 1.0))
            expected = {
                (v, m): min(65_535, int(np.floor(b * 2**32 + 1e-5)) * 65_535 >> 32)
                for v, m, b in zip(
                    outputs.bonds.column("validator").to_pylist(),
                    outputs.bonds.column("miner").to_pylist(),
                    bonds.tolist(),
                    strict=True,
                )
                if outputs.validator_permit[v]
            }
            expected = {key: value for key, value in expected.items() if value > 0}
            assert {(v, m): b for v, m, b in _stored(state)} == expected


def test_yuma3_liquid_explicit_zero_weight_keeps_bond_decaying() -> None:
    """Spec §4.9 sparse-path quirk: with liquid alpha, a bond whose W_b entry is an explicit zero
    decays as (1 − α)·B_old, while a bond with no W_b entry at all is dropped."""
    n_uids = 4
    inputs = EpochInputs(
        stake_rao=np.array([3_000, 1_000, 0, 0], dtype=np.int64),
        weights=_weights_table([(0, 2, 65_535), (0, 3, 0), (1, 2, 65_535)]),
        last_update_block=np.full(n_uids, 100, dtype=np.int64),
        registered_block=np.zeros(n_uids, dtype=np.int64),
        current_block=100,
        owner_uid=None,
        last_step_block=90,
        tempo_blocks=10,
    )
    bonds = pa.table(
        {
            "validator": pa.array([0, 1], pa.int32()),
            "miner": pa.array([3, 3], pa.int32()),
            "bond_u16": pa.array([30_000, 30_000], pa.int32()),
        }
    )
    state = EpochState(bonds=bonds, validator_permit=np.array([True, True, False, False]))
    params = YumaParams(yuma3=True, liquid_alpha=True, max_validators=2)
    want = reference_epoch(inputs, params, state)
    for layout in ("dense", "sparse"):
        got = _layout_fn(layout)(inputs, params, state)
        _assert_same(got, want, f"{layout}: ")
        stored = {(v, m): b for v, m, b in _stored(got[1])}
        assert 0 < stored[(0, 3)] < 30_000  # explicit zero weight: decayed
        assert (1, 3) not in stored  # no W_b entry: dropped
