"""Hosted validators: turn evaluation scores into u16 weights, the SN9 way.

Pure. For every pair of scored models (a, b) one of them *wins*; a model's win rate is its wins
over the other models; weights are the softmax of win rate / temperature, max-upscaled to u16.
Who wins a pair is the validator's ``win_policy``:

* ``"epsilon"`` (the default): a wins if its loss (1 − score) is lower, where the earlier
  submission's loss is multiplied by (1 − ε) — an advantage that decays linearly to 0 over
  ``epsilon_decay_blocks`` of the earlier model's age — so copying a model and resubmitting it
  later never pays. Exact ties go to the earlier commit, then the lower uid.
* ``"bootstrap"``: a newer model (later commit block) beats an older one only if the paired
  bootstrap percentile interval of its accuracy advantage on the validator's rows, at
  ``bootstrap_confidence``, lies above zero; otherwise the older one wins. Models committed in
  the same block: the significantly better one wins, else the lower uid. The decision reads each
  model's per-row correctness on the validator's rows (:class:`ValidatorRows`), not the scores;
  the resampled row indices come from the epoch seed and the validator's hotkey only
  (:func:`bootstrap_seed`), so the weights depend only on the ledger and the artifacts. Synthetic
  scores (``taoflow network simulate``) have no rows: there ``"bootstrap"`` is refused with one
  line (:class:`InvalidValidatorPolicy`), never silently replaced by ``"epsilon"``.

Invariants: weights are integers in [0, 65535]; the best model of a non-empty row gets 65535;
a uid with no score gets no entry; a rejected uid (failed evaluation) gets exactly 0 and takes
no part in the pairwise wins; a higher win rate never gets a lower weight; exactly one model of
each pair wins; the result does not depend on the iteration order of the inputs. Bootstrap
work is bounded: at most ``BOOTSTRAP_RESAMPLES_MAX`` resamples, drawn and compared in chunks of
at most ``BOOTSTRAP_CHUNK_ELEMENTS_MAX`` array elements.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from taoflow.ledger.validator_policy import (
    BOOTSTRAP_RESAMPLES_MAX,
    WIN_POLICIES,
    InvalidValidatorPolicy,
    ValidatorPolicy,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES_MAX",
    "WIN_POLICIES",
    "InvalidValidatorPolicy",
    "ValidatorPolicy",
    "scores_to_weights",
    "win_rates",
    "wins",
]

U16_MAX = 65535
BOOTSTRAP_CHUNK_ELEMENTS_MAX: Final = 1 << 22
"""Array elements one step of the bootstrap may hold (resampled indices, pairwise differences)."""
BOOTSTRAP_ROWS_MAX: Final = 1 << 31
"""Rows one validator may resample (the raw-stream index mapping needs rows < 2**32)."""
_BOOTSTRAP_DOMAIN: Final = b"taoflow.bootstrap-wins.v1\x00"


@dataclass(frozen=True)
class ValidatorRows:
    """One hosted validator's per-row correctness of each scored model, for ``"bootstrap"``.

    ``correct`` maps miner uid → bool array over the validator's rows (the same rows, in the
    same order, for every uid); ``seed`` seeds the resampling (:func:`bootstrap_seed`).
    """

    correct: Mapping[int, np.ndarray]
    seed: bytes


@dataclass(frozen=True)
class EpochCorrectness:
    """Every scored model's correctness on the epoch sample, and each hosted validator's rows.

    Compact: one bool matrix (``uids`` × epoch sample rows) shared by all validators;
    ``positions`` maps validator uid → positions in the epoch sample that it scores.
    """

    uids: tuple[int, ...]
    correct: np.ndarray
    positions: Mapping[int, np.ndarray]

    def rows_of(self, validator_uid: int, *, seed_hex: str, hotkey: str) -> ValidatorRows:
        """The validator's :class:`ValidatorRows` (its columns of ``correct``, its seed)."""
        picked = np.asarray(self.correct, dtype=np.bool_)[:, self.positions[validator_uid]]
        return ValidatorRows(
            correct={uid: picked[i] for i, uid in enumerate(self.uids)},
            seed=bootstrap_seed(seed_hex=seed_hex, hotkey=hotkey),
        )


def bootstrap_seed(*, seed_hex: str, hotkey: str) -> bytes:
    """sha256 over a domain tag and the length-prefixed epoch seed and validator hotkey."""
    digest = hashlib.sha256(_BOOTSTRAP_DOMAIN)
    for part in (seed_hex, hotkey):
        payload = part.encode("utf-8")
        digest.update(len(payload).to_bytes(8, "big") + payload)
    return digest.digest()


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


def resample_indices(*, seed: bytes, rows: int, resamples: int) -> Iterator[np.ndarray]:
    """Row indices drawn with replacement: ``resamples`` rows of ``rows`` indices in all, yielded
    in chunks (``int64``, chunk × rows) of at most ``BOOTSTRAP_CHUNK_ELEMENTS_MAX`` elements.

    Depends only on ``(seed, rows, resamples)``, in every process and every numpy version: only
    PCG64's raw 64-bit stream is used (numpy keeps it stable), each index being
    ``((raw >> 32) · rows) >> 32`` (bias at most rows / 2**32 of a row's probability); the chunk
    size does not change the indices.
    """
    if not 1 <= rows <= BOOTSTRAP_ROWS_MAX:
        raise ValueError(f"the bootstrap needs 1 to {BOOTSTRAP_ROWS_MAX:,} rows, got {rows}")
    key = int.from_bytes(hashlib.sha256(_BOOTSTRAP_DOMAIN + seed).digest(), "big")
    bit_generator = np.random.PCG64(np.random.SeedSequence(key))
    chunk = max(1, BOOTSTRAP_CHUNK_ELEMENTS_MAX // rows)
    done = 0
    while done < resamples:  # bounded: ⌈resamples / chunk⌉ steps
        size = min(chunk, resamples - done)
        raw = bit_generator.random_raw(size * rows)
        picked = ((raw >> np.uint64(32)) * np.uint64(rows)) >> np.uint64(32)
        yield picked.astype(np.int64).reshape(size, rows)
        done += size


def resampled_hits(correct: np.ndarray, *, seed: bytes, resamples: int) -> np.ndarray:
    """Correct rows of each model (row of the bool matrix ``correct``) in each resample:
    ``int64``, resamples × models. Every model sees the same resampled rows (paired)."""
    models, rows = correct.shape
    matrix = np.asarray(correct, dtype=np.float64).T  # rows × models
    hits = np.empty((resamples, models), dtype=np.int64)
    offset = 0
    for picked in resample_indices(seed=seed, rows=rows, resamples=resamples):
        size = picked.shape[0]
        flat = (picked + (np.arange(size, dtype=np.int64) * rows)[:, None]).ravel()
        counts = np.bincount(flat, minlength=size * rows).reshape(size, rows)
        # Integer sums below 2**53: exact in float64 whatever the summation order.
        hits[offset : offset + size] = np.rint(counts.astype(np.float64) @ matrix)
        offset += size
    return hits


def interval_ranks(policy: ValidatorPolicy) -> tuple[int, int]:
    """Positions, among the sorted resampled differences, of the percentile interval's ends
    (numpy's ``inverted_cdf`` quantiles at α/2 and 1 − α/2, α = 1 − confidence)."""
    resamples = policy.bootstrap_resamples
    tail = resamples * (1.0 - policy.bootstrap_confidence) / 2.0
    low = max(0, math.ceil(round(tail, 6)) - 1)
    high = max(0, math.ceil(round(resamples - tail, 6)) - 1)
    return low, high


def advantage_interval(
    correct_a: np.ndarray, correct_b: np.ndarray, *, seed: bytes, policy: ValidatorPolicy
) -> tuple[float, float]:
    """The paired bootstrap percentile interval of accuracy(a) − accuracy(b) on these rows."""
    rows = len(correct_a)
    hits = resampled_hits(
        np.stack([correct_a, correct_b]), seed=seed, resamples=policy.bootstrap_resamples
    )
    ordered = np.sort(hits[:, 0] - hits[:, 1])
    low, high = interval_ranks(policy)
    return int(ordered[low]) / rows, int(ordered[high]) / rows


def bootstrap_wins(
    *,
    uid_a: int,
    uid_b: int,
    rows: ValidatorRows,
    commit_blocks: Mapping[int, int],
    policy: ValidatorPolicy,
) -> bool:
    """Whether ``uid_a`` beats ``uid_b`` under ``"bootstrap"`` (the readable definition)."""

    def significant(first: int, second: int) -> bool:
        low, _ = advantage_interval(
            rows.correct[first], rows.correct[second], seed=rows.seed, policy=policy
        )
        return low > 0.0

    block_a, block_b = commit_blocks[uid_a], commit_blocks[uid_b]
    if block_a > block_b:
        return significant(uid_a, uid_b)
    if block_a < block_b:
        return not significant(uid_b, uid_a)
    return significant(uid_a, uid_b) or (not significant(uid_b, uid_a) and uid_a < uid_b)


def bootstrap_win_rates(
    uids: list[int],
    *,
    rows: ValidatorRows,
    commit_blocks: Mapping[int, int],
    policy: ValidatorPolicy,
) -> dict[int, float]:
    """Each model's share of pairwise wins under ``"bootstrap"`` (1.0 for a lone model).

    Vectorised: one set of resampled hits for all models. The interval's lower end (the
    sorted differences' element ``low_rank``) is above zero exactly when at most ``low_rank``
    resamples have a difference ≤ 0, so every ordered pair needs only a count, taken in blocks
    of models; equal to :func:`bootstrap_wins` (tested).
    """
    uids = sorted(uids)
    if len(uids) == 1:
        return {uids[0]: 1.0}
    correct = _stacked(uids, rows)
    hits = resampled_hits(correct, seed=rows.seed, resamples=policy.bootstrap_resamples)
    low_rank, _ = interval_ranks(policy)
    models = len(uids)
    block_rows = max(1, BOOTSTRAP_CHUNK_ELEMENTS_MAX // (hits.shape[0] * models))
    not_ahead = np.empty((models, models), dtype=np.int64)
    for start in range(0, models, block_rows):  # bounded: ⌈models / block_rows⌉ steps
        stop = min(models, start + block_rows)
        # resamples × block × models: a (row) did not beat b (column) in that resample
        behind = hits[:, start:stop, None] <= hits[:, None, :]
        not_ahead[start:stop] = np.count_nonzero(behind, axis=0)
    significant = not_ahead <= low_rank  # [a, b]: a's advantage over b is significant
    uid = np.array(uids, dtype=np.int64)
    block = np.array([commit_blocks[u] for u in uids], dtype=np.int64)
    newer = block[:, None] > block[None, :]
    older = block[:, None] < block[None, :]
    same_block = significant | (~significant.T & (uid[:, None] < uid[None, :]))
    won = np.where(newer, significant, np.where(older, ~significant.T, same_block))
    np.fill_diagonal(won, False)
    counts = won.sum(axis=1)
    return {u: float(c) / (models - 1) for u, c in zip(uids, counts.tolist(), strict=True)}


def _stacked(uids: list[int], rows: ValidatorRows) -> np.ndarray:
    missing = [uid for uid in uids if uid not in rows.correct]
    if missing:
        raise ValueError(f"no per-row correctness for uid(s) {missing[:8]}")
    vectors = [np.asarray(rows.correct[uid]) for uid in uids]
    lengths = {v.shape for v in vectors}
    if len(lengths) != 1 or len(vectors[0].shape) != 1 or vectors[0].size == 0:
        raise ValueError("per-row correctness must be non-empty vectors of one length")
    return np.stack(vectors).astype(np.bool_)


def scores_to_weights(
    scores: Mapping[int, float],
    *,
    commit_blocks: Mapping[int, int],
    current_block: int,
    policy: ValidatorPolicy,
    rejected: frozenset[int] = frozenset(),
    rows: ValidatorRows | None = None,
) -> dict[int, int]:
    """u16 weights from scores: softmax of win rates, max-upscaled; ``rejected`` uids get 0.

    ``"bootstrap"`` decides wins from ``rows`` (every ranked uid's correctness) and refuses,
    with one line, to run without them.
    """
    zeros = {uid: 0 for uid in sorted(rejected) if uid in scores}
    ranked = {uid: score for uid, score in scores.items() if uid not in rejected}
    if not ranked:
        return zeros
    if policy.needs_rows:
        if rows is None:
            raise InvalidValidatorPolicy(
                "win_policy 'bootstrap' needs each model's correctness per row, which these "
                "scores lack (synthetic scores: use win_policy 'epsilon')"
            )
        rates = bootstrap_win_rates(
            list(ranked), rows=rows, commit_blocks=commit_blocks, policy=policy
        )
    else:
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
