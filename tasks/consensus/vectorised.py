"""Vectorised NumPy float64 Yuma epoch (shared/yuma-spec.md §4.1–§4.10).

Two users: ``benchmarks/consensus.py`` times the production DuckDB epoch
(``tasks.consensus.sql.run_epoch``) against it, and ``tasks.audit.whatif`` runs it over long
ranges of stored epochs (guarded: a result near a quantisation boundary is recomputed in DuckDB,
see that module). Its outputs equal the DuckDB epoch's to float rounding (≈1e-17 on 256 × 64
subnets), not bit for bit. It is meant to be a fair, competent NumPy implementation — whole-array
operations only, no per-uid Python loops — not the slow loop-based ``reference.py`` (which is kept
for obviously-correct testing at n ≤ a few hundred).

Contract: :func:`numpy_epoch` takes the same ``(EpochInputs, YumaParams, EpochState)`` and returns
the same ``(EpochOutputs, EpochState)`` as ``run_epoch``, for the legacy bond path (§4.9a) and the
Yuma3 path (§4.9b, with or without liquid alpha), commit-reveal masking (§4.5.5) included.

Layouts
-------
* ``dense``: weights, clipped weights, bond weights and bonds are dense float64 arrays of shape
  (R, n), one row per uid that can carry a weight or bond row (validators with an effective permit,
  plus uids with a stored bond row); other uids have no row at all. ``auto`` picks it when the
  weights fill at least ``DENSE_MIN_DENSITY`` of that matrix.
* ``sparse``: the weights stay row-major COO arrays; bond matrices are canonical ``scipy.sparse``
  CSR arrays (n × n) whose ``data`` vectors carry the element-wise maths, and unions of patterns
  (the bond EMA) use scipy's O(nnz) merge.

Invariants (the specification choices of ``sql.py`` and ``reference.py``)
--------------------------------------------------------------------------
* float64 everywhere except the discrete decisions, which are exact integer arithmetic:
  - κ median (§4.6): with a_i the integer stake (rao) of the validators taking part and T = Σa,
    "Σ_{i: w_ij ≥ v} a_i / T ≥ κ" ⇔ "cum ≥ ceil(kappa_u16 · T / 65535)" for an integer cum, so
    cumulative stakes are compared with one exact integer threshold. They are int64 (exact while
    T < 2^63; segmented sums use wrap-around subtraction, exact modulo 2^64) or Python ints
    (object arrays) beyond that.
  - top-k permits (§4.3) rank the integer stakes, ties broken by uid (the lower uid loses).
* Per column the weights are sorted in descending order together with their stakes; the first
  position whose cumulative stake reaches the threshold holds C_j (equal levels need no pooling:
  the first qualifying position of a tie group carries the level of the whole group).
* Entry sets follow the chain's sparse code: explicit zero weights are entries; W̄ keeps an entry
  if W_ij = 0 or C_j > 0 (``col_clip_sparse``); Yuma3 W_b entries are W's (β = 0), W̄'s (β = 1) or
  those with W_b > 0; the liquid-alpha EMA emits W_b's entries only (spec §4.9 "sparse-path
  quirk"). Only the Yuma3 liquid EMA can tell these sets apart from "value > 0".
* Yuma3 W_b = W + β(W̄ − W) in that operation order (legacy: (1 − β)·W + β·W̄), as ``sql.py``, so
  branch decisions (W_b ≥ B_old) see the same operands.
* Stored u16 values are the chain's: x floored to I32F32, then ``floor(x_fixed·65535)``
  (``fixed.proportion_to_u16``; exact k/65535 stores k − 1).
* ``EpochOutputs.bonds`` holds the new float bonds B: column-normalised in the legacy path, absolute
  (in [0, 1]) in the Yuma3 path; entries ≤ 0 are absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from taoflow.tasks.consensus.fixed import proportion_to_u16
from taoflow.tasks.consensus.params import U16_MAX, YumaParams
from taoflow.tasks.consensus.types import (
    BONDS_FLOAT_SCHEMA,
    BONDS_U16_SCHEMA,
    EpochInputs,
    EpochOutputs,
    EpochState,
)

Layout = Literal["auto", "dense", "sparse"]

DENSE_MIN_DENSITY = 0.1
"""``auto`` uses dense (R, n) matrices when the weights fill at least this fraction of them."""

_INT64_LIMIT = 2**63
_UINT16_SPAN = 1 << 16


@dataclass(frozen=True)
class _Vectors:
    """Per-uid quantities of §4.1–§4.4 (length n each, except the scalar)."""

    is_owner: np.ndarray
    active: np.ndarray
    stake_weight: np.ndarray
    permit_eff: np.ndarray
    permit_new: np.ndarray
    a_rao: np.ndarray
    a_total_rao: int
    active_stake: np.ndarray


@dataclass(frozen=True)
class _Entries:
    """Masked, row-normalised weights W as COO arrays sorted by (validator, miner).

    Explicit zero weights are kept as entries with w = 0.
    """

    validator: np.ndarray
    miner: np.ndarray
    w: np.ndarray


@dataclass(frozen=True)
class _Triplets:
    """A sparse matrix as (validator, miner, value) arrays sorted by (validator, miner)."""

    validator: np.ndarray
    miner: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class _MatrixResults:
    """What the matrix part (§4.6–§4.9) hands to the per-uid outputs."""

    validator_trust: np.ndarray
    consensus: np.ndarray
    incentive: np.ndarray
    dividends: np.ndarray
    bonds: _Triplets
    bonds_u16: _Triplets


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------
def _exact_sum(values: np.ndarray) -> int:
    """Σ of an integer vector as a Python int (no int64 overflow)."""
    return int(sum(values.tolist()))


def _normalise(vector: np.ndarray) -> np.ndarray:
    """x / Σx, or x unchanged when Σx ≤ 0."""
    total = float(vector.sum())
    return vector / total if total > 0 else vector


def _u16_floor(proportion: np.ndarray) -> np.ndarray:
    """Stored u16 of proportions, as the chain stores them (``fixed.proportion_to_u16``)."""
    return proportion_to_u16(proportion)


def _kappa_threshold(params: YumaParams, a_total_rao: int) -> int:
    """Smallest integer stake c with 65535·c ≥ kappa_u16·T, i.e. ceil(kappa_u16·T / 65535)."""
    return -(-params.kappa_u16 * a_total_rao // U16_MAX)


def _exact_stakes(a_rao: np.ndarray, a_total_rao: int) -> np.ndarray:
    """Integer stakes as int64 when every partial sum fits, else as exact Python ints."""
    return a_rao if a_total_rao < _INT64_LIMIT else a_rao.astype(object)


def _last_tempo_block(inputs: EpochInputs) -> int:
    if inputs.last_step_block == 0:
        return max(0, inputs.current_block - inputs.tempo_blocks)
    return inputs.last_step_block + 1


def _liquid_alpha_ema(
    bond_weight: np.ndarray, bond_old: np.ndarray, consensus: np.ndarray, params: YumaParams
) -> np.ndarray:
    """B = min(1, (1 − α)·B_old + max(0, α·W_b)) with the per-entry liquid α (§4.9b).

    Evaluated in place on two work arrays (same float operations as the formula).
    """
    alpha_low, alpha_high = params.alpha_low, params.alpha_high
    # d = clamp(W_b − C, 0, 1) where W_b ≥ B_old, else clamp(B_old − W_b, 0, 1)
    work = np.subtract(bond_weight, consensus)
    np.clip(work, 0.0, 1.0, out=work)
    other = np.subtract(bond_old, bond_weight)
    np.clip(other, 0.0, 1.0, out=other)
    np.copyto(work, other, where=bond_weight < bond_old)
    # σ = 1 / (1 + exp(clamp(−steepness·(d − 0.5), −20, 20)))
    work -= 0.5
    work *= -params.sigmoid_steepness
    np.clip(work, -20.0, 20.0, out=work)
    np.exp(work, out=work)
    work += 1.0
    np.divide(1.0, work, out=work)
    # α = clamp(alpha_low + σ·(alpha_high − alpha_low), alpha_low, alpha_high)
    work *= alpha_high - alpha_low
    work += alpha_low
    np.clip(work, alpha_low, alpha_high, out=work)
    # B = min(1, (1 − α)·B_old + max(0, α·W_b))
    np.multiply(work, bond_weight, out=other)
    np.maximum(other, 0.0, out=other)
    np.subtract(1.0, work, out=work)
    work *= bond_old
    work += other
    np.minimum(work, 1.0, out=work)
    return work


def _legacy_bond_weights(w: np.ndarray, w_clipped: np.ndarray, beta: float) -> np.ndarray:
    """Legacy W_b = (1 − β)·W + β·W̄ (exact at β ∈ {0, 1}); only W_b > 0 is used."""
    if beta == 1.0:
        return w_clipped
    if beta == 0.0:
        return w
    return (1.0 - beta) * w + beta * w_clipped


def _yuma3_bond_weights(w: np.ndarray, w_clipped: np.ndarray, params: YumaParams) -> np.ndarray:
    """Yuma3 W_b: W at β = 0, W̄ at β = 1, else W + β(W̄ − W) (that operation order)."""
    if params.bonds_penalty_u16 == 0:
        return w
    if params.bonds_penalty_u16 == U16_MAX:
        return w_clipped
    return w + params.bonds_penalty * (w_clipped - w)


def _yuma3_bond_weight_entries(
    bond_weight: np.ndarray, w_entry: np.ndarray, clipped_entry: np.ndarray, params: YumaParams
) -> np.ndarray:
    """Which W_b entries exist: W's (β = 0), W̄'s (β = 1), else those with W_b > 0."""
    if params.bonds_penalty_u16 == 0:
        return w_entry
    if params.bonds_penalty_u16 == U16_MAX:
        return clipped_entry
    return w_entry & (bond_weight > 0)


# ------------------------------------------------------------------------------------------------
# §4.1–§4.5: vectors and weight entries (shared by both layouts)
# ------------------------------------------------------------------------------------------------
def _vectors(inputs: EpochInputs, params: YumaParams, state: EpochState) -> _Vectors:
    n = inputs.n_uids
    uids = np.arange(n, dtype=np.int64)
    is_owner = np.zeros(n, dtype=np.bool_)
    if inputs.owner_uid is not None:
        is_owner[inputs.owner_uid] = True
    # §4.1 active_i = ¬(last_update_i + cutoff < current_block)
    active = ~(inputs.last_update_block + params.activity_cutoff_blocks < inputs.current_block)
    # §4.2 threshold mask (owner exempt), S = s / Σs
    below_threshold = (inputs.stake_rao < params.stake_threshold_rao) & ~is_owner
    s_rao = np.where(below_threshold, 0, inputs.stake_rao)
    s_total_rao = _exact_sum(s_rao)
    stake_weight = s_rao / float(s_total_rao) if s_total_rao > 0 else np.zeros(n)
    # §4.3 permits: effective old permits; new = top-k by (s desc, uid desc), s > 0, owner forced
    permit_eff = state.validator_permit | is_owner
    by_stake_desc = np.lexsort((-uids, -s_rao))
    permit_new = np.zeros(n, dtype=np.bool_)
    permit_new[by_stake_desc[: params.max_validators]] = True
    permit_new = (permit_new & (s_rao > 0)) | is_owner
    # §4.4 a_i = s_i·[active_i ∧ permit_eff_i], A = a / Σa
    a_rao = np.where(active & permit_eff, s_rao, 0)
    a_total_rao = _exact_sum(a_rao)
    active_stake = a_rao / float(a_total_rao) if a_total_rao > 0 else np.zeros(n)
    return _Vectors(
        is_owner=is_owner,
        active=active,
        stake_weight=stake_weight,
        permit_eff=permit_eff,
        permit_new=permit_new,
        a_rao=a_rao,
        a_total_rao=a_total_rao,
        active_stake=active_stake,
    )


def _weight_entries(inputs: EpochInputs, params: YumaParams, vectors: _Vectors) -> _Entries:
    """§4.5: drop j ≥ n, forbidden rows, self-weights (not the owner's), outdated and
    commit-reveal-masked entries; row-normalise (a row summing to 0 keeps its zero entries)."""
    n = inputs.n_uids
    table = inputs.weights
    validator = table.column("validator").to_numpy().astype(np.int64)
    miner = table.column("miner").to_numpy().astype(np.int64)
    weight_u16 = table.column("weight_u16").to_numpy()
    in_range = miner < n
    validator, miner, weight_u16 = validator[in_range], miner[in_range], weight_u16[in_range]
    registered = inputs.registered_block[miner]
    keep = (
        vectors.permit_eff[validator]
        & ((validator != miner) | vectors.is_owner[validator])
        & (inputs.last_update_block[validator] > registered)
    )
    if params.commit_reveal:
        keep &= ~(inputs.commit_blocks()[validator] < registered)
    validator, miner, weight_u16 = validator[keep], miner[keep], weight_u16[keep]
    row_sum = np.bincount(validator, weights=weight_u16, minlength=n)  # integer sums: exact
    row_sum_of_entry = row_sum[validator]
    w = np.where(row_sum_of_entry > 0, weight_u16 / np.maximum(row_sum_of_entry, 1.0), 0.0)
    key = validator * n + miner
    if key.size and not bool(np.all(key[1:] > key[:-1])):  # stored rows are usually sorted
        order = np.argsort(key, kind="stable")
        validator, miner, w = validator[order], miner[order], w[order]
    return _Entries(validator=validator, miner=miner, w=w)


def _stored_bond_entries(
    inputs: EpochInputs, state: EpochState
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored u16 bonds with u > 0, new-registration columns (reg_j ≥ last_tempo) removed."""
    table = state.bonds
    validator = table.column("validator").to_numpy().astype(np.int64)
    miner = table.column("miner").to_numpy().astype(np.int64)
    bond_u16 = table.column("bond_u16").to_numpy().astype(np.float64)
    keep = (bond_u16 > 0) & (inputs.registered_block[miner] < _last_tempo_block(inputs))
    return validator[keep], miner[keep], bond_u16[keep]


# ------------------------------------------------------------------------------------------------
# §4.6 κ median
# ------------------------------------------------------------------------------------------------
def _consensus_dense(scores_by_miner: np.ndarray, stakes: np.ndarray, threshold: int) -> np.ndarray:
    """C_j for each row j of ``scores_by_miner`` (n × V_staked, dense: a missing entry is 0)."""
    n_miners, n_staked = scores_by_miner.shape
    consensus = np.zeros(n_miners, dtype=np.float64)
    if n_staked == 0:
        return consensus
    order = np.argsort(-scores_by_miner, axis=1)
    cumulative = np.cumsum(stakes[order], axis=1)
    below = np.count_nonzero(cumulative < threshold, axis=1)
    found = np.flatnonzero(below < n_staked)
    consensus[found] = scores_by_miner[found, order[found, below[found]]]
    return consensus


def _miner_then_score_order(miners: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Permutation sorting entries by miner ascending, then score descending.

    One float argsort by score, then a stable LSD radix sort of the miner uid in 16-bit digits
    (numpy's stable argsort of uint16 is a counting sort): O(nnz log nnz) + O(nnz).
    """
    order = np.argsort(-scores)
    keys = miners[order]
    low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    order, keys = order[low], keys[low]
    if keys.size and int(keys.max()) >= _UINT16_SPAN:
        order = order[np.argsort((keys >> 16).astype(np.uint16), kind="stable")]
    return order


def _consensus_sparse(
    miners: np.ndarray, scores: np.ndarray, stakes: np.ndarray, threshold: int, n: int
) -> np.ndarray:
    """C_j from entries (miner, score > 0, stake); absent entries are level 0."""
    consensus = np.zeros(n, dtype=np.float64)
    if miners.size == 0:
        return consensus
    order = _miner_then_score_order(miners, scores)
    miner, score, stake = miners[order], scores[order], stakes[order]
    counts = np.bincount(miner, minlength=n)
    starts = np.cumsum(counts) - counts
    # Segmented cumulative stake: the running sum minus the running sum before the segment
    # (int64 wrap-around cancels exactly: every segment's true sum is ≤ T < 2^63).
    with np.errstate(over="ignore"):
        running = np.cumsum(stake)
        nonempty = np.flatnonzero(counts)
        before = np.zeros(n, dtype=running.dtype)
        before[nonempty] = running[starts[nonempty]] - stake[starts[nonempty]]
        cumulative = running - before[miner]
    short = (cumulative < threshold).astype(np.bool_)
    below = np.bincount(miner, weights=short, minlength=n).astype(np.int64)
    found = np.flatnonzero(below < counts)
    consensus[found] = score[starts[found] + below[found]]
    return consensus


# ------------------------------------------------------------------------------------------------
# §4.6–§4.9, dense (R × n) layout
# ------------------------------------------------------------------------------------------------
def _column_normalise_dense(matrix: np.ndarray) -> np.ndarray:
    column_sum = matrix.sum(axis=0)
    return matrix / np.where(column_sum > 0, column_sum, 1.0)


def _dense_triplets(matrix: np.ndarray, row_uids: np.ndarray, mask: np.ndarray) -> _Triplets:
    flat = np.flatnonzero(mask)  # row-major: sorted by (row, miner)
    rows, miners = np.divmod(flat, matrix.shape[1])
    return _Triplets(validator=row_uids[rows], miner=miners, value=matrix.ravel()[flat])


def _matrices_dense(
    inputs: EpochInputs,
    params: YumaParams,
    state: EpochState,
    vectors: _Vectors,
    entries: _Entries,
) -> _MatrixResults:
    n = inputs.n_uids
    bond_validator, bond_miner, bond_u16 = _stored_bond_entries(inputs, state)
    has_row = vectors.permit_eff.copy()
    has_row[bond_validator] = True
    row_uids = np.flatnonzero(has_row)
    row_of_uid = np.full(n, -1, dtype=np.int64)
    row_of_uid[row_uids] = np.arange(row_uids.size)
    n_rows = row_uids.size
    active_stake = vectors.active_stake[row_uids]
    entry_rows = row_of_uid[entries.validator]

    # §4.5 W (no entry ⇒ 0)
    w = np.zeros((n_rows, n), dtype=np.float64)
    w[entry_rows, entries.miner] = entries.w

    # §4.6 consensus over validators with a_i > 0
    staked = np.flatnonzero(vectors.a_rao[row_uids] > 0)
    consensus = _consensus_dense(
        np.ascontiguousarray(w[staked].T),
        _exact_stakes(vectors.a_rao[row_uids[staked]], vectors.a_total_rao),
        _kappa_threshold(params, vectors.a_total_rao),
    )

    # §4.7 W̄ = min(W, C), VT = row sums; §4.8 R = A·W̄, I = R / ΣR
    w_clipped = np.minimum(w, consensus[np.newaxis, :])
    validator_trust = np.zeros(n, dtype=np.float64)
    validator_trust[row_uids] = w_clipped.sum(axis=1)
    incentive = _normalise(active_stake @ w_clipped)

    # §4.9 old bonds (new-registration columns removed)
    bond_old = np.zeros((n_rows, n), dtype=np.float64)
    bond_old[row_of_uid[bond_validator], bond_miner] = bond_u16
    alpha = params.bonds_alpha

    if not params.yuma3:
        # §4.9a legacy: column-normalised old bonds, ΔB = colnorm(W_b·A), EMA, colnorm again
        bond_weight = _legacy_bond_weights(w, w_clipped, params.bonds_penalty)
        bond_old = _column_normalise_dense(bond_old)
        delta = _column_normalise_dense(np.maximum(bond_weight, 0.0) * active_stake[:, None])
        bonds = _column_normalise_dense(alpha * delta + (1.0 - alpha) * bond_old)
        dividends_rows = _normalise(bonds @ incentive)
        column_max = bonds.max(axis=0, initial=0.0)
        stored = _u16_floor(bonds / np.where(column_max > 0, column_max, 1.0))
    else:
        # §4.9b Yuma3: absolute bonds in [0, 1]
        bond_old /= U16_MAX
        bond_weight = _yuma3_bond_weights(w, w_clipped, params)
        if params.liquid_alpha and bool(np.any(consensus != 0)):
            w_entry = np.zeros((n_rows, n), dtype=np.bool_)
            w_entry[entry_rows, entries.miner] = True
            clipped_entry = w_entry & ((w == 0.0) | (consensus > 0.0)[np.newaxis, :])
            bond_weight_entry = _yuma3_bond_weight_entries(
                bond_weight, w_entry, clipped_entry, params
            )
            bonds = _liquid_alpha_ema(bond_weight, bond_old, consensus[np.newaxis, :], params)
            np.copyto(bonds, 0.0, where=~bond_weight_entry)
        else:
            bonds = alpha * np.maximum(bond_weight, 0.0) + (1.0 - alpha) * bond_old
        bonds = np.maximum(bonds, 0.0)
        dividends_rows = _normalise(active_stake * (_column_normalise_dense(bonds) @ incentive))
        stored = _u16_floor(bonds)

    dividends = np.zeros(n, dtype=np.float64)
    dividends[row_uids] = dividends_rows
    positive = bonds > 0
    stored_mask = positive & vectors.permit_new[row_uids][:, np.newaxis] & (stored > 0)
    return _MatrixResults(
        validator_trust=validator_trust,
        consensus=consensus,
        incentive=incentive,
        dividends=dividends,
        bonds=_dense_triplets(bonds, row_uids, positive),
        bonds_u16=_dense_triplets(stored, row_uids, stored_mask),
    )


# ------------------------------------------------------------------------------------------------
# §4.6–§4.9, sparse (COO entries + CSR bonds) layout
# ------------------------------------------------------------------------------------------------
def _csr(rows: np.ndarray, miners: np.ndarray, data: np.ndarray, n: int) -> sp.csr_array:
    """Canonical CSR from COO arrays already sorted by (row, miner), without duplicates."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_array((data, miners, indptr), shape=(n, n))


def _csr_rows(matrix: sp.csr_array) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def _with_data(matrix: sp.csr_array, data: np.ndarray) -> sp.csr_array:
    return sp.csr_array((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def _column_normalise_csr(matrix: sp.csr_array) -> sp.csr_array:
    column_sum = np.bincount(matrix.indices, weights=matrix.data, minlength=matrix.shape[1])
    return _with_data(matrix, matrix.data / column_sum[matrix.indices])


def _positive(matrix: sp.csr_array) -> sp.csr_array:
    """The entries > 0 of ``matrix``, canonical."""
    matrix.sum_duplicates()  # sorts indices if needed; a no-op on scipy's canonical results
    keep = matrix.data > 0
    return _csr(_csr_rows(matrix)[keep], matrix.indices[keep], matrix.data[keep], matrix.shape[0])


def _csr_triplets(matrix: sp.csr_array, data: np.ndarray, keep: np.ndarray) -> _Triplets:
    return _Triplets(
        validator=_csr_rows(matrix)[keep],
        miner=matrix.indices[keep].astype(np.int64),
        value=data[keep],
    )


def _values_at(rows: np.ndarray, miners: np.ndarray, source: sp.csr_array, n: int) -> np.ndarray:
    """``source`` at the sorted positions (rows, miners); 0 where it has no entry."""
    source_keys = _csr_rows(source) * n + source.indices
    if source_keys.size == 0:
        return np.zeros(rows.size, dtype=np.float64)
    keys = rows * n + miners
    position = np.minimum(np.searchsorted(source_keys, keys), source_keys.size - 1)
    return np.where(source_keys[position] == keys, source.data[position], 0.0)


def _matrices_sparse(
    inputs: EpochInputs,
    params: YumaParams,
    state: EpochState,
    vectors: _Vectors,
    entries: _Entries,
) -> _MatrixResults:
    n = inputs.n_uids
    rows, miners, w = entries.validator, entries.miner, entries.w

    # §4.6 consensus from the positive entries of validators with a_i > 0
    staked = (vectors.a_rao[rows] > 0) & (w > 0)
    stakes = _exact_stakes(vectors.a_rao, vectors.a_total_rao)
    consensus = _consensus_sparse(
        miners[staked],
        w[staked],
        stakes[rows[staked]],
        _kappa_threshold(params, vectors.a_total_rao),
        n,
    )

    # §4.7 W̄ = min(W, C) (an entry clipped to C_j = 0 is 0), VT; §4.8 R = A·W̄, I = R / ΣR
    consensus_of_entry = consensus[miners]
    w_clipped = np.minimum(w, consensus_of_entry)
    validator_trust = np.bincount(rows, weights=w_clipped, minlength=n)
    ranks = np.bincount(miners, weights=vectors.active_stake[rows] * w_clipped, minlength=n)
    incentive = _normalise(ranks)

    # §4.9 old bonds (new-registration columns removed)
    bond_validator, bond_miner, bond_u16 = _stored_bond_entries(inputs, state)
    bond_old = sp.csr_array((bond_u16, (bond_validator, bond_miner)), shape=(n, n))
    bond_old.sum_duplicates()
    alpha = params.bonds_alpha

    if not params.yuma3:
        # §4.9a legacy
        bond_weight = _legacy_bond_weights(w, w_clipped, params.bonds_penalty)
        weighted = bond_weight * vectors.active_stake[rows]
        delta = _column_normalise_csr(_positive(_csr(rows, miners, weighted, n)))
        bond_old = _column_normalise_csr(bond_old)
        bonds = _column_normalise_csr(_positive(alpha * delta + (1.0 - alpha) * bond_old))
        dividends = _normalise(bonds @ incentive)
        column_max = np.zeros(n, dtype=np.float64)
        np.maximum.at(column_max, bonds.indices, bonds.data)
        stored = _u16_floor(bonds.data / column_max[bonds.indices])
    else:
        # §4.9b Yuma3
        bond_old = _with_data(bond_old, bond_old.data / U16_MAX)
        bond_weight = _yuma3_bond_weights(w, w_clipped, params)
        if params.liquid_alpha and bool(np.any(consensus != 0)):
            bond_weight_entry = _yuma3_bond_weight_entries(
                bond_weight,
                np.ones(w.size, dtype=np.bool_),
                (w == 0.0) | (consensus_of_entry > 0.0),
                params,
            )
            b_rows, b_miners = rows[bond_weight_entry], miners[bond_weight_entry]
            bond_weight = bond_weight[bond_weight_entry]
            old_here = _values_at(b_rows, b_miners, bond_old, n)
            ema = _liquid_alpha_ema(bond_weight, old_here, consensus[b_miners], params)
            bonds = _positive(_csr(b_rows, b_miners, ema, n))
        else:
            positive_weight = _positive(_csr(rows, miners, bond_weight, n))
            bonds = _positive(alpha * positive_weight + (1.0 - alpha) * bond_old)
        dividends = _normalise(vectors.active_stake * (_column_normalise_csr(bonds) @ incentive))
        stored = _u16_floor(bonds.data)

    stored_keep = vectors.permit_new[_csr_rows(bonds)] & (stored > 0)
    return _MatrixResults(
        validator_trust=validator_trust,
        consensus=consensus,
        incentive=incentive,
        dividends=dividends,
        bonds=_csr_triplets(bonds, bonds.data, np.ones(bonds.data.size, dtype=np.bool_)),
        bonds_u16=_csr_triplets(bonds, stored, stored_keep),
    )


# ------------------------------------------------------------------------------------------------
# Public entry point and §4.10 outputs
# ------------------------------------------------------------------------------------------------
def choose_layout(inputs: EpochInputs, state: EpochState) -> Literal["dense", "sparse"]:
    """The layout ``auto`` uses: dense when the weights fill ≥ DENSE_MIN_DENSITY of (R, n)."""
    n = inputs.n_uids
    permit = state.for_uids(n).validator_permit.copy()
    if inputs.owner_uid is not None:
        permit[inputs.owner_uid] = True
    n_rows = max(1, int(np.count_nonzero(permit)))
    return "dense" if inputs.weights.num_rows >= DENSE_MIN_DENSITY * n_rows * n else "sparse"


def _table(triplets: _Triplets, schema: pa.Schema) -> pa.Table:
    value_type = np.float64 if schema.field(2).type == pa.float64() else np.int32
    return pa.Table.from_arrays(
        [
            pa.array(triplets.validator.astype(np.int32)),
            pa.array(triplets.miner.astype(np.int32)),
            pa.array(triplets.value.astype(value_type)),
        ],
        schema=schema,
    )


def numpy_epoch(
    inputs: EpochInputs, params: YumaParams, state: EpochState, *, layout: Layout = "auto"
) -> tuple[EpochOutputs, EpochState]:
    """One Yuma epoch, vectorised NumPy float64; same contract as ``run_epoch``."""
    state = state.for_uids(inputs.n_uids)
    if layout == "auto":
        layout = choose_layout(inputs, state)
    vectors = _vectors(inputs, params, state)
    entries = _weight_entries(inputs, params, vectors)
    matrices = _matrices_dense if layout == "dense" else _matrices_sparse
    results = matrices(inputs, params, state, vectors, entries)

    # §4.10 emission shares; validators fall back to A (or S) when nothing is emitted
    emission_sum = float(results.incentive.sum()) + float(results.dividends.sum())
    if emission_sum > 0:
        server_share = results.incentive / emission_sum
        validator_share = results.dividends / emission_sum
    else:
        server_share = np.zeros(inputs.n_uids, dtype=np.float64)
        has_active = vectors.a_total_rao > 0
        validator_share = vectors.active_stake if has_active else vectors.stake_weight

    outputs = EpochOutputs(
        stake_weight=vectors.stake_weight,
        active_stake=vectors.active_stake,
        active=vectors.active,
        validator_permit=vectors.permit_new,
        validator_trust=results.validator_trust,
        consensus=results.consensus,
        incentive=results.incentive,
        dividends=results.dividends,
        server_emission_share=server_share,
        validator_emission_share=validator_share,
        bonds=_table(results.bonds, BONDS_FLOAT_SCHEMA),
    )
    next_state = EpochState(
        bonds=_table(results.bonds_u16, BONDS_U16_SCHEMA),
        validator_permit=vectors.permit_new,
    )
    return outputs, next_state


__all__ = ["DENSE_MIN_DENSITY", "Layout", "choose_layout", "numpy_epoch"]
