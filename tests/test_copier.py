"""Copier economics (tasks/audit/copier.py): 7 equal validators, the best miner moving every
epoch, one validator weighting last epoch's consensus, through the production DuckDB epoch."""

from __future__ import annotations

import pytest

from taoflow.tasks.audit.copier import (
    SETTINGS,
    CopierScenario,
    economics_lines,
    max_upscaled_u16,
    rotated_qualities,
    run_copier_scenario,
)
from taoflow.tasks.consensus.params import YumaParams


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
