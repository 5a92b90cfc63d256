"""Exact integer emission math: splits never create or lose a rao; the schedule halves exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taoflow.ledger.emission import (
    BLOCK_REWARD_RAO,
    SUPPLY_CAP_RAO,
    block_reward_rao,
    emission_for_blocks,
    halving_threshold_rao,
    quantise_shares,
    split_by_weights,
    split_subnet_emission,
)
from taoflow.ledger.schema import RAO_PER_TAO


@settings(max_examples=500, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=10**18),
    weights=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=40),
)
def test_split_is_exact_and_proportional(total: int, weights: list[int]) -> None:
    parts = split_by_weights(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact_floor = total * weight // sum(weights)
        assert exact_floor <= part <= exact_floor + 1


def test_split_remainder_goes_to_largest_remainder_then_lower_index() -> None:
    # 10 over [1,1,1]: floors 3,3,3; remainders tie → the single leftover rao goes to index 0.
    assert split_by_weights(10, [1, 1, 1]) == [4, 3, 3]
    # 10 over [1,2]: floors 3,6; remainders 1/3 vs 2/3 → index 1 gets it.
    assert split_by_weights(10, [1, 2]) == [3, 7]


def test_split_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError):
        split_by_weights(-1, [1])
    with pytest.raises(ValueError):
        split_by_weights(1, [1, -1])


def test_subnet_split_default_is_18_41_41() -> None:
    split = split_subnet_emission(100 * RAO_PER_TAO)
    assert (split.owner_rao, split.miners_rao, split.validators_rao) == (
        18 * RAO_PER_TAO,
        41 * RAO_PER_TAO,
        41 * RAO_PER_TAO,
    )
    with pytest.raises(ValueError):
        split_subnet_emission(1, owner_ppm=1, miners_ppm=1, validators_ppm=1)


@given(st.integers(min_value=0, max_value=10**15))
def test_subnet_split_sums_exactly(total: int) -> None:
    assert split_subnet_emission(total).total_rao == total


def test_quantise_shares_handles_nan_and_negative() -> None:
    assert quantise_shares([float("nan"), -0.5, 0.5, 2.0]) == [0, 0, 2**31, 2**32]


def test_block_reward_halves_at_thresholds() -> None:
    first = halving_threshold_rao(0)
    assert first == 10_500_000 * RAO_PER_TAO
    assert halving_threshold_rao(1) == 15_750_000 * RAO_PER_TAO
    assert block_reward_rao(first - 1) == BLOCK_REWARD_RAO
    assert block_reward_rao(first) == BLOCK_REWARD_RAO // 2
    assert block_reward_rao(SUPPLY_CAP_RAO) == 0


def test_halving_crossed_inside_one_epoch_is_exact() -> None:
    # Half a TAO below the first threshold: block 1 pays 1 τ (and crosses), the next 3 pay 0.5 τ.
    start = halving_threshold_rao(0) - RAO_PER_TAO // 2
    assert emission_for_blocks(issued_rao=start, blocks=4) == RAO_PER_TAO + 3 * RAO_PER_TAO // 2


@settings(max_examples=200, deadline=None)
@given(
    issued=st.integers(min_value=0, max_value=SUPPLY_CAP_RAO),
    blocks=st.integers(min_value=0, max_value=500),
)
def test_schedule_matches_block_by_block_walk(issued: int, blocks: int) -> None:
    walked, current = 0, issued
    for _ in range(blocks):
        reward = block_reward_rao(current)
        walked += reward
        current += reward
    assert emission_for_blocks(issued_rao=issued, blocks=blocks) == walked
    assert issued + walked <= SUPPLY_CAP_RAO


def test_subnets_share_block_rewards_exactly() -> None:
    from taoflow.ledger.config import SubnetConfig
    from taoflow.ledger.state import LedgerState, Subnet

    state = LedgerState()
    for name, share in (("a", 1), ("b", 2)):
        state.subnets[name] = Subnet(
            name=name,
            owner_coldkey="",
            owner_hotkey="",
            created_block=0,
            config=SubnetConfig.from_payload({"emission_share": share, "tempo_blocks": 10}),
        )
    total = emission_for_blocks(issued_rao=0, blocks=10)
    a = state.scheduled_emission_rao("a")
    b = state.scheduled_emission_rao("b")
    assert a + b == total
    assert (a, b) == (total // 3, total - total // 3)  # the spare rao: largest remainder
