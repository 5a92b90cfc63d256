"""Thin Prefect task shells around the epoch stages; the logic lives in the stage modules.

Tasks are coarse (one per stage) because each Prefect task costs ~100 ms; fine-grained work fans
out over Dask inside the evaluate task. Caching is off: exactly-once belongs to the ledger commit.

Logging: each task logs one concise line about its stage (``evaluate`` adds one per rejected
model) through the Prefect run logger (``tasks.run_logs``), so the flow run's Logs tab tells the
epoch's story; the lines are written by ``tasks.summary`` from the stage's result.

Timing: each task measures its stage call with ``time.perf_counter`` (the stage call only, not
its log line; for ``evaluate`` the call after the Dask client is connected) and adds the seconds to
the dict that :func:`start_stage_timings` installed for the current flow run (a context variable;
nothing is recorded when none is installed), so a flow can tell its stages' own compute from its
orchestration overhead.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.payouts import EpochShares
from taoflow.ledger.store import CommitResult, Ledger
from taoflow.tasks.consensus.stage import ConsensusOutcome, run_consensus
from taoflow.tasks.cosign import hosted_cosigners
from taoflow.tasks.emit import Payouts, commit_epoch
from taoflow.tasks.evaluate.fanout import local_cluster_client
from taoflow.tasks.evaluate.stage import EvaluationOutcome, evaluate_epoch
from taoflow.tasks.gather import EpochContext, gather_context
from taoflow.tasks.governance.boundary import GovernanceCommit, commit_governance_on
from taoflow.tasks.records import epoch_records
from taoflow.tasks.registry import ChampionCandidate
from taoflow.tasks.remote_store import FetchPolicy
from taoflow.tasks.run_logs import quiet_dask, run_logger
from taoflow.tasks.summary import commit_line, consensus_line, evaluation_lines, gather_line
from taoflow.tasks.track_outbox import log_epoch_or_queue
from taoflow.tasks.track_reconcile import reconcile_tracking
from taoflow.tasks.weights import ValidatorPolicy, scores_to_weights

_STAGE_COMPUTE_S: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "taoflow_stage_compute_s", default=None
)


def start_stage_timings() -> dict[str, float]:
    """Install (and return) a fresh stage name → compute seconds dict for this flow run."""
    timings: dict[str, float] = {}
    _STAGE_COMPUTE_S.set(timings)
    return timings


@contextlib.contextmanager
def _timed(stage: str) -> Iterator[None]:
    started_s = time.perf_counter()
    try:
        yield
    finally:
        timings = _STAGE_COMPUTE_S.get()
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started_s


@task(name="governance", cache_policy=NO_CACHE)
def governance(ledger_dir: Path, subnet: str) -> GovernanceCommit:
    """Commit the tallies and activations due at this boundary, before ``subnet``'s epoch is
    gathered: one log line per committed entry and a markdown artifact (none when nothing was
    due; an artifact that cannot be published is a warning, the commit stands).

    No proposal can stall an epoch: if the ledger refuses the entries it computed itself (a
    defect, never a participant's doing), the refusal is logged as an error and the epoch runs
    with the parameters in effect; the entries stay due at the next boundary.
    """
    logger = run_logger()
    with _timed("governance"):
        ledger = Ledger.shared(ledger_dir)
        try:
            commit = commit_governance_on(ledger)
        except BatchRejected as exc:
            logger.error(f"governance entries not committed, the epoch goes on: {exc}")
            return GovernanceCommit(batch_no=None, batch_hash=None, entries=(), problem=str(exc))
    for entry in commit.entries:
        logger.info(f"governance: {entry.summary}")
    if commit.entries:
        epoch = ledger.state().last_epoch.get(subnet, -1) + 1
        try:
            publish_governance_artifact(commit, subnet=subnet, epoch=epoch)
        except Exception as exc:  # artifacts are a convenience; the entries are committed
            logging.getLogger("taoflow.governance").warning(
                "Prefect governance artifact not published: %s", exc
            )
    return commit


def publish_governance_artifact(commit: GovernanceCommit, *, subnet: str, epoch: int) -> str:
    """The markdown artifact of a boundary's governance entries; its key."""
    from prefect.artifacts import create_markdown_artifact

    from taoflow.tasks.governance.boundary import markdown
    from taoflow.tasks.summary import artifact_key

    key = "governance-" + artifact_key(subnet, f"epoch-{epoch}")
    title = f"Governance before {subnet} epoch {epoch}"
    create_markdown_artifact(markdown=markdown(commit, title=title), key=key, description=title)
    return key


@task(name="gather", cache_policy=NO_CACHE)
def gather(ledger_dir: Path, subnet: str) -> EpochContext:
    with _timed("gather"):
        ctx = gather_context(Ledger.shared(ledger_dir), subnet=subnet)
    run_logger().info(gather_line(ctx))
    return ctx


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(
    ctx: EpochContext,
    *,
    artifacts_root: Path,
    dask_address: str | None,
    fetch_policy: FetchPolicy | None = None,
) -> EvaluationOutcome:
    """Evaluate on ``dask_address``'s cluster, or on a fresh local one whose shutdown is bounded
    (stopped workers are killed); fetches only what ``fetch_policy`` allows."""
    quiet_dask()
    if dask_address:
        with distributed.Client(dask_address) as client, _timed("evaluate"):
            outcome = evaluate_epoch(
                ctx, client=client, artifacts_root=artifacts_root, fetch_policy=fetch_policy
            )
    else:
        with (
            local_cluster_client(n_workers=1, threads_per_worker=1) as client,
            _timed("evaluate"),
        ):
            outcome = evaluate_epoch(
                ctx, client=client, artifacts_root=artifacts_root, fetch_policy=fetch_policy
            )
    logger = run_logger()
    for line in evaluation_lines(outcome):
        logger.info(line)
    return outcome


def hosted_weights(ctx: EpochContext, evaluation: EvaluationOutcome) -> dict[int, dict[int, int]]:
    """Each hosted validator's u16 weights from its own scores (SN9 pairwise wins).

    A uid whose evaluation failed (``evaluation.errors``) gets weight 0: it earns nothing. A
    validator whose policy is ``win_policy: "bootstrap"`` decides wins from its rows of
    ``evaluation.correctness``, resampled with a seed from the epoch seed and its hotkey.
    """
    commit_blocks = {n.uid: n.artifact_block for n in ctx.neurons if n.artifact_block is not None}
    default = dict(ctx.config.validator_policy)
    weights = {}
    for validator, row in evaluation.scores.items():
        neuron = ctx.neurons[validator]
        policy = ValidatorPolicy.from_settings(default, neuron.validator_settings or {})
        rows = None
        if policy.needs_rows and evaluation.correctness is not None:
            rows = evaluation.correctness.rows_of(
                validator, seed_hex=ctx.seed_hex, hotkey=neuron.hotkey
            )
        weights[validator] = scores_to_weights(
            {uid: score for uid, score in row.items() if uid in commit_blocks},
            commit_blocks=commit_blocks,
            current_block=ctx.block,
            policy=policy,
            rejected=frozenset(evaluation.errors),
            rows=rows,
        )
    return weights


def consensus_of(ctx: EpochContext, evaluation: EvaluationOutcome) -> ConsensusOutcome:
    """The epoch's consensus: hosted validators' weights from ``evaluation``, external ones'
    revealed weights (from their commit block), Yuma in DuckDB. Pure; replays call it too."""
    weights = hosted_weights(ctx, evaluation)
    last_update: dict[int, int] = {}
    for uid, (row, commit_block) in ctx.external_weights.items():
        if uid not in weights:  # hosted validators' own evaluation takes precedence
            weights[uid] = row
            last_update[uid] = commit_block
    return run_consensus(ctx, weights, last_update_block=last_update)


@task(name="consensus", cache_policy=NO_CACHE)
def consensus(ctx: EpochContext, evaluation: EvaluationOutcome) -> ConsensusOutcome:
    with _timed("consensus"):
        outcome = consensus_of(ctx, evaluation)
    run_logger().info(consensus_line(ctx, outcome.outputs))
    return outcome


@task(name="emit", cache_policy=NO_CACHE)
def emit(
    ledger_dir: Path,
    ctx: EpochContext,
    outcome: ConsensusOutcome,
    evaluation: EvaluationOutcome,
    *,
    wallets_dir: Path | None = None,
) -> tuple[Payouts, CommitResult]:
    payouts, commit = _emit(ledger_dir, ctx, outcome, evaluation, wallets_dir=wallets_dir)
    line = commit_line(subnet=ctx.subnet, epoch=ctx.epoch, commit=commit, payouts=payouts)
    run_logger().info(line)
    return payouts, commit


@_timed("emit")  # the body is the stage call
def _emit(
    ledger_dir: Path,
    ctx: EpochContext,
    outcome: ConsensusOutcome,
    evaluation: EvaluationOutcome,
    *,
    wallets_dir: Path | None,
) -> tuple[Payouts, CommitResult]:
    out = outcome.outputs
    shares = EpochShares.from_consensus(
        hotkeys=[n.hotkey for n in ctx.neurons],
        incentive=out.incentive.tolist(),
        dividends=out.dividends.tolist(),
        validator_share=out.validator_emission_share.tolist(),
        rejected_uids=frozenset(evaluation.errors),
    )
    records = epoch_records(
        ctx,
        outcome,
        scores=evaluation.scores,
        errors=evaluation.errors,
        sample_size=evaluation.sample_size,
    )
    cosigners = hosted_cosigners(ctx, wallets_root=wallets_dir)
    return commit_epoch(ledger_dir, ctx, shares, records=records, cosigners=cosigners)


@task(name="track", cache_policy=NO_CACHE)
@_timed("track")  # the body is the stage call
def track(
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    ctx: EpochContext,
    metagraph: pa.Table,
    tags: dict[str, str],
    outbox_root: Path,
    weights: pa.Table | None = None,
    champion: ChampionCandidate | None = None,
    emission_rao: int = 0,
    commit: CommitResult | None = None,
    ledger_dir: Path | None = None,
) -> tuple[str | None, str | None]:
    """Publish the Prefect artifacts, then log the epoch's MLflow run (queued if MLflow is down).

    One task for both keeps the per-task orchestration cost down; neither can block the ledger,
    which is already committed. With ``ledger_dir``, committed epochs that still have no run
    (a crash after an earlier commit) are then backfilled, a bounded number per epoch.
    """
    if commit is not None:
        try:
            publish_artifacts(
                ctx=ctx, metagraph=metagraph, emission_rao=emission_rao, commit=commit
            )
        except Exception as exc:  # artifacts are a convenience; MLflow logging still runs
            logging.getLogger("taoflow.track").warning("Prefect artifacts not published: %s", exc)
    params: dict[str, Any] = {
        "subnet": ctx.subnet,
        "epoch": ctx.epoch,
        "block": ctx.block,
        "tempo_blocks": ctx.tempo_blocks,
        "emission_rao": ctx.emission_rao,
        "seed": ctx.seed_hex,
        "evaluation_set": ctx.config.evaluation_set,
        "evaluation_set_hash": ctx.config.evaluation_set_hash,
        "model_family": ctx.config.model_family,
        "sample_size": ctx.config.sample_size,
        **{f"validator_policy.{k}": v for k, v in dict(ctx.config.validator_policy).items()},
        **{f"yuma.{k}": v for k, v in dict(ctx.config.yuma).items()},
    }
    logged = log_epoch_or_queue(
        outbox_root=outbox_root,
        tracking_uri=tracking_uri,
        artifacts_dir=artifacts_dir,
        subnet=ctx.subnet,
        epoch=ctx.epoch,
        params=params,
        metagraph=metagraph,
        emission_rao=emission_rao,
        tags=tags,
        weights=weights,
        champion=champion,
    )
    if ledger_dir is not None and logged[0] is not None:
        try:
            reconcile_tracking(
                ledger_dir=ledger_dir,
                tracking_uri=tracking_uri,
                artifacts_dir=artifacts_dir,
                outbox_root=outbox_root,
            )
        except Exception as exc:  # a later epoch (or `taoflow track reconcile`) retries
            logging.getLogger("taoflow.track").warning("MLflow backfill skipped: %s", exc)
    return logged


def publish_artifacts(
    *, ctx: EpochContext, metagraph: pa.Table, emission_rao: int, commit: CommitResult
) -> None:
    """Prefect artifacts: the metagraph table and a markdown summary of the epoch."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from taoflow.tasks.summary import artifact_key, markdown_summary, table_rows

    rows = metagraph.to_pylist()
    create_table_artifact(
        table=table_rows(rows),
        key=artifact_key(ctx.subnet, "metagraph"),
        description=f"{ctx.subnet} metagraph after epoch {ctx.epoch}",
    )
    create_markdown_artifact(
        markdown=markdown_summary(
            subnet=ctx.subnet,
            epoch=ctx.epoch,
            block=ctx.block,
            emission_rao=emission_rao,
            batch_no=commit.batch_no,
            batch_hash=commit.batch_hash,
            metagraph=rows,
        ),
        key=artifact_key(ctx.subnet, "summary"),
        description=f"{ctx.subnet} epoch {ctx.epoch}",
    )
