"""Read-side questions answered from the ledger alone (no Prefect, no MLflow).

Invariants: the last epoch's consensus outputs, emission per uid, scores, errors and digests
are read from that epoch's ``uids`` record (hash-checked; ``ledger.epoch_records``), never by
scanning the history, so answers cost the same at any ledger age. A uid registered after the
last epoch (or every uid before the first, or of an epoch committed without records) shows 0 /
nothing for those columns.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pyarrow as pa

from taoflow.ledger.schema import RAO_PER_TAO
from taoflow.ledger.store import Ledger

OUTPUT_COLUMNS: Final = ("validator_trust", "consensus", "incentive", "dividends")
EVALUATION_COLUMNS: Final = ("score", "error", "artifact_digest")


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


def metagraph(ledger: Ledger, *, subnet: str) -> list[dict[str, Any]]:
    """One row per uid: current stake, the last epoch's consensus outputs and emission."""
    state = ledger.state()
    if subnet not in state.subnets:
        raise NoSuchSubnet(subnet)
    last_epoch = state.last_epoch.get(subnet)
    columns = _columns(last_epoch_uids(ledger, subnet=subnet), (*OUTPUT_COLUMNS, "emission_rao"))
    rows = []
    for uid, neuron in sorted(state.neurons[subnet].items()):
        stake_rao = state.hotkey_stake(neuron.hotkey)

        def out(name: str, uid: int = uid) -> float:
            values = columns[name]
            return float(values[uid]) if uid < len(values) else 0.0

        emission = columns["emission_rao"]
        emission_rao = int(emission[uid]) if uid < len(emission) else 0
        rows.append(
            {
                "uid": uid,
                "hotkey": neuron.hotkey,
                "role": neuron.role,
                "stake_rao": stake_rao,
                "stake_tao": stake_rao / RAO_PER_TAO,
                "validator_trust": out("validator_trust"),
                "consensus": out("consensus"),
                "incentive": out("incentive"),
                "dividends": out("dividends"),
                "emission_rao": emission_rao,
                "emission_tao": emission_rao / RAO_PER_TAO,
                "epoch": last_epoch,
            }
        )
    return rows


def _last_evaluation(
    ledger: Ledger, *, subnet: str
) -> tuple[dict[int, str], dict[int, float], dict[int, str]]:
    """Digest evaluated, mean score and error per uid in the last epoch (uids that have one)."""
    columns = _columns(last_epoch_uids(ledger, subnet=subnet), EVALUATION_COLUMNS)
    digests = {uid: d for uid, d in enumerate(columns["artifact_digest"]) if d}
    scores = {uid: float(x) for uid, x in enumerate(columns["score"]) if not math.isnan(x)}
    errors = {uid: e for uid, e in enumerate(columns["error"]) if e}
    return digests, scores, errors


def submission_states(ledger: Ledger, *, subnet: str) -> list[dict[str, Any]]:
    """Every stored commit of every UID with its state and the reason.

    States: ``pending`` (evaluation delay not over at the next epoch), ``eligible`` (will be
    evaluated at the next epoch), ``superseded`` (a newer eligible commit replaces it),
    ``evaluated`` (scored in the last epoch) and ``rejected`` (the last epoch could not score it).
    """
    from taoflow.ledger.submissions import SubmissionPolicy, eligible

    state = ledger.state()
    info = state.subnets.get(subnet)
    if info is None:
        raise NoSuchSubnet(subnet)
    scored_digests, scores, errors = _last_evaluation(ledger, subnet=subnet)
    delay = SubmissionPolicy.from_config(info.config).evaluation_delay_blocks
    next_block = (
        info.created_block + (state.last_epoch.get(subnet, -1) + 2) * info.config.tempo_blocks
    )
    rows = []
    for uid, neuron in sorted(state.neurons[subnet].items()):
        history = state.submission_commits(subnet=subnet, hotkey=neuron.hotkey)
        chosen = eligible(history, current_block=next_block, delay_blocks=delay)
        for commit in history:
            score: float | None = None
            reason: str | None = None
            if scored_digests.get(uid) == commit.digest and uid in errors:
                status, reason = "rejected", errors[uid]
            elif scored_digests.get(uid) == commit.digest:
                status, score = "evaluated", scores.get(uid)
                reason = f"scored in epoch {state.last_epoch.get(subnet)}"
            elif commit.block + delay > next_block:
                status = "pending"
                reason = f"eligible from block {commit.block + delay}"
            elif chosen is not None and chosen.tx_id != commit.tx_id:
                status, reason = "superseded", "a newer eligible commit replaces it"
            else:
                status, reason = "eligible", f"evaluated at block {next_block}"
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
