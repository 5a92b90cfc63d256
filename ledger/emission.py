"""Emission math in exact integer rao: the block-reward schedule and the exact splits.

Invariants:
- Every function returns integer rao; no float ever touches an amount.
- ``split_by_weights(total, weights)`` returns amounts that sum to exactly ``total`` (when any
  weight is positive): each part gets ``floor(total · w_i / Σw)`` and the remainder goes one rao
  at a time by largest fractional remainder, ties to the lower index (uid).
- The schedule never issues past ``SUPPLY_CAP_RAO``; the block reward halves each time the total
  issued crosses the next threshold (10.5M, 15.75M, 18.375M, … TAO), exactly at the crossing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from taoflow.ledger.schema import RAO_PER_TAO

SUPPLY_CAP_RAO = 21_000_000 * RAO_PER_TAO
BLOCK_REWARD_RAO = 1 * RAO_PER_TAO
HALVINGS_MAX = 64
SHARE_QUANTUM = 2**32
"""Float shares (consensus outputs) are quantised to multiples of 1/SHARE_QUANTUM before money."""
PPM = 1_000_000


def halving_threshold_rao(halvings: int) -> int:
    """Total issuance at which the reward halves for the ``halvings + 1``-th time."""
    # 21M · (1 − 2^-(k+1)): 10.5M, 15.75M, 18.375M, ...
    return SUPPLY_CAP_RAO - (SUPPLY_CAP_RAO >> (halvings + 1))


def block_reward_rao(issued_rao: int) -> int:
    """The reward of the next block given the total issued so far."""
    if issued_rao >= SUPPLY_CAP_RAO:
        return 0
    halvings = 0
    while halvings < HALVINGS_MAX and issued_rao >= halving_threshold_rao(halvings):
        halvings += 1
    return min(BLOCK_REWARD_RAO >> halvings, SUPPLY_CAP_RAO - issued_rao)


def emission_for_blocks(*, issued_rao: int, blocks: int) -> int:
    """Total reward of ``blocks`` consecutive blocks starting at ``issued_rao`` issued.

    Walks the schedule one reward level at a time (at most ``HALVINGS_MAX`` levels), so a
    halving or the cap crossed in the middle of the span is exact.
    """
    if blocks < 0:
        raise ValueError(f"blocks must be ≥ 0, got {blocks}")
    total = 0
    issued = issued_rao
    left = blocks
    for _ in range(HALVINGS_MAX + 2):
        reward = block_reward_rao(issued)
        if left == 0 or reward == 0:
            break
        halvings = 0
        while halvings < HALVINGS_MAX and issued >= halving_threshold_rao(halvings):
            halvings += 1
        ceiling = min(halving_threshold_rao(halvings), SUPPLY_CAP_RAO)
        # Blocks at this reward level until issuance reaches the ceiling (the crossing block
        # still pays the old reward, as on chain).
        blocks_at_level = max(1, -(-(ceiling - issued) // reward))
        n = min(left, blocks_at_level)
        paid = min(n * reward, SUPPLY_CAP_RAO - issued)
        total += paid
        issued += paid
        left -= n
    return total


def quantise_shares(shares: Sequence[float]) -> list[int]:
    """Float shares → non-negative integers (units of 1/SHARE_QUANTUM), deterministically."""
    out: list[int] = []
    for share in shares:
        if math.isnan(share) or share < 0:
            out.append(0)
        else:
            out.append(round(min(share, 1.0) * SHARE_QUANTUM))
    return out


def split_by_weights(total_rao: int, weights: Sequence[int]) -> list[int]:
    """Split ``total_rao`` by integer ``weights``, exactly (largest remainder, ties → lower index).

    Returns all zeros if every weight is zero (the caller decides what happens to the amount).
    """
    if total_rao < 0:
        raise ValueError(f"total_rao must be ≥ 0, got {total_rao}")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be ≥ 0")
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [0] * len(weights)
    parts = [total_rao * w // weight_sum for w in weights]
    remainders = [total_rao * w % weight_sum for w in weights]
    left = total_rao - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        parts[i] += 1
    if sum(parts) != total_rao:
        raise ArithmeticError("exact split lost a rao")  # unreachable: guards the invariant
    return parts


@dataclass(frozen=True)
class SubnetSplit:
    """Per-epoch emission of one subnet in rao: owner cut, miner pool, validator pool."""

    owner_rao: int
    miners_rao: int
    validators_rao: int

    @property
    def total_rao(self) -> int:
        return self.owner_rao + self.miners_rao + self.validators_rao


def split_subnet_emission(
    total_rao: int,
    *,
    owner_ppm: int = 180_000,
    miners_ppm: int = 410_000,
    validators_ppm: int = 410_000,
) -> SubnetSplit:
    """Split an epoch's emission between owner, miners and validators by parts per million."""
    if owner_ppm + miners_ppm + validators_ppm != PPM:
        raise ValueError("owner, miner and validator shares must add up to 1,000,000 ppm")
    owner, miners, validators = split_by_weights(total_rao, [owner_ppm, miners_ppm, validators_ppm])
    return SubnetSplit(owner_rao=owner, miners_rao=miners, validators_rao=validators)
