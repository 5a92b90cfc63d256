"""Read-side questions answered from the ledger alone (no Prefect, no MLflow)."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from ledger.schema import RAO_PER_TAO, Kind
from ledger.store import Ledger


class NoSuchSubnet(LookupError):
    """The subnet does not exist in this ledger."""


def metagraph(ledger: Ledger, *, subnet: str) -> list[dict[str, Any]]:
    """One row per uid: current stake, the last epoch's consensus outputs and emission."""
    state = ledger.state()
    if subnet not in state.subnets:
        raise NoSuchSubnet(subnet)
    last_epoch = state.last_epoch.get(subnet)
    payload = state.last_epoch_payload.get(subnet, {})
    outputs: dict[str, list[float]] = payload.get("outputs", {})
    emission_rao: dict[int, int] = {}
    if last_epoch is not None:
        table = ledger.table()
        mask = pc.and_(pc.equal(table["subnet"], subnet), pc.equal(table["epoch"], last_epoch))
        for row in table.filter(mask).to_pylist():
            if row["kind"] in (
                Kind.EMISSION_INCENTIVE,
                Kind.EMISSION_DIVIDEND,
                Kind.EMISSION_DELEGATOR,
            ):
                emission_rao[row["uid"]] = emission_rao.get(row["uid"], 0) + row["amount_rao"]
    rows = []
    for uid, neuron in sorted(state.neurons[subnet].items()):
        stake_rao = state.hotkey_stake(neuron.hotkey)

        def out(name: str, uid: int = uid) -> float:
            values = outputs.get(name, [])
            return float(values[uid]) if uid < len(values) else 0.0

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
                "emission_rao": emission_rao.get(uid, 0),
                "emission_tao": emission_rao.get(uid, 0) / RAO_PER_TAO,
                "epoch": last_epoch,
            }
        )
    return rows


def submission_states(ledger: Ledger, *, subnet: str) -> list[dict[str, Any]]:
    """Every stored commit of every UID with its state and the reason.

    States: ``pending`` (evaluation delay not over at the next epoch), ``eligible`` (will be
    evaluated at the next epoch), ``superseded`` (a newer eligible commit replaces it),
    ``evaluated`` (scored in the last epoch) and ``rejected`` (the last epoch could not score it).
    """
    from ledger.submissions import SubmissionPolicy, eligible

    state = ledger.state()
    info = state.subnets.get(subnet)
    if info is None:
        raise NoSuchSubnet(subnet)
    evaluation = state.last_epoch_payload.get(subnet, {}).get("evaluation", {})
    scored_digests: dict[str, str] = evaluation.get("digests", {})
    scores: dict[str, float] = evaluation.get("scores", {})
    errors: dict[str, str] = evaluation.get("errors", {})
    delay = SubmissionPolicy.from_config(info.config).evaluation_delay_blocks
    next_block = (
        info.created_block + (state.last_epoch.get(subnet, -1) + 2) * info.config.tempo_blocks
    )
    rows = []
    for uid, neuron in sorted(state.neurons[subnet].items()):
        history = state.submission_commits(subnet=subnet, hotkey=neuron.hotkey)
        chosen = eligible(history, current_block=next_block, delay_blocks=delay)
        for commit in history:
            key = str(uid)
            score: float | None = None
            reason: str | None = None
            if scored_digests.get(key) == commit.digest and key in errors:
                status, reason = "rejected", errors[key]
            elif scored_digests.get(key) == commit.digest:
                status, score = "evaluated", scores.get(key)
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
