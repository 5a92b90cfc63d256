"""The metagraph of an epoch: one row per uid with stake, consensus outputs and payouts.

Pure. Invariants: one row per uid in uid order; amounts in rao are integers (the ``_tao`` columns
are the same amounts divided by 1e9 for display and metrics only).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.tasks.consensus.types import EpochOutputs
from taoflow.tasks.emit import Payouts
from taoflow.tasks.gather import EpochContext


def build_metagraph(
    ctx: EpochContext,
    *,
    outputs: EpochOutputs,
    payouts: Payouts,
    scores: Mapping[int, float],
    errors: Mapping[int, str],
) -> pa.Table:
    rows = []
    for n in ctx.neurons:
        emission_rao = payouts.incentive_rao[n.uid] + payouts.dividends_rao[n.uid]
        rows.append(
            {
                "epoch": ctx.epoch,
                "uid": n.uid,
                "hotkey": n.hotkey,
                "coldkey": n.coldkey,
                "role": n.role,
                "stake_rao": n.stake_rao,
                "stake_tao": n.stake_rao / RAO_PER_TAO,
                "score": scores.get(n.uid),
                "validator_permit": bool(outputs.validator_permit[n.uid]),
                "active": bool(outputs.active[n.uid]),
                "validator_trust": float(outputs.validator_trust[n.uid]),
                "consensus": float(outputs.consensus[n.uid]),
                "incentive": float(outputs.incentive[n.uid]),
                "dividends": float(outputs.dividends[n.uid]),
                "emission_rao": emission_rao,
                "emission_tao": emission_rao / RAO_PER_TAO,
                "artifact_digest": n.artifact_digest,
                "error": errors.get(n.uid),
            }
        )
    return pa.Table.from_pylist(rows)


def epoch_aggregates(
    ctx: EpochContext,
    *,
    outputs: EpochOutputs,
    payouts: Payouts,
    scores: Mapping[int, float],
) -> dict[str, float]:
    """The epoch's headline numbers for tracking: emission (τ), best score, mean validator trust."""
    return {
        "emission_tao": payouts.total_rao / RAO_PER_TAO,
        "best_score": max(scores.values(), default=0.0),
        "validator_trust_mean": float(outputs.validator_trust.mean()) if ctx.n else 0.0,
    }


def epoch_tags(
    ctx: EpochContext, *, batch_hash: str | None, flow_run_id: str | None
) -> dict[str, str]:
    """Tags that tie the epoch's tracking run to its ledger batch and Prefect flow run."""
    return {
        "taoflow.ledger_batch_hash": batch_hash or "",
        "taoflow.prefect_flow_run_id": flow_run_id or "",
        "taoflow.seed": ctx.seed_hex,
    }
