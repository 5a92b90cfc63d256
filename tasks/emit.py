"""Stage 4 — emit: the epoch's exact integer payouts as one batch of ledger entries.

The money rules live in ``ledger.payouts`` (the ledger recomputes every epoch and refuses any
other split); this stage only turns the ledger's plan into transactions and commits them.

Invariants:
- ``epoch_batch`` is pure: the batch starts with one ``epoch`` entry announcing exactly the
  plan's total, whose payload records only the block, seed, parent hash, the schedule, the
  unissued rest, the integer ``shares`` the ledger splits by, the evaluation's rejected uids and
  sample size, and the ``records`` references (hash and row count) of the epoch's record tables
  (``tasks.records``); then one entry per planned payout. The tables travel beside the
  transactions and ``Ledger.commit`` writes them before the batch.
- ``plan_from_context`` is the plan of the state the epoch gathered (pure in the context), so
  two runs of the same epoch propose identical batches and the second is a no-op (``Exists``).
- If the ledger changed between gather and commit (a stake, a registration, another subnet's
  epoch) and refuses the proposal, ``commit_epoch`` re-plans on the fresh state, at most
  ``EMIT_ATTEMPTS_MAX`` times; an epoch another run already committed with other results is an
  ``EpochConflict``, never a second payment.
- Transaction ids are derived from (subnet, epoch, kind, uid[, coldkey]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa

from taoflow.ledger.epoch_records import RECORDS_KEY, record_refs
from taoflow.ledger.errors import BatchRejected
from taoflow.ledger.keys import Keypair
from taoflow.ledger.payouts import (
    DelegationSplit,
    EpochPlan,
    EpochShares,
    PayoutEntry,
    Payouts,
    Recipient,
    compute_payouts,
    plan_epoch,
    split_dividend,
)
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.store import CommitResult, Ledger
from taoflow.tasks.errors import StageError
from taoflow.tasks.gather import EpochContext
from taoflow.tasks.records import EpochRecords

__all__ = [
    "DelegationSplit",
    "EpochBatch",
    "EpochConflict",
    "Payouts",
    "commit_epoch",
    "compute_payouts",
    "epoch_batch",
    "plan_from_context",
    "split_dividend",
]

EMIT_ATTEMPTS_MAX: Final = 3
"""Re-plans of one epoch commit when the ledger changed between gather and commit."""


class EpochConflict(StageError):
    """The epoch was committed by another run with other results, or could not be committed."""


def plan_from_context(ctx: EpochContext, shares: EpochShares) -> EpochPlan:
    """The ledger's plan for the epoch on the state ``ctx`` was gathered from."""
    return plan_epoch(
        scheduled_rao=ctx.emission_rao,
        shares=shares,
        split_ppm=ctx.config.split_ppm(),
        recipients={
            n.uid: Recipient(
                uid=n.uid,
                hotkey=n.hotkey,
                coldkey=n.coldkey,
                take_ppm=n.take_ppm,
                stakers=n.stakers,
            )
            for n in ctx.neurons
        },
        owner_coldkey=ctx.owner_coldkey,
        owner_hotkey=ctx.owner_hotkey,
    )


@dataclass(frozen=True)
class EpochBatch:
    """What one epoch commits: its transactions and the record tables its payload names."""

    txs: tuple[Tx, ...]
    tables: Mapping[str, pa.Table]


def epoch_batch(
    ctx: EpochContext, plan: EpochPlan, *, shares: EpochShares, records: EpochRecords
) -> EpochBatch:
    """The epoch's ledger batch: the ``epoch`` entry, then every planned payout, and the record
    tables (with the emission ``plan`` pays) that the ``epoch`` entry names by hash."""
    prefix = f"epoch/{ctx.subnet}/{ctx.epoch}"
    tables = records.tables(plan)
    payload = {
        "block": ctx.block,
        "seed": ctx.seed_hex,
        "parent_hash": ctx.parent_hash,
        "scheduled_rao": plan.scheduled_rao,
        "unissued_rao": plan.payouts.unissued_rao,
        "shares": shares.to_payload(),
        "evaluation": records.evaluation.to_payload(),
        RECORDS_KEY: record_refs(tables),
    }
    txs = [
        _entry(ctx, prefix, Kind.EPOCH, amount_rao=plan.total_rao, payload=canonical_json(payload))
    ]
    txs.extend(_emission_tx(ctx, prefix, entry) for entry in plan.entries)
    return EpochBatch(txs=tuple(txs), tables=tables)


def commit_epoch(
    ledger_dir: Path,
    ctx: EpochContext,
    shares: EpochShares,
    *,
    records: EpochRecords,
    cosigners: Sequence[Keypair] = (),
) -> tuple[Payouts, CommitResult]:
    """Commit the epoch's batch and records, re-planning on the fresh state if the ledger moved
    on (the records' emission follows the plan committed).

    ``cosigners`` (the hosted validators' hotkeys) co-sign the batch hash.
    """
    plan = plan_from_context(ctx, shares)
    for attempt in range(EMIT_ATTEMPTS_MAX):
        batch = epoch_batch(ctx, plan, shares=shares, records=records)
        ledger = Ledger.shared(ledger_dir)
        try:
            return plan.payouts, ledger.commit(
                list(batch.txs), cosigners=cosigners, records=batch.tables
            )
        except BatchRejected as exc:
            state = ledger.state()
            if state.last_epoch.get(ctx.subnet, -1) >= ctx.epoch:
                raise EpochConflict(
                    f"epoch {ctx.epoch} of {ctx.subnet!r} was already committed with other results"
                ) from None
            if attempt + 1 == EMIT_ATTEMPTS_MAX:
                raise EpochConflict(
                    f"epoch {ctx.epoch} of {ctx.subnet!r} not committed after "
                    f"{EMIT_ATTEMPTS_MAX} attempts: {exc.reason}"
                ) from None
            plan = state.epoch_plan(ctx.subnet, shares)
    raise EpochConflict("unreachable")  # the loop returns or raises


def _emission_tx(ctx: EpochContext, prefix: str, entry: PayoutEntry) -> Tx:
    if entry.kind == Kind.EMISSION_OWNER:
        tx_id = f"{prefix}/owner"
    elif entry.kind == Kind.EMISSION_DELEGATOR:
        tx_id = f"{prefix}/{entry.kind.value}/{entry.uid}/{entry.coldkey}"
    else:
        tx_id = f"{prefix}/{entry.kind.value}/{entry.uid}"
    return _entry(
        ctx,
        tx_id,
        entry.kind,
        coldkey=entry.coldkey,
        hotkey=entry.hotkey,
        uid=entry.uid,
        amount_rao=entry.amount_rao,
    )


def _entry(
    ctx: EpochContext,
    tx_id: str,
    kind: Kind,
    *,
    amount_rao: int,
    coldkey: str = "",
    hotkey: str = "",
    uid: int = -1,
    payload: str = "{}",
) -> Tx:
    return Tx(
        tx_id,
        kind,
        subnet=ctx.subnet,
        epoch=ctx.epoch,
        block=ctx.block,
        coldkey=coldkey,
        hotkey=hotkey,
        uid=uid,
        amount_rao=amount_rao,
        payload=payload,
    )
