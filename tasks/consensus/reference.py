"""Slow, obviously-correct NumPy reference of the Yuma epoch (shared/yuma-spec.md §4).

Written straight from the spec with dense n×n float64 matrices and plain loops, for testing the
production SQL (``sql.py``) on small random inputs. It shares only the data classes, parameters
and the definition of the chain's stored u16 (``fixed.py``) with ``sql.py``, never other
computational code.

Invariants (the same *specification choices* as ``sql.py``, implemented independently)
--------------------------------------------------------------------------------------
* Float64 everywhere except the discrete decisions, which are exact:
  - the κ test of §4.6 uses ``fractions.Fraction`` stakes a_i = s_i / Σ s over the validators taking
    part, and κ = Fraction(kappa_u16, 65535);
  - top-k permits (§4.3) sort the integer stakes with Python's stable sort.
* Stored u16 values are the chain's: x floored to I32F32, then ``floor(x_fixed·65535)``
  (``fixed.proportion_to_u16``; exact k/65535 stores k − 1).
* Both bond paths: legacy (§4.9a) and Yuma3 (§4.9b, with or without liquid alpha).
* Matrices are dense, but which (i, j) the chain's *sparse* code holds as an entry is tracked
  beside each value matrix (boolean ``*_entry`` matrices): explicit zero weights are entries, and
  the Yuma3 liquid-alpha EMA treats a bond without a W_b entry differently from one with an
  explicit zero weight (§4.9 "Sparse-path quirk"), which this reference replicates literally.
* Yuma3 branch decisions (W_b ≥ B_old, β ∈ {0, 1}) use the spec's formulas with the same float
  operands as ``sql.py``: W = u/Σu, B_old = u/65535, W_b = W + β(W̄ − W).
* Dense O(n²) memory: meant for n up to a few hundred.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa

from taoflow.tasks.consensus.fixed import proportion_to_u16
from taoflow.tasks.consensus.params import U16_MAX, YumaParams
from taoflow.tasks.consensus.types import (
    BONDS_FLOAT_SCHEMA,
    BONDS_U16_SCHEMA,
    EpochInputs,
    EpochOutputs,
    EpochState,
)


def _normalise(vector: np.ndarray) -> np.ndarray:
    """x / Σx, or x unchanged if Σx = 0."""
    total = vector.sum()
    return vector / total if total > 0 else vector.copy()


def _column_normalise(matrix: np.ndarray) -> np.ndarray:
    """Each column with positive sum divided by its sum."""
    result = matrix.copy()
    for j in range(matrix.shape[1]):
        column_sum = matrix[:, j].sum()
        if column_sum > 0:
            result[:, j] = matrix[:, j] / column_sum
    return result


def _dense_from_sparse(table: pa.Table, *, value_column: str, n_uids: int) -> np.ndarray:
    """Dense n×n float matrix of a sparse (validator, miner, value) table; miners ≥ n dropped."""
    dense = np.zeros((n_uids, n_uids), dtype=np.float64)
    rows = table.column("validator").to_pylist()
    cols = table.column("miner").to_pylist()
    values = table.column(value_column).to_pylist()
    for i, j, value in zip(rows, cols, values, strict=True):
        if j < n_uids:
            dense[i, j] = float(value)
    return dense


def _entries_from_sparse(table: pa.Table, *, n_uids: int) -> np.ndarray:
    """n×n bool: which (validator, miner) pairs the sparse table holds; miners ≥ n dropped."""
    entries = np.zeros((n_uids, n_uids), dtype=np.bool_)
    rows = table.column("validator").to_pylist()
    cols = table.column("miner").to_pylist()
    for i, j in zip(rows, cols, strict=True):
        if j < n_uids:
            entries[i, j] = True
    return entries


def _weighted_median_column(
    scores: list[float], stakes: list[Fraction], *, kappa: Fraction
) -> float:
    """C = max{v ∈ scores ∪ {0} : Σ_{i: score_i ≥ v} stake_i ≥ κ}; min(scores) if none qualifies."""
    candidates = sorted(set(scores) | {0.0}, reverse=True)
    for level in candidates:
        stake_at_or_above = sum(
            (stake for score, stake in zip(scores, stakes, strict=True) if score >= level),
            Fraction(0),
        )
        if stake_at_or_above >= kappa:
            return level
    return min(scores)


def _u16_floor(proportion: float) -> int:
    return int(proportion_to_u16(np.array([proportion]))[0])


def _liquid_alpha(*, weight: float, bond: float, consensus: float, params: YumaParams) -> float:
    """α_ij of spec §4.9b (``alpha_sigmoid``), from W_b_ij, B_old_ij and the current C_j."""
    buy = min(max(weight - consensus, 0.0), 1.0)
    sell = min(max(bond - weight, 0.0), 1.0)
    difference = buy if weight >= bond else sell
    exponent = min(max(-params.sigmoid_steepness * (difference - 0.5), -20.0), 20.0)
    sigmoid = 1.0 / (1.0 + math.exp(exponent))
    alpha = params.alpha_low + sigmoid * (params.alpha_high - params.alpha_low)
    return min(max(alpha, params.alpha_low), params.alpha_high)


def _legacy_bonds(
    *,
    bonds_old_u16: np.ndarray,
    bond_weights: np.ndarray,
    active_stake: np.ndarray,
    incentive: np.ndarray,
    params: YumaParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§4.9a: (B, D, stored-scale B) from raw u16 old bonds (new-registration columns zeroed)."""
    bonds_old = _column_normalise(bonds_old_u16)
    bonds_delta = _column_normalise(bond_weights * active_stake[:, np.newaxis])
    alpha = params.bonds_alpha
    bonds = alpha * bonds_delta + (1.0 - alpha) * bonds_old
    bonds = np.where(bonds > 0, bonds, 0.0)
    bonds = _column_normalise(bonds)
    dividends = _normalise(bonds @ incentive)
    # Storage scale: column max-upscale (each column's max → 1).
    upscaled = bonds.copy()
    for j in range(bonds.shape[1]):
        column_max = bonds[:, j].max()
        if column_max > 0:
            upscaled[:, j] = bonds[:, j] / column_max
    return bonds, dividends, upscaled


def _yuma3_bonds(
    *,
    bonds_old_u16: np.ndarray,
    bond_weights: np.ndarray,
    bond_weight_entries: np.ndarray,
    consensus: np.ndarray,
    active_stake: np.ndarray,
    incentive: np.ndarray,
    params: YumaParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§4.9b: (B, D, stored-scale B) from raw u16 old bonds (new-registration columns zeroed)."""
    n = bond_weights.shape[0]
    # 1. Absolute old bonds, not normalised.
    bonds_old = bonds_old_u16 / U16_MAX
    # 2. New bonds.
    liquid = params.liquid_alpha and bool(np.any(consensus != 0))
    bonds = np.zeros((n, n), dtype=np.float64)
    if liquid:
        for i in range(n):
            for j in range(n):
                if not bond_weight_entries[i, j]:
                    # Sparse-path quirk (spec §4.9): the chain's liquid-alpha EMA
                    # (mat_ema_alpha_sparse) only emits the entries of the W_b row, so a bond
                    # whose validator holds no W_b entry for miner j is dropped to 0 instead of
                    # decaying as (1 − α)·B_old. An explicit zero weight *is* an entry and decays.
                    bonds[i, j] = 0.0
                    continue
                alpha = _liquid_alpha(
                    weight=float(bond_weights[i, j]),
                    bond=float(bonds_old[i, j]),
                    consensus=float(consensus[j]),
                    params=params,
                )
                decayed = (1.0 - alpha) * bonds_old[i, j]
                bonds[i, j] = min(1.0, decayed + max(0.0, alpha * bond_weights[i, j]))
    else:
        alpha = params.bonds_alpha
        bonds = alpha * bond_weights + (1.0 - alpha) * bonds_old
    bonds = np.where(bonds > 0, bonds, 0.0)
    # 3.–4. Dividends from the column-normalised copy, times active stake.
    bonds_normalised = _column_normalise(bonds)
    dividends = _normalise(active_stake * (bonds_normalised @ incentive))
    # 5. Storage scale: the absolute bonds themselves (no upscale).
    return bonds, dividends, bonds


def reference_epoch(
    inputs: EpochInputs, params: YumaParams, state: EpochState
) -> tuple[EpochOutputs, EpochState]:
    """One Yuma epoch, dense NumPy float64; same contract as ``run_epoch``."""
    n = inputs.n_uids
    state = state.for_uids(n)
    owner = inputs.owner_uid
    uids = range(n)

    # §4.1 activity: inactive_i = last_update_i + cutoff < current_block.
    active = np.array(
        [
            not (
                int(inputs.last_update_block[i]) + params.activity_cutoff_blocks
                < inputs.current_block
            )
            for i in uids
        ],
        dtype=np.bool_,
    )

    # §4.2 stake: threshold mask (owner exempt), then S = s / Σs.
    stake_rao = [int(x) for x in inputs.stake_rao]
    for i in uids:
        if stake_rao[i] < params.stake_threshold_rao and i != owner:
            stake_rao[i] = 0
    stake_total_rao = sum(stake_rao)
    if stake_total_rao > 0:
        stake_weight = np.array([s / stake_total_rao for s in stake_rao], dtype=np.float64)
    else:
        stake_weight = np.zeros(n, dtype=np.float64)

    # §4.3 permits. Effective old permits (owner forced) decide what counts this epoch.
    permit_effective = [bool(state.validator_permit[i]) or i == owner for i in uids]
    # New permits: is_topk_nonzero — stable ascending sort, drop the first n − k; owner forced.
    permit_new = [stake_rao[i] > 0 for i in uids]
    if n >= params.max_validators:
        ascending = sorted(uids, key=lambda i: stake_rao[i])  # Python's sort is stable
        for i in ascending[: n - params.max_validators]:
            permit_new[i] = False
    if owner is not None:
        permit_new[owner] = True

    # §4.4 active stake: S zeroed where inactive or forbidden, normalised.
    counts = np.array([active[i] and permit_effective[i] for i in uids], dtype=np.bool_)
    active_stake = _normalise(np.where(counts, stake_weight, 0.0))

    # §4.5 weights; weight_entries[i, j] says whether the sparse row holds (i, j) (zeros included).
    weights = _dense_from_sparse(inputs.weights, value_column="weight_u16", n_uids=n)
    weight_entries = _entries_from_sparse(inputs.weights, n_uids=n)
    commit_block = inputs.commit_blocks()
    for i in uids:
        if not permit_effective[i]:
            weight_entries[i, :] = False  # forbidden row
        if i != owner:
            weight_entries[i, i] = False  # self-weight, except the owner's
        for j in uids:
            if inputs.last_update_block[i] <= inputs.registered_block[j]:
                weight_entries[i, j] = False  # outdated
            if params.commit_reveal and commit_block[i] < inputs.registered_block[j]:
                weight_entries[i, j] = False  # committed before j registered (§4.5.5)
    weights = np.where(weight_entries, weights, 0.0)
    for i in uids:
        row_sum = weights[i, :].sum()  # a sum of integers: exact
        if row_sum > 0:
            weights[i, :] = weights[i, :] / row_sum

    # §4.6 consensus over validators with A_i > 0, exact stakes a_i = s_i / Σ s.
    kappa = Fraction(params.kappa_u16, U16_MAX)
    staked = [i for i in uids if counts[i] and stake_rao[i] > 0]
    staked_total_rao = sum(stake_rao[i] for i in staked)
    consensus = np.zeros(n, dtype=np.float64)
    if staked:
        stakes = [Fraction(stake_rao[i], staked_total_rao) for i in staked]
        for j in uids:
            scores = [float(weights[i, j]) for i in staked]
            consensus[j] = _weighted_median_column(scores, stakes, kappa=kappa)

    # §4.7 clipping and validator trust. As the chain's col_clip_sparse: an entry is kept if
    # W_ij ≤ C_j (explicit zeros always), else clipped to C_j, or dropped when C_j = 0.
    weights_clipped = np.minimum(weights, consensus[np.newaxis, :])
    clipped_entries = weight_entries & ((weights == 0.0) | (consensus[np.newaxis, :] > 0.0))
    validator_trust = weights_clipped.sum(axis=1)

    # §4.8 ranks and incentive.
    ranks = active_stake @ weights_clipped
    incentive = _normalise(ranks)

    # §4.9 bond weights, literally W + β(W̄ − W), with the chain's interpolate_sparse entry sets:
    # β = 0 → W's entries, β = 1 → W̄'s entries, otherwise entries with a positive result.
    if params.bonds_penalty_u16 == 0:
        bond_weights = weights.copy()
        bond_weight_entries = weight_entries.copy()
    elif params.bonds_penalty_u16 == U16_MAX:
        bond_weights = weights_clipped.copy()
        bond_weight_entries = clipped_entries.copy()
    else:
        bond_weights = weights + params.bonds_penalty * (weights_clipped - weights)
        bond_weight_entries = weight_entries & (bond_weights > 0)
    bond_weights = np.where(bond_weight_entries, bond_weights, 0.0)

    # Newly registered columns: reg_j ≥ last_tempo.
    if inputs.last_step_block == 0:
        last_tempo_block = max(0, inputs.current_block - inputs.tempo_blocks)
    else:
        last_tempo_block = inputs.last_step_block + 1
    bonds_old = _dense_from_sparse(state.bonds, value_column="bond_u16", n_uids=n)
    for j in uids:
        if inputs.registered_block[j] >= last_tempo_block:
            bonds_old[:, j] = 0.0

    if params.yuma3:
        bonds, dividends, bonds_to_store = _yuma3_bonds(
            bonds_old_u16=bonds_old,
            bond_weights=bond_weights,
            bond_weight_entries=bond_weight_entries,
            consensus=consensus,
            active_stake=active_stake,
            incentive=incentive,
            params=params,
        )
    else:
        bonds, dividends, bonds_to_store = _legacy_bonds(
            bonds_old_u16=bonds_old,
            bond_weights=bond_weights,
            active_stake=active_stake,
            incentive=incentive,
            params=params,
        )

    # §4.10 emission shares.
    emission_sum = incentive.sum() + dividends.sum()
    if emission_sum > 0:
        server_share = incentive / emission_sum
        validator_share = dividends / emission_sum
    else:
        server_share = np.zeros(n, dtype=np.float64)
        validator_share = active_stake.copy() if active_stake.sum() > 0 else stake_weight.copy()

    # Storage: floor to u16 (legacy: of the column max-upscaled bonds), rows of validators with
    # a new permit only.
    stored: list[tuple[int, int, int]] = []
    float_entries: list[tuple[int, int, float]] = []
    for j in uids:
        for i in uids:
            if bonds[i, j] > 0:
                float_entries.append((i, j, float(bonds[i, j])))
                bond_u16 = _u16_floor(bonds_to_store[i, j])
                if permit_new[i] and bond_u16 > 0:
                    stored.append((i, j, bond_u16))
    stored.sort()
    float_entries.sort()

    outputs = EpochOutputs(
        stake_weight=stake_weight,
        active_stake=active_stake,
        active=active,
        validator_permit=np.array(permit_new, dtype=np.bool_),
        validator_trust=validator_trust,
        consensus=consensus,
        incentive=incentive,
        dividends=dividends,
        server_emission_share=server_share,
        validator_emission_share=validator_share,
        bonds=_table(float_entries, schema=BONDS_FLOAT_SCHEMA),
    )
    next_state = EpochState(
        bonds=_table(stored, schema=BONDS_U16_SCHEMA),
        validator_permit=np.array(permit_new, dtype=np.bool_),
    )
    return outputs, next_state


def _table(
    entries: list[tuple[int, int, int]] | list[tuple[int, int, float]], *, schema: pa.Schema
) -> pa.Table:
    columns = list(zip(*entries, strict=True)) if entries else [(), (), ()]
    return pa.Table.from_arrays(
        [
            pa.array(list(values), type=field.type)
            for values, field in zip(columns, schema, strict=True)
        ],
        schema=schema,
    )


__all__ = ["reference_epoch"]
