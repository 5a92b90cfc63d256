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
            if row["kind"] in (Kind.EMISSION_INCENTIVE, Kind.EMISSION_DIVIDEND):
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
