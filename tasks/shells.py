"""Thin Prefect task shells around the epoch stages; the logic lives in the stage modules.

Tasks are coarse (one per stage) because each Prefect task costs ~100 ms; fine-grained work fans
out over Dask inside the evaluate task. Caching is off: exactly-once belongs to the ledger commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import distributed
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from ledger.store import CommitResult, Ledger
from tasks.consensus.stage import ConsensusOutcome, run_consensus
from tasks.emit import Payouts, compute_payouts, epoch_transactions
from tasks.evaluate.stage import EvaluationOutcome, evaluate_epoch
from tasks.gather import EpochContext, build_context
from tasks.track import log_epoch
from tasks.weights import scores_to_weights


@task(name="gather", cache_policy=NO_CACHE)
def gather(ledger_dir: Path, subnet: str) -> EpochContext:
    ledger = Ledger.open(ledger_dir)
    return build_context(ledger.state(), subnet=subnet, head_hash=ledger.head_hash())


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(
    ctx: EpochContext, *, artifacts_root: Path, dask_address: str | None
) -> EvaluationOutcome:
    if dask_address:
        with distributed.Client(dask_address) as client:
            return evaluate_epoch(ctx, client=client, artifacts_root=artifacts_root)
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        return evaluate_epoch(ctx, client=client, artifacts_root=artifacts_root)


@task(name="consensus", cache_policy=NO_CACHE)
def consensus(ctx: EpochContext, evaluation: EvaluationOutcome) -> ConsensusOutcome:
    temperature = float(ctx.config.get("weights_temperature", 0.02))
    weights = {
        validator: scores_to_weights(row, temperature=temperature)
        for validator, row in evaluation.scores.items()
    }
    return run_consensus(ctx, weights)


@task(name="emit", cache_policy=NO_CACHE)
def emit(
    ledger_dir: Path, ctx: EpochContext, outcome: ConsensusOutcome
) -> tuple[Payouts, CommitResult]:
    out = outcome.outputs
    payouts = compute_payouts(
        emission_rao=ctx.emission_rao,
        incentive=out.incentive.tolist(),
        dividends=out.dividends.tolist(),
        validator_share=out.validator_emission_share.tolist(),
        split_ppm=dict(ctx.config["emission_split_ppm"]),
    )
    txs = epoch_transactions(ctx, payouts, consensus_state=outcome.state)
    return payouts, Ledger.open(ledger_dir).commit(txs)


@task(name="track", cache_policy=NO_CACHE)
def track(
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    ctx: EpochContext,
    metagraph: pa.Table,
    aggregates: dict[str, float],
    tags: dict[str, str],
) -> str:
    params: dict[str, Any] = {
        "subnet": ctx.subnet,
        "epoch": ctx.epoch,
        "block": ctx.block,
        "tempo_blocks": ctx.tempo_blocks,
        "emission_rao": ctx.emission_rao,
        "seed": ctx.seed_hex,
        "evaluation_set": ctx.config.get("evaluation_set"),
        "evaluation_set_hash": ctx.config.get("evaluation_set_hash"),
        "model_family": ctx.config.get("model_family"),
        "sample_size": ctx.config.get("sample_size"),
        "weights_temperature": ctx.config.get("weights_temperature"),
        **{f"yuma.{k}": v for k, v in dict(ctx.config.get("yuma", {})).items()},
    }
    return log_epoch(
        tracking_uri=tracking_uri,
        artifacts_dir=artifacts_dir,
        subnet=ctx.subnet,
        epoch=ctx.epoch,
        params=params,
        metagraph=metagraph,
        aggregates=aggregates,
        tags=tags,
    )
