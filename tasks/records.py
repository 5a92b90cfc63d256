"""An epoch's columnar records, built from what consensus and evaluation computed.

The epoch entry's payload keeps only what the money rules read; everything else an epoch
computed is four typed Arrow tables (``ledger.epoch_records``), bound into the batch by hash:
``weights`` (the u16 weights consensus read), ``scores`` (each hosted validator's score per
miner), ``bonds`` (the u16 bonds stored for the next epoch) and ``uids`` (one row per uid: stake,
permit, activity, the consensus vectors, the rao it was paid, its mean score, error and digest).

Invariants:
- Tables are built column-wise from numpy and Arrow (one Python step per neuron only where the
  input is one Python object per neuron), conformed to their record schema, and sorted: weights,
  scores and bonds by (validator, miner), uids by uid.
- ``EpochRecords`` holds everything but the payment; ``EpochRecords.tables(plan)`` fills the
  ``uids`` table's ``emission_rao`` from the plan actually committed (the sum of that uid's
  incentive, dividend and delegator entries; the owner's entry has no uid), so a re-planned
  commit records what it paid.
- ``score`` is the mean over the validators that scored the uid (NaN when none scored it);
  ``error`` and ``artifact_digest`` are "" when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa

from taoflow.ledger.epoch_records import UID_FLOAT_COLUMNS, conform
from taoflow.ledger.payouts import EpochPlan
from taoflow.ledger.schema import Kind
from taoflow.tasks.consensus.stage import ConsensusOutcome
from taoflow.tasks.gather import EpochContext

UID_EMISSION_KINDS: Final = frozenset(
    {Kind.EMISSION_INCENTIVE, Kind.EMISSION_DIVIDEND, Kind.EMISSION_DELEGATOR}
)
"""Payout kinds that count as a uid's emission (the owner's cut is not a uid's)."""
EMISSION_COLUMN: Final = "emission_rao"


@dataclass(frozen=True)
class EpochEvaluation:
    """What the money rules read of an evaluation: rejected uids (with why) and the sample size."""

    errors: Mapping[int, str]
    sample_size: int

    def to_payload(self) -> dict[str, Any]:
        """The payload's ``evaluation`` object (``ledger.payouts.EpochShares.from_payload``)."""
        return {
            "errors": {str(uid): reason for uid, reason in sorted(self.errors.items())},
            "sample_size": self.sample_size,
        }


@dataclass(frozen=True)
class EpochRecords:
    """An epoch's record tables before payment, and its evaluation summary for the payload."""

    weights: pa.Table
    scores: pa.Table
    bonds: pa.Table
    uids: pa.Table
    """The ``uids`` record with ``emission_rao`` still 0 (``tables`` fills it)."""
    evaluation: EpochEvaluation

    def tables(self, plan: EpochPlan) -> dict[str, pa.Table]:
        """The record tables of the epoch when it pays ``plan``."""
        index = self.uids.schema.get_field_index(EMISSION_COLUMN)
        emission = pa.array(emission_by_uid(plan, uids=self.uids.num_rows), type=pa.int64())
        uids = self.uids.set_column(index, self.uids.schema.field(index), emission)
        return {
            "weights": self.weights,
            "scores": self.scores,
            "bonds": self.bonds,
            "uids": conform("uids", uids),
        }


def emission_by_uid(plan: EpochPlan, *, uids: int) -> np.ndarray:
    """Rao each uid ``0 … uids-1`` is paid by ``plan`` (incentive, dividend, delegator entries)."""
    paid = [e for e in plan.entries if e.kind in UID_EMISSION_KINDS and 0 <= e.uid < uids]
    out = np.zeros(uids, dtype=np.int64)
    np.add.at(
        out,
        np.fromiter((e.uid for e in paid), dtype=np.int64, count=len(paid)),
        np.fromiter((e.amount_rao for e in paid), dtype=np.int64, count=len(paid)),
    )
    return out


def _sorted_pairs(validator: np.ndarray, miner: np.ndarray) -> np.ndarray:
    return np.lexsort((miner, validator))


def scores_table(scores: Mapping[int, Mapping[int, float]]) -> pa.Table:
    """The ``scores`` record: validator uid → miner uid → score, sorted by (validator, miner)."""
    validators = sorted(scores)
    counts = [len(scores[v]) for v in validators]
    total = sum(counts)
    validator = np.repeat(np.asarray(validators, dtype=np.int64), counts)
    miner = np.fromiter((m for v in validators for m in scores[v]), dtype=np.int64, count=total)
    score = np.fromiter(
        (s for v in validators for s in scores[v].values()), dtype=np.float64, count=total
    )
    order = _sorted_pairs(validator, miner)
    table = pa.table({"validator": validator[order], "miner": miner[order], "score": score[order]})
    return conform("scores", table)


def mean_scores(scores: pa.Table, *, uids: int) -> np.ndarray:
    """Each uid's mean score over the validators that scored it (NaN when none did)."""
    miner = scores.column("miner").to_numpy()
    inside = miner < uids
    miner = miner[inside]
    total = np.bincount(miner, weights=scores.column("score").to_numpy()[inside], minlength=uids)
    count = np.bincount(miner, minlength=uids)
    out = np.full(uids, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _pairs_table(name: str, table: pa.Table, value: str) -> pa.Table:
    """``table`` (validator, miner, ``value``) as record ``name``, sorted by (validator, miner)."""
    validator = table.column("validator").to_numpy()
    miner = table.column("miner").to_numpy()
    order = pa.array(_sorted_pairs(validator, miner))
    return conform(name, table.select(["validator", "miner", value]).take(order))


def uids_table(
    ctx: EpochContext, outcome: ConsensusOutcome, *, scores: pa.Table, errors: Mapping[int, str]
) -> pa.Table:
    """The ``uids`` record of the epoch (``emission_rao`` 0 until ``EpochRecords.tables``)."""
    out = outcome.outputs
    n = ctx.n
    columns: dict[str, Any] = {
        "uid": np.arange(n, dtype=np.int32),
        "hotkey": pa.array([neuron.hotkey for neuron in ctx.neurons], type=pa.string()),
        "stake_rao": np.fromiter((nv.stake_rao for nv in ctx.neurons), dtype=np.int64, count=n),
        "permit": np.asarray(outcome.state.validator_permit, dtype=np.bool_),
        "active": np.asarray(out.active, dtype=np.bool_),
    }
    columns.update({name: np.asarray(getattr(out, name)) for name in UID_FLOAT_COLUMNS})
    columns[EMISSION_COLUMN] = np.zeros(n, dtype=np.int64)
    columns["score"] = mean_scores(scores, uids=n)
    columns["error"] = pa.array([errors.get(uid, "") for uid in range(n)], type=pa.string())
    columns["artifact_digest"] = pa.array(
        [neuron.artifact_digest or "" for neuron in ctx.neurons], type=pa.string()
    )
    return conform("uids", pa.table(columns))


def epoch_records(
    ctx: EpochContext,
    outcome: ConsensusOutcome,
    *,
    scores: Mapping[int, Mapping[int, float]],
    errors: Mapping[int, str],
    sample_size: int,
) -> EpochRecords:
    """The epoch's records from consensus (``outcome``) and evaluation (``scores``, ``errors``)."""
    scored = scores_table(scores)
    return EpochRecords(
        weights=_pairs_table("weights", outcome.weights, "weight_u16"),
        scores=scored,
        bonds=_pairs_table("bonds", outcome.state.bonds, "bond_u16"),
        uids=uids_table(ctx, outcome, scores=scored, errors=errors),
        evaluation=EpochEvaluation(errors=dict(errors), sample_size=sample_size),
    )
