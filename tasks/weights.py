"""Hosted validators: turn evaluation scores into u16 weights, the SN9 way.

Pure. For every pair of scored models (a, b), a *wins* if its loss (1 − score) is lower, where the
earlier submission's loss is multiplied by (1 − ε) — an advantage that decays linearly to 0 over
``epsilon_decay_blocks`` of the earlier model's age — so copying a model and resubmitting it later
never pays. Exact ties go to the earlier commit, then the lower uid. A model's win rate is its
wins over the other models; weights are the softmax of win rate / temperature, max-upscaled to
u16.

Invariants: weights are integers in [0, 65535]; the best model of a non-empty row gets 65535;
a uid with no score gets no entry; a rejected uid (failed evaluation) gets exactly 0 and takes
no part in the pairwise wins; a higher win rate never gets a lower weight; the result does
not depend on the iteration order of the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

U16_MAX = 65535
TEMPERATURE_MIN = 1e-6
EPSILON_MAX = 0.5


class InvalidValidatorPolicy(ValueError):
    """A hosted validator's settings are out of range."""


@dataclass(frozen=True)
class ValidatorPolicy:
    """How a hosted validator turns scores into weights."""

    temperature: float = 0.05
    epsilon: float = 0.005
    epsilon_decay_blocks: int = 7_200

    def __post_init__(self) -> None:
        if not self.temperature >= TEMPERATURE_MIN:
            raise InvalidValidatorPolicy(f"temperature must be ≥ {TEMPERATURE_MIN}")
        if not 0.0 <= self.epsilon <= EPSILON_MAX:
            raise InvalidValidatorPolicy(f"epsilon must be in [0, {EPSILON_MAX}]")
        if self.epsilon_decay_blocks < 1:
            raise InvalidValidatorPolicy("epsilon_decay_blocks must be ≥ 1")

    @classmethod
    def from_settings(cls, *layers: Mapping[str, Any]) -> ValidatorPolicy:
        """Later layers override earlier ones (subnet default, then the validator's own)."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        known = {"temperature", "epsilon", "epsilon_decay_blocks"}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise InvalidValidatorPolicy(f"unknown validator setting(s) {unknown}")
        return cls(**merged)


def epsilon_at(policy: ValidatorPolicy, *, age_blocks: int) -> float:
    """The earlier model's advantage after ``age_blocks`` (linear decay to 0)."""
    remaining = max(0.0, 1.0 - max(0, age_blocks) / policy.epsilon_decay_blocks)
    return policy.epsilon * remaining


def wins(
    *,
    uid_a: int,
    uid_b: int,
    scores: Mapping[int, float],
    commit_blocks: Mapping[int, int],
    current_block: int,
    policy: ValidatorPolicy,
) -> bool:
    """Whether model ``uid_a`` beats ``uid_b``."""
    loss_a, loss_b = 1.0 - _clean(scores[uid_a]), 1.0 - _clean(scores[uid_b])
    block_a, block_b = commit_blocks[uid_a], commit_blocks[uid_b]
    if block_a < block_b:
        loss_a *= 1.0 - epsilon_at(policy, age_blocks=current_block - block_a)
    elif block_b < block_a:
        loss_b *= 1.0 - epsilon_at(policy, age_blocks=current_block - block_b)
    if loss_a != loss_b:
        return loss_a < loss_b
    return (block_a, uid_a) < (block_b, uid_b)


def win_rates(
    scores: Mapping[int, float],
    *,
    commit_blocks: Mapping[int, int],
    current_block: int,
    policy: ValidatorPolicy,
) -> dict[int, float]:
    """Each model's share of pairwise wins (1.0 for a lone model).

    Vectorised over all pairs with the same float operations as ``wins`` (which stays the
    readable definition and is tested against this).
    """
    uids = sorted(scores)
    if len(uids) == 1:
        return {uids[0]: 1.0}
    uid = np.array(uids, dtype=np.int64)
    loss = 1.0 - np.array([_clean(scores[u]) for u in uids], dtype=np.float64)
    block = np.array([commit_blocks[u] for u in uids], dtype=np.int64)
    eps = np.array(
        [epsilon_at(policy, age_blocks=current_block - int(b)) for b in block], dtype=np.float64
    )
    discounted = loss * (1.0 - eps)
    earlier = block[:, None] < block[None, :]  # a (row) committed before b (column)
    later = block[:, None] > block[None, :]
    loss_a = np.where(earlier, discounted[:, None], loss[:, None])
    loss_b = np.where(later, discounted[None, :], loss[None, :])
    tie_break = (block[:, None] < block[None, :]) | (
        (block[:, None] == block[None, :]) & (uid[:, None] < uid[None, :])
    )
    won = np.where(loss_a != loss_b, loss_a < loss_b, tie_break)
    np.fill_diagonal(won, False)
    counts = won.sum(axis=1)
    return {u: float(c) / (len(uids) - 1) for u, c in zip(uids, counts.tolist(), strict=True)}


def scores_to_weights(
    scores: Mapping[int, float],
    *,
    commit_blocks: Mapping[int, int],
    current_block: int,
    policy: ValidatorPolicy,
    rejected: frozenset[int] = frozenset(),
) -> dict[int, int]:
    """u16 weights from scores: softmax of win rates, max-upscaled; ``rejected`` uids get 0."""
    zeros = {uid: 0 for uid in sorted(rejected) if uid in scores}
    ranked = {uid: score for uid, score in scores.items() if uid not in rejected}
    if not ranked:
        return zeros
    rates = win_rates(
        ranked, commit_blocks=commit_blocks, current_block=current_block, policy=policy
    )
    top = max(rates.values())
    # exp((r − max)/T) ∈ (0, 1], so the best uid maps to exactly 65535.
    weights = {
        uid: math.floor(math.exp((rate - top) / policy.temperature) * U16_MAX)
        for uid, rate in rates.items()
    }
    return dict(sorted({**weights, **zeros}.items()))


def _clean(score: float) -> float:
    return score if math.isfinite(score) else 0.0
