"""Copier economics (tasks/audit/copier.py): 7 equal validators, the best miner moving every
epoch, one validator weighting last epoch's consensus, through the production DuckDB epoch.

Then the copier in a subnet's own history (``copier_in_history``, ``whatif --copier``): one
small simulated subnet shared by the module whose miners' scores rotate by one position every
epoch (the best miner moves, as in the scenario), recorded with the new subnets' default Yuma3 +
liquid alpha; the hypothetical copier must earn less there than under the legacy bonds of the
same history, the numbers must repeat exactly, and the ledger must be left as it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from cli_helpers import cli

from taoflow.ledger.store import Ledger
from taoflow.settings import Settings
from taoflow.tasks import simulate as simulation
from taoflow.tasks.audit.copier import (
    SETTINGS,
    CopierComparison,
    CopierEpoch,
    CopierScenario,
    HistoryCopier,
    _state_for,
    copier_comparison,
    copier_in_history,
    economics_lines,
    max_upscaled_u16,
    rotated_qualities,
    run_copier_scenario,
)
from taoflow.tasks.audit.history import stored_epochs
from taoflow.tasks.audit.whatif import WhatIfParams, parse_overrides
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.types import BONDS_U16_SCHEMA, EpochState
from taoflow.tasks.gather import EpochContext


def test_the_best_miner_moves_every_epoch() -> None:
    assert rotated_qualities((1.0, 0.5, 0.1), epoch=0) == [1.0, 0.5, 0.1]
    assert rotated_qualities((1.0, 0.5, 0.1), epoch=1) == [0.1, 1.0, 0.5]
    assert rotated_qualities((1.0, 0.5, 0.1), epoch=2) == [0.5, 0.1, 1.0]
    assert rotated_qualities((1.0, 0.5, 0.1), epoch=3) == [1.0, 0.5, 0.1]
    assert max_upscaled_u16([0.5, 0.25, 0.0]) == [65_535, 32_767, 0]
    assert max_upscaled_u16([0.0, 0.0]) == [0, 0]


@pytest.mark.parametrize(
    ("setting", "ratio"),
    [("legacy bonds (chain default)", 0.73), ("yuma3 + liquid alpha", 0.46)],
)
def test_copier_dividends_relative_to_an_honest_validator(setting: str, ratio: float) -> None:
    result = run_copier_scenario(CopierScenario(params=SETTINGS[setting]))
    assert len(result.copier_dividends) == 20
    # Epoch 0: nothing to copy yet, so the copier weights like everyone and earns the same.
    assert result.copier_dividends[0] == pytest.approx(result.honest_dividends[0], abs=1e-12)
    assert round(result.ratio, 2) == ratio
    # Every later epoch the copier is one epoch behind the best miner and earns less.
    assert all(
        c < h for c, h in zip(result.copier_dividends[1:], result.honest_dividends[1:], strict=True)
    )
    line = economics_lines({setting: result})[0]
    assert f"copier earns {ratio:.2f}×" in line


def test_liquid_alpha_bonds_settle_on_a_constant_copier_share() -> None:
    # Yuma3 + liquid alpha: the bonds follow the new best miner within an epoch, so from epoch 5
    # on the copier's share of one epoch's dividends is the same every epoch.
    result = run_copier_scenario(
        CopierScenario(params=YumaParams(yuma3=True, liquid_alpha=True), epochs=8)
    )
    shares = [c / h for c, h in zip(result.copier_dividends, result.honest_dividends, strict=True)]
    assert [round(s, 3) for s in shares[5:]] == [0.429, 0.429, 0.429]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"validators": 1}, "at least one honest validator"),
        ({"epochs": 0}, "epochs must be between 1 and"),
        ({"qualities": (1.0,)}, "qualities need at least two"),
        ({"qualities": (0.0, 0.0)}, "qualities need at least two"),
    ],
)
def test_a_scenario_that_cannot_run_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CopierScenario(**changes)  # type: ignore[arg-type]


# ---- the copier in a subnet's own history ----------------------------------------------------

HISTORY_SUBNET = "cp"
HISTORY_EPOCHS = 8
HISTORY_MINERS = 16
HISTORY_VALIDATORS = 5
LAST = HISTORY_EPOCHS - 1
LEGACY = "yuma3=false"
ScoresFn = Callable[..., dict[int, dict[int, float]]]


def _rotating(original: ScoresFn) -> ScoresFn:
    """``original``'s scores with each validator's row rotated by the epoch: the best miner
    moves one position every epoch."""

    def scores(ctx: EpochContext, *, seed: int) -> dict[int, dict[int, float]]:
        out: dict[int, dict[int, float]] = {}
        for validator, row in original(ctx, seed=seed).items():
            uids = sorted(row)
            values = rotated_qualities([row[uid] for uid in uids], epoch=ctx.epoch)
            out[validator] = dict(zip(uids, values, strict=True))
        return out

    return scores


@pytest.fixture(scope="module")
def history_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("copier") / "home"
    spec = simulation.SimulationSpec(
        subnet=HISTORY_SUBNET,
        epochs=HISTORY_EPOCHS,
        miners=HISTORY_MINERS,
        validators=HISTORY_VALIDATORS,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulation, "synthetic_scores", _rotating(simulation.synthetic_scores))
        simulation.simulate(Settings.load(root).ledger_dir, spec)
    yield root


@pytest.fixture(scope="module")
def history_ledger(history_home: Path) -> Ledger:
    return Ledger.open(Settings.load(history_home).ledger_dir)


@pytest.fixture(scope="module")
def legacy_comparison(history_ledger: Ledger) -> CopierComparison:
    return copier_comparison(
        history_ledger,
        subnet=HISTORY_SUBNET,
        first=0,
        last=LAST,
        overrides=parse_overrides(LEGACY),
    )


def test_copying_earns_less_under_yuma3_liquid_alpha_than_under_legacy_bonds(
    history_ledger: Ledger, legacy_comparison: CopierComparison
) -> None:
    stored = list(stored_epochs(history_ledger, subnet=HISTORY_SUBNET, first=0, last=LAST))
    recorded = dict(stored[0].ctx.config.yuma)
    assert recorded["yuma3"] is True and recorded["liquid_alpha"] is True
    yuma3, legacy = legacy_comparison.stored, legacy_comparison.whatif
    assert legacy is not None
    assert yuma3.ratio is not None and legacy.ratio is not None
    assert 0.0 < yuma3.ratio < legacy.ratio < 1.0
    for run in (yuma3, legacy):
        assert [e.epoch for e in run.epochs] == list(range(HISTORY_EPOCHS))
        assert [e.copier_uid for e in run.epochs] == [s.ctx.n for s in stored]
        assert all(e.copier_permit for e in run.epochs)
        # Epoch 0 copies nothing (no epoch before it) and starts without bonds: it earns 0.
        assert run.epochs[0].copier_dividends == 0.0
        assert run.copier_rao == sum(e.copier_rao for e in run.epochs) > 0


def test_the_copier_stakes_the_median_of_the_permitted_validators(
    history_ledger: Ledger, legacy_comparison: CopierComparison
) -> None:
    stored = stored_epochs(history_ledger, subnet=HISTORY_SUBNET, first=0, last=LAST)
    for epoch, copier in zip(stored, legacy_comparison.stored.epochs, strict=True):
        uids = epoch.records["uids"]
        stake = np.asarray(uids.column("stake_rao").to_numpy())
        permit = np.asarray(uids.column("permit").to_numpy(zero_copy_only=False), dtype=bool)
        permitted = sorted(int(s) for s in stake[permit])
        assert copier.copier_stake_rao == permitted[(len(permitted) - 1) // 2]


def test_a_later_range_starts_from_the_stored_consensus_before_it(
    history_ledger: Ledger, legacy_comparison: CopierComparison
) -> None:
    later = copier_in_history(
        history_ledger, subnet=HISTORY_SUBNET, first=3, last=LAST, overrides=WhatIfParams()
    )
    assert [e.epoch for e in later.epochs] == list(range(3, HISTORY_EPOCHS))
    # First epoch of the range: weights (epoch 2's stored consensus) but no bonds yet → 0.
    assert later.epochs[0].copier_dividends == 0.0
    assert later.epochs[1].copier_dividends > 0.0
    assert later.ratio != legacy_comparison.stored.ratio


def test_the_copier_in_history_is_deterministic(
    history_ledger: Ledger, legacy_comparison: CopierComparison
) -> None:
    again = copier_comparison(
        history_ledger,
        subnet=HISTORY_SUBNET,
        first=0,
        last=LAST,
        overrides=parse_overrides(LEGACY),
    )
    assert again.to_dict() == legacy_comparison.to_dict()
    assert again.line() == legacy_comparison.line()


def _ledger_files(home: Path) -> dict[str, int]:
    ledger_dir = Settings.load(home).ledger_dir
    return {str(p.relative_to(ledger_dir)): p.stat().st_size for p in ledger_dir.rglob("*")}


def test_cli_prints_the_copier_line_and_json_and_leaves_the_ledger_alone(
    history_home: Path, legacy_comparison: CopierComparison, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_dir = Settings.load(history_home).ledger_dir
    head, files = Ledger.open(ledger_dir).head_hash(), _ledger_files(history_home)
    base = ("whatif", "--subnet", HISTORY_SUBNET, "--epochs", f"0..{LAST}", "--set", LEGACY)
    ran = cli(capsys, history_home, *base, "--copier")
    assert ran.code == 0, ran.err
    legacy = legacy_comparison.whatif
    assert legacy is not None and legacy.ratio is not None
    assert legacy_comparison.stored.ratio is not None
    line = (
        f"a validator copying last epoch's consensus would have earned {legacy.ratio:.2f}× an "
        f"honest validator's dividends per staked τ over epochs 0..{LAST} (under these "
        f"parameters; {legacy_comparison.stored.ratio:.2f}× with the subnet's stored parameters)"
    )
    assert line in ran.out.splitlines()
    assert legacy_comparison.detail() in ran.out.splitlines()
    assert legacy_comparison.detail().startswith(
        "(the copier: the median stake of the epoch's permitted validators, bonds starting empty"
    )
    as_json = cli(capsys, history_home, *base, "--copier", "--json")
    assert as_json.code == 0, as_json.err
    copier = json.loads(as_json.out)["copier"]
    assert copier["ratio_stored"] == legacy_comparison.stored.ratio
    assert copier["ratio_whatif"] == legacy.ratio
    assert copier["line"] == line
    assert len(copier["whatif"]["per_epoch"]) == HISTORY_EPOCHS
    plain = cli(capsys, history_home, "whatif", "--subnet", HISTORY_SUBNET, "--epochs", "2..4")
    assert plain.code == 0 and "copying" not in plain.out
    assert Ledger.open(ledger_dir).head_hash() == head
    assert _ledger_files(history_home) == files


def _epoch(**changes: float | int) -> CopierEpoch:
    fields: dict[str, float | int] = {
        "epoch": 0,
        "copier_uid": 3,
        "copier_stake_rao": 1_000,
        "copier_dividends": 0.1,
        "honest_stake_rao": 4_000,
        "honest_dividends": 0.8,
        "validators_pool_rao": 1_000_000,
    }
    fields.update(changes)
    return CopierEpoch(copier_permit=True, **fields)  # type: ignore[arg-type]


def test_ratios_are_dividends_per_staked_rao_weighted_by_the_pool() -> None:
    one = _epoch()
    assert one.ratio == pytest.approx(0.5)  # (0.1 / 1000) / (0.8 / 4000)
    assert one.copier_rao == 100_000
    assert _epoch(honest_dividends=0.0).ratio is None
    two = _epoch(epoch=1, copier_dividends=0.2, validators_pool_rao=3_000_000)
    history = HistoryCopier(
        subnet="s", first=0, last=1, overrides=WhatIfParams(), epochs=(one, two)
    )
    # pools 1:3, copier rates 1e-4 and 2e-4, honest 2e-4 both → (1 + 6) / (2 + 6)
    assert history.ratio == pytest.approx(7 / 8)
    assert history.copier_rao == 100_000 + 600_000
    comparison = CopierComparison(stored=history)
    assert comparison.line().endswith(
        "0.88× an honest validator's dividends per staked τ over "
        "epochs 0..1 (the subnet's stored parameters)"
    )
    assert comparison.metrics() == {
        "copier/ratio_stored": history.ratio,
        "copier/ratio_whatif": history.ratio,
    }


def test_the_copier_row_moves_when_the_uid_count_grows() -> None:
    bonds = pa.table(
        {"validator": [0, 3, 3], "miner": [1, 1, 2], "bond_u16": [10, 20, 30]},
        schema=BONDS_U16_SCHEMA,
    )
    state = EpochState(bonds=bonds, validator_permit=np.array([True, False, False, True]))
    moved = _state_for(state, copier_from=3, copier_to=5)
    assert moved.bonds.to_pylist() == [
        {"validator": 0, "miner": 1, "bond_u16": 10},
        {"validator": 5, "miner": 1, "bond_u16": 20},
        {"validator": 5, "miner": 2, "bond_u16": 30},
    ]
    assert moved.validator_permit.tolist() == [True, False, False, False, False, True]
    assert _state_for(state, copier_from=3, copier_to=3) is state
    with pytest.raises(ValueError, match="uid count shrank from 3 to 2"):
        _state_for(state, copier_from=3, copier_to=2)
