"""Multi-epoch consensus scenarios: JSON in, every epoch's outputs out (``taoflow consensus run``).

The schema is documented in ``tasks/consensus/scenario.md`` with an example beside it. Pure:
``run_scenario`` depends only on the scenario document.

Invariants: epochs run in order, each fed the previous epoch's state (u16 bonds and permits);
``last_step_block`` defaults to the previous epoch's ``current_block`` (0 before the first);
every number in the output is either a float share, a u16, or an exact integer rao amount
(``emission_rao`` split exactly, largest remainder, ties to the lower uid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.types import EpochInputs, EpochState
from taoflow.tasks.emit import compute_payouts

EPOCHS_MAX = 10_000
DEFAULT_SPLIT_PPM = {"owner": 180_000, "miners": 410_000, "validators": 410_000}
WEIGHTS_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
)


class InvalidScenario(ValueError):
    """The scenario document does not follow the schema; the message says where."""


def _params(base: Mapping[str, Any], override: Mapping[str, Any], where: str) -> YumaParams:
    known = {f.name for f in dataclasses.fields(YumaParams)}
    merged = {**base, **override}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise InvalidScenario(f"{where}: unknown hyper-parameter(s) {unknown}")
    try:
        return YumaParams(**merged)
    except (TypeError, ValueError) as exc:
        raise InvalidScenario(f"{where}: {exc}") from exc


def _weights(raw: object, where: str) -> pa.Table:
    if not isinstance(raw, list):
        raise InvalidScenario(f"{where}.weights must be a list of [validator, miner, u16]")
    rows = []
    for k, entry in enumerate(raw):
        if not (isinstance(entry, list) and len(entry) == 3):
            raise InvalidScenario(f"{where}.weights[{k}] must be [validator, miner, u16]")
        rows.append({"validator": entry[0], "miner": entry[1], "weight_u16": entry[2]})
    try:
        return pa.Table.from_pylist(rows, schema=WEIGHTS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise InvalidScenario(f"{where}.weights: {exc}") from exc


def _vector(epoch: Mapping[str, Any], key: str, where: str, *, default: Any = None) -> Any:
    value = epoch.get(key, default)
    if value is None:
        raise InvalidScenario(f"{where}.{key} is required")
    return value


def run_scenario(document: Mapping[str, Any]) -> dict[str, Any]:
    """Run every epoch of ``document``; return ``{"epochs": [...]}`` (see scenario.md)."""
    epochs = document.get("epochs")
    if not isinstance(epochs, list) or not epochs:
        raise InvalidScenario("'epochs' must be a non-empty list")
    if len(epochs) > EPOCHS_MAX:
        raise InvalidScenario(f"at most {EPOCHS_MAX} epochs")
    base = dict(document.get("hyperparameters", {}))
    tempo = int(document.get("tempo_blocks", 360))
    owner_uid = document.get("owner_uid")
    split_ppm = dict(document.get("emission_split_ppm", DEFAULT_SPLIT_PPM))
    state: EpochState | None = None
    last_step_block = 0
    results = []
    for index, epoch in enumerate(epochs):
        where = f"epochs[{index}]"
        if not isinstance(epoch, Mapping):
            raise InvalidScenario(f"{where} must be an object")
        params = _params(base, dict(epoch.get("hyperparameters", {})), where)
        stake = _vector(epoch, "stake_rao", where)
        n = len(stake)
        try:
            inputs = EpochInputs(
                stake_rao=np.asarray(stake, dtype=np.int64),
                weights=_weights(epoch.get("weights", []), where),
                last_update_block=np.asarray(
                    _vector(epoch, "last_update_block", where), dtype=np.int64
                ),
                registered_block=np.asarray(epoch.get("registered_block", [0] * n), dtype=np.int64),
                current_block=int(_vector(epoch, "current_block", where)),
                owner_uid=epoch.get("owner_uid", owner_uid),
                last_step_block=int(epoch.get("last_step_block", last_step_block)),
                tempo_blocks=int(epoch.get("tempo_blocks", tempo)),
            )
            previous = EpochState.empty(n) if state is None else state.for_uids(n)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidScenario(f"{where}: {exc}") from exc
        outputs, state = run_epoch(inputs, params, previous)
        last_step_block = inputs.current_block
        emission_rao = int(epoch.get("emission_rao", document.get("emission_rao", 0)))
        payouts = compute_payouts(
            emission_rao=emission_rao,
            incentive=outputs.incentive.tolist(),
            dividends=outputs.dividends.tolist(),
            validator_share=outputs.validator_emission_share.tolist(),
            split_ppm=split_ppm,
        )
        bonds = state.bonds.to_pydict()
        results.append(
            {
                "epoch": index,
                "current_block": inputs.current_block,
                "stake_weight": outputs.stake_weight.tolist(),
                "active": outputs.active.tolist(),
                "validator_permit": state.validator_permit.tolist(),
                "validator_trust": outputs.validator_trust.tolist(),
                "consensus": outputs.consensus.tolist(),
                "incentive": outputs.incentive.tolist(),
                "dividends": outputs.dividends.tolist(),
                "server_emission_share": outputs.server_emission_share.tolist(),
                "validator_emission_share": outputs.validator_emission_share.tolist(),
                "bonds_u16": [
                    [int(v), int(m), int(b)]
                    for v, m, b in zip(
                        bonds["validator"], bonds["miner"], bonds["bond_u16"], strict=True
                    )
                ],
                "emission_rao": {
                    "total": payouts.total_rao,
                    "owner": payouts.owner_rao,
                    "miners": list(payouts.incentive_rao),
                    "validators": list(payouts.dividends_rao),
                    "unissued": payouts.unissued_rao,
                },
                "hyperparameters": params.to_dict(),
            }
        )
    return {"epochs": results}


def summarise(result: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """One row per (epoch, uid) for a terminal table."""
    rows = []
    for epoch in result["epochs"]:
        for uid in range(len(epoch["incentive"])):
            rows.append(
                {
                    "epoch": epoch["epoch"],
                    "uid": uid,
                    "validator_trust": epoch["validator_trust"][uid],
                    "consensus": epoch["consensus"][uid],
                    "incentive": epoch["incentive"][uid],
                    "dividends": epoch["dividends"][uid],
                    "permit": epoch["validator_permit"][uid],
                }
            )
    return rows
