"""Hosted validators' SN9-style weights: pairwise wins with a decaying ε for earlier models."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taoflow.tasks.weights import (
    U16_MAX,
    InvalidValidatorPolicy,
    ValidatorPolicy,
    epsilon_at,
    scores_to_weights,
    win_rates,
)

POLICY = ValidatorPolicy(temperature=0.1, epsilon=0.01, epsilon_decay_blocks=1000)


def test_better_model_wins_and_gets_the_top_weight() -> None:
    scores = {3: 0.9, 5: 0.8, 7: 0.5}
    blocks = {3: 100, 5: 100, 7: 100}
    rates = win_rates(scores, commit_blocks=blocks, current_block=100, policy=POLICY)
    assert rates == {3: 1.0, 5: 0.5, 7: 0.0}
    weights = scores_to_weights(scores, commit_blocks=blocks, current_block=100, policy=POLICY)
    assert weights[3] == U16_MAX
    # softmax of win rates / T: exp(-0.5/0.1) and exp(-1/0.1) of the best
    assert weights[5] == int(2.718281828459045**-5 * U16_MAX)
    assert weights[7] == int(2.718281828459045**-10 * U16_MAX)


def test_copier_with_the_same_score_loses_to_the_earlier_model() -> None:
    scores = {1: 0.9, 2: 0.9}
    blocks = {1: 100, 2: 500}
    rates = win_rates(scores, commit_blocks=blocks, current_block=600, policy=POLICY)
    assert rates == {1: 1.0, 2: 0.0}


def test_later_model_must_beat_the_epsilon_advantage() -> None:
    # Earlier loss 0.1 × (1 − 0.01) = 0.099: a later loss of 0.0995 does not beat it ...
    close = win_rates(
        {1: 0.9, 2: 0.9005},
        commit_blocks={1: 0, 2: 10},
        current_block=10,
        policy=ValidatorPolicy(temperature=0.1, epsilon=0.01, epsilon_decay_blocks=10**9),
    )
    assert close == {1: 1.0, 2: 0.0}
    # ... but a clearly better later model does.
    better = win_rates(
        {1: 0.9, 2: 0.95}, commit_blocks={1: 0, 2: 10}, current_block=10, policy=POLICY
    )
    assert better == {1: 0.0, 2: 1.0}


def test_epsilon_decays_linearly_to_zero() -> None:
    assert epsilon_at(POLICY, age_blocks=0) == pytest.approx(0.01)
    assert epsilon_at(POLICY, age_blocks=500) == pytest.approx(0.005)
    assert epsilon_at(POLICY, age_blocks=5000) == 0.0


def test_policy_validation_and_layering() -> None:
    with pytest.raises(InvalidValidatorPolicy):
        ValidatorPolicy(temperature=0.0)
    with pytest.raises(InvalidValidatorPolicy):
        ValidatorPolicy.from_settings({"temperature": 0.1}, {"bogus": 1})
    layered = ValidatorPolicy.from_settings({"temperature": 0.1}, {"temperature": 0.3})
    assert layered.temperature == 0.3


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 30),
        st.tuples(st.floats(0, 1), st.integers(0, 2000)),
        min_size=1,
        max_size=12,
    )
)
def test_weights_are_u16_monotone_in_win_rate(entries: dict[int, tuple[float, int]]) -> None:
    scores = {uid: s for uid, (s, _) in entries.items()}
    blocks = {uid: b for uid, (_, b) in entries.items()}
    weights = scores_to_weights(scores, commit_blocks=blocks, current_block=2000, policy=POLICY)
    rates = win_rates(scores, commit_blocks=blocks, current_block=2000, policy=POLICY)
    assert set(weights) == set(scores)
    assert max(weights.values()) == U16_MAX
    assert all(0 <= w <= U16_MAX for w in weights.values())
    for a in scores:
        for b in scores:
            if rates[a] > rates[b]:
                assert weights[a] >= weights[b]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 40),
        st.tuples(
            st.sampled_from([0.0, 0.5, 0.9, 0.9005, 1.0]) | st.floats(0, 1), st.integers(0, 3000)
        ),
        min_size=2,
        max_size=15,
    )
)
def test_vectorised_win_rates_equal_the_pairwise_definition(
    entries: dict[int, tuple[float, int]],
) -> None:
    from taoflow.tasks.weights import wins

    scores = {uid: s for uid, (s, _) in entries.items()}
    blocks = {uid: b for uid, (_, b) in entries.items()}
    rates = win_rates(scores, commit_blocks=blocks, current_block=3000, policy=POLICY)
    for a in scores:
        expected = sum(
            wins(
                uid_a=a,
                uid_b=b,
                scores=scores,
                commit_blocks=blocks,
                current_block=3000,
                policy=POLICY,
            )
            for b in scores
            if b != a
        ) / (len(scores) - 1)
        assert rates[a] == expected
