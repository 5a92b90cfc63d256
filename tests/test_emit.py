"""Exact epoch payouts: owner/miner/validator pools, validator take and delegators."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taoflow.ledger.emission import PPM
from taoflow.tasks.emit import compute_payouts, split_dividend

SPLIT = {"owner": 180_000, "miners": 410_000, "validators": 410_000}


def test_delegator_payout_hand_worked() -> None:
    # Dividend 1,000 rao, take 18 % → 180 to the validator; 820 shared by stake 300 : 100
    # → 615 to the validator's own stake, 205 to the delegator.
    split = split_dividend(1_000, take_ppm=180_000, stakers=[("delegator", 100), ("val", 300)])
    assert split.take_rao == 180
    assert dict(split.stakers_rao) == {"val": 615, "delegator": 205}


def test_remainder_goes_to_the_largest_fractional_part() -> None:
    # 10 rao, no take, stakes 1:1:1 → 4/3/3, the spare rao to the first coldkey in order.
    split = split_dividend(10, take_ppm=0, stakers=[("a", 1), ("b", 1), ("c", 1)])
    assert split.stakers_rao == (("a", 4), ("b", 3), ("c", 3))


def test_no_stakers_means_the_validator_keeps_it_all() -> None:
    assert split_dividend(77, take_ppm=90_000, stakers=[]).take_rao == 77


@settings(max_examples=500, deadline=None)
@given(
    dividend=st.integers(0, 10**15),
    take=st.integers(0, PPM),
    stakes=st.lists(st.integers(0, 10**13), max_size=20),
)
def test_split_never_creates_or_loses_a_rao(dividend: int, take: int, stakes: list[int]) -> None:
    stakers = [(f"c{i:02d}", s) for i, s in enumerate(stakes)]
    split = split_dividend(dividend, take_ppm=take, stakers=stakers)
    assert split.take_rao + sum(a for _, a in split.stakers_rao) == dividend
    assert all(a >= 0 for _, a in split.stakers_rao)
    if any(stakes):
        assert split.take_rao == dividend * take // PPM


def test_take_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        split_dividend(1, take_ppm=PPM + 1, stakers=[("a", 1)])


@settings(max_examples=300, deadline=None)
@given(
    emission=st.integers(0, 10**13),
    incentive=st.lists(st.floats(0, 1), min_size=1, max_size=16),
    dividends=st.lists(st.floats(0, 1), min_size=1, max_size=16),
)
def test_payouts_sum_to_the_emission_or_record_unissued(
    emission: int, incentive: list[float], dividends: list[float]
) -> None:
    n = min(len(incentive), len(dividends))
    payouts = compute_payouts(
        emission_rao=emission,
        incentive=incentive[:n],
        dividends=dividends[:n],
        validator_share=dividends[:n],
        split_ppm=SPLIT,
    )
    assert payouts.total_rao + payouts.unissued_rao == emission


def test_all_zero_incentive_sends_the_miner_pool_to_validators() -> None:
    payouts = compute_payouts(
        emission_rao=1000,
        incentive=[0.0, 0.0],
        dividends=[0.0, 0.0],
        validator_share=[0.75, 0.25],
        split_ppm=SPLIT,
    )
    assert payouts.incentive_rao == (0, 0)
    assert payouts.owner_rao == 180
    assert payouts.dividends_rao == (615, 205)
