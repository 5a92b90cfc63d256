"""Read-side questions answered from the ledger alone (no Prefect, no MLflow).

Invariants: the last epoch's consensus outputs, emission per uid, scores, errors and digests
are read from that epoch's ``uids`` record (hash-checked; ``ledger.epoch_records``), never by
scanning the history, so answers cost the same at any ledger age. A uid registered after the
last epoch (or every uid before the first, or of an epoch committed without records) shows 0 /
nothing for those columns. A submission is "evaluated" only as the one commit of its hotkey that
the last epoch scored (``ledger.submissions.evaluated_commit``): a commit made after that epoch,
even of the same digest, is pending or eligible until an epoch evaluates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.submissions import SubmissionPolicy, eligible, evaluated_commit

OUTPUT_COLUMNS: Final = ("validator_trust", "consensus", "incentive", "dividends")
EVALUATION_COLUMNS: Final = ("score", "error", "artifact_digest")
METAGRAPH_RECORD_COLUMNS: Final = ("hotkey", "permit", "score", "error", "emission_rao")


class NoSuchSubnet(LookupError):
    """The subnet does not exist in this ledger."""


def last_epoch_uids(ledger: Ledger, *, subnet: str) -> pa.Table | None:
    """The ``uids`` record of ``subnet``'s last committed epoch (None if there is none)."""
    last_epoch = ledger.state().last_epoch.get(subnet)
    if last_epoch is None:
        return None
    return ledger.epoch_records(subnet, last_epoch, names=("uids",)).get("uids")


def _columns(uids: pa.Table | None, names: tuple[str, ...]) -> dict[str, list[Any]]:
    if uids is None:
        return {name: [] for name in names}
    return {name: uids.column(name).to_pylist() for name in names}


class NoSuchEpoch(LookupError):
    """The subnet has no committed epoch of that number."""


def metagraph(ledger: Ledger, *, subnet: str, epoch: int | None = None) -> list[dict[str, Any]]:
    """One row per uid: stake, and an epoch's consensus outputs, mean score and emission.

    Without ``epoch``: the current state with the last epoch's outputs. With ``epoch``: the
    state right after the batch that committed it (what ``epoch run`` shows), so stake already
    includes that epoch's emission. A uid whose hotkey is not the one the epoch recorded shows
    0 / None for the epoch's columns. ``score`` is the uid's mean score (None when unscored).
    """
    state = ledger.state()
    if subnet not in state.subnets:
        raise NoSuchSubnet(subnet)
    if epoch is None:
        epoch = state.last_epoch.get(subnet)
    else:
        batch_no = ledger.batch_of_epoch(subnet, epoch)
        if batch_no is None:
            raise NoSuchEpoch(f"epoch {epoch} of subnet {subnet!r} is not in the ledger")
        state = ledger.state_as_of(batch_no)
    uids = None
    if epoch is not None:
        uids = ledger.epoch_records(subnet, epoch, names=("uids",)).get("uids")
    columns = _columns(uids, (*OUTPUT_COLUMNS, *METAGRAPH_RECORD_COLUMNS))
    rows = []
    for uid, neuron in sorted(state.neurons[subnet].items()):
        stake_rao = state.hotkey_stake(neuron.hotkey)
        recorded = uid < len(columns["hotkey"]) and columns["hotkey"][uid] == neuron.hotkey
        score = float(columns["score"][uid]) if recorded else math.nan
        emission_rao = int(columns["emission_rao"][uid]) if recorded else 0
        rows.append(
            {
                "uid": uid,
                "hotkey": neuron.hotkey,
                "role": neuron.role,
                "stake_rao": stake_rao,
                "stake_tao": stake_rao / RAO_PER_TAO,
                "score": None if math.isnan(score) else score,
                **{name: float(columns[name][uid]) if recorded else 0.0 for name in OUTPUT_COLUMNS},
                "permit": bool(columns["permit"][uid]) if recorded else False,
                "emission_rao": emission_rao,
                "emission_tao": emission_rao / RAO_PER_TAO,
                "error": (columns["error"][uid] or None) if recorded else None,
                "epoch": epoch,
            }
        )
    return rows


@dataclass(frozen=True)
class Evaluated:
    """What the last epoch's ``uids`` record says one uid was evaluated on."""

    hotkey: str
    digest: str
    score: float | None
    error: str


def _last_evaluation(ledger: Ledger, *, subnet: str) -> dict[int, Evaluated]:
    """Per uid that the last epoch evaluated (a non-empty digest): hotkey, digest, score, error."""
    columns = _columns(last_epoch_uids(ledger, subnet=subnet), ("hotkey", *EVALUATION_COLUMNS))
    return {
        uid: Evaluated(
            hotkey=hotkey,
            digest=digest,
            score=None if math.isnan(score) else float(score),
            error=error,
        )
        for uid, (hotkey, digest, score, error) in enumerate(
            zip(
                columns["hotkey"],
                columns["artifact_digest"],
                columns["score"],
                columns["error"],
                strict=True,
            )
        )
        if digest
    }


def _epoch_block(state: LedgerState, *, subnet: str, epoch: int) -> int:
    """The block of ``subnet``'s committed ``epoch`` (recorded in its payload)."""
    info = state.subnets[subnet]
    recorded = state.last_epoch_payload.get(subnet, {}).get("block")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded
    return info.created_block + (epoch + 1) * info.config.tempo_blocks


def submission_states(ledger: Ledger, *, subnet: str) -> list[dict[str, Any]]:
    """Every stored commit of every UID with its state and the reason.

    States: ``evaluated`` (the commit the last epoch scored: never one made after it),
    ``rejected`` (the commit the last epoch could not score), ``pending`` (evaluation delay not
    over at the next epoch), ``eligible`` (will be evaluated at the next epoch) and
    ``superseded`` (a newer eligible commit replaces it).
    """
    state = ledger.state()
    info = state.subnets.get(subnet)
    if info is None:
        raise NoSuchSubnet(subnet)
    last_epoch = state.last_epoch.get(subnet)
    evaluated = _last_evaluation(ledger, subnet=subnet) if last_epoch is not None else {}
    epoch_block = (
        None if last_epoch is None else _epoch_block(state, subnet=subnet, epoch=last_epoch)
    )
    delay = SubmissionPolicy.from_config(info.config).evaluation_delay_blocks
    next_epoch = 0 if last_epoch is None else last_epoch + 1
    next_block = info.created_block + (next_epoch + 1) * info.config.tempo_blocks
    rows = []
    for uid, neuron in sorted(state.neurons[subnet].items()):
        history = state.submission_commits(subnet=subnet, hotkey=neuron.hotkey)
        chosen = eligible(history, current_block=next_block, delay_blocks=delay)
        seen = evaluated.get(uid)
        scored = None
        if seen is not None and seen.hotkey == neuron.hotkey and epoch_block is not None:
            scored = evaluated_commit(
                history, epoch_block=epoch_block, delay_blocks=delay, digest=seen.digest
            )
        for commit in history:
            score: float | None = None
            if scored is not None and seen is not None and commit.tx_id == scored.tx_id:
                if seen.error:
                    status, reason = "rejected", seen.error
                else:
                    status, score = "evaluated", seen.score
                    reason = f"scored in epoch {last_epoch}"
            elif commit.block + delay > next_block:
                status, reason = "pending", f"eligible from block {commit.block + delay}"
            elif chosen is not None and chosen.tx_id != commit.tx_id:
                status, reason = "superseded", "a newer eligible commit replaces it"
            else:
                status = "eligible"
                reason = f"evaluated in epoch {next_epoch} (block {next_block})"
            rows.append(
                {
                    "uid": uid,
                    "hotkey": neuron.hotkey,
                    "digest": commit.digest,
                    "block": commit.block,
                    "state": status,
                    "score": score,
                    "reason": reason,
                }
            )
    return rows
