"""The chain's integer forms (tasks/consensus/fixed.py) against integers subtensor's tests assert.

Expected integers are copied from ``pallets/subtensor/src/tests/epoch.rs`` (opentensor/subtensor)
or derived by hand from the fixed-point rule in the comments; none comes from the code under test.
"""

from __future__ import annotations

from fractions import Fraction

import duckdb
import numpy as np
import pytest

from taoflow.tasks.consensus.fixed import (
    SQL_U16_OF,
    fixed_share_of_rao,
    fixed_step_margin,
    proportion_to_u16,
)

U16 = 65_535


def _exact_chain_u16(proportion: Fraction) -> int:
    """floor(floor(x·2^32) · 65535 / 2^32) on the exact rational x."""
    return int((int(proportion * 2**32) * U16) >> 32)


def test_exact_multiples_of_one_u16_step_store_one_less_as_on_chain() -> None:
    k = np.arange(1, U16, dtype=np.int64)
    stored = proportion_to_u16(k / U16)
    assert np.array_equal(stored, k - 1)
    assert proportion_to_u16(np.array([0.0, 1.0])).tolist() == [0, U16]


def test_a_float_one_rounded_down_still_stores_u16_max() -> None:
    below_one = np.nextafter(1.0, 0.0)
    assert proportion_to_u16(np.array([below_one, 0.9 + 0.1])).tolist() == [U16, U16]


@pytest.mark.parametrize(
    ("proportion", "expected"),
    [
        # test_512_graph: D = floor(1/64 · 65535) = 1023; R = C = I = floor(1/448 · 65535) = 146
        (Fraction(1, 64), 1_023),
        (Fraction(1, 448), 146),
        # test_4096_graph (kept in the file as a comment): D = 255, C = I = 17
        (Fraction(1, 256), 255),
        (Fraction(1, 3840), 17),
        # test_bonds-style column max-upscale: 1/4, 2/4, 3/4 of the largest bond
        (Fraction(1, 4), 16_383),
        (Fraction(1, 2), 32_767),
        (Fraction(3, 4), 49_151),
        # exactly 1/3 and 2/3 of 65535: the chain's floor lands one below
        (Fraction(1, 3), 21_844),
        (Fraction(2, 3), 43_689),
    ],
)
def test_u16_matches_the_chains_integers(proportion: Fraction, expected: int) -> None:
    assert _exact_chain_u16(proportion) == expected  # the hand rule itself
    assert proportion_to_u16(np.array([float(proportion)])).tolist() == [expected]


def test_sql_expression_stores_the_same_integers_as_numpy() -> None:
    rng = np.random.default_rng(15)
    values = np.concatenate(
        [rng.random(5_000), np.arange(0, U16 + 1) / U16, [0.0, 1.0, np.nextafter(1.0, 0.0)]]
    )
    expression = SQL_U16_OF.format(x="x")
    with duckdb.connect() as connection:
        connection.register("xs", {"x": values})
        stored = connection.execute(f"SELECT {expression} AS u FROM xs").fetchnumpy()["u"]
    assert np.array_equal(stored.astype(np.int64), proportion_to_u16(values))


def test_rao_of_a_share_floors_like_the_chain() -> None:
    # test_10_graph: ten equal stakes, no weights → emission falls back to stake: 99,999,999
    # each of a 10^9 rao epoch (0.1 floored to I32F32 is just below 0.1).
    assert fixed_share_of_rao(np.full(10, 0.1), amount_rao=10**9).tolist() == [99_999_999] * 10
    # test_512_graph: validators get 0.5/64 of 10^9 = 7,812,500, servers floor(0.5/448 · 10^9).
    shares = np.array([0.5 / 64, 0.5 / 448])
    assert fixed_share_of_rao(shares, amount_rao=10**9).tolist() == [7_812_500, 1_116_071]
    # amounts beyond int64 products stay exact
    assert fixed_share_of_rao(np.array([1.0]), amount_rao=2**62).tolist() == [2**62]
    with pytest.raises(ValueError, match="amount_rao must be >= 0"):
        fixed_share_of_rao(np.array([0.5]), amount_rao=-1)


def test_step_margin_is_small_only_next_to_an_i32f32_step() -> None:
    on_step = np.array([0.5, 0.25, 1.0])
    off_step = np.array([1 / 3, 0.1])
    assert np.all(fixed_step_margin(on_step) < 1e-4)
    assert np.all(fixed_step_margin(off_step) > 1e-4)
