"""What each explorer page shows, as plain data: the HTML page and its ``/api/…`` twin render
the same object.

Invariants:
- Amounts are integer rao (``*_rao``); nothing here rounds money. Floats are the ledger's own
  consensus outputs (incentive, dividends, trust, scores).
- Headline figures come from the ledger's state and the functions the CLI uses
  (``LedgerState.supply``, ``taoflow.queries.metagraph`` / ``submission_states``), so a page
  and ``taoflow ledger supply`` / ``taoflow metagraph`` agree by construction; histories come
  from the read model's SQL (``ExplorerData``), and the last point of the supply history is
  checked against the state (``history_matches_state``).
- Every list is bounded (``*_MAX`` constants); a history longer than ``HISTORY_POINTS_MAX``
  epochs is sampled at a fixed stride (its last point always kept) for the JSON, and the chart
  keeps each bucket's extremes (``charts``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from taoflow.dashboards.explorer.data import ExplorerData

HISTORY_POINTS_MAX: Final = 1_000
"""Points per series in a page's JSON history (a stride over longer histories)."""
TOP_SERIES_MAX: Final = 8
"""Hotkeys drawn one line each on a subnet's incentive / dividends charts."""
SUBMISSIONS_SHOWN_MAX: Final = 500
NEURON_EPOCHS_SHOWN_MAX: Final = 50


class NotFound(LookupError):
    """A subnet, hotkey, epoch or transaction the ledger does not have (one line)."""


@dataclass(frozen=True)
class Labels:
    """Names people know accounts by (local wallets); everything else is a short hash."""

    names: Mapping[str, str]

    def of(self, account: str | None) -> str:
        if not account:
            return ""
        return self.names.get(account, f"{account[:8]}…" if len(account) > 12 else account)


def stride(count: int, *, points_max: int = HISTORY_POINTS_MAX) -> int:
    """Every ``stride``-th epoch keeps a history of ``count`` points within ``points_max``."""
    return max(1, math.ceil(count / points_max))


# ---- network -------------------------------------------------------------------------------

SUPPLY_HISTORY_SQL: Final = """
WITH running AS (
    SELECT batch_no,
        SUM(COALESCE(issued_rao, 0)) OVER w AS issued_rao,
        -- burned: registrations and one fee per user transaction
        SUM(COALESCE(registered_rao, 0) + $fee_rao * user_txs) OVER w AS burned_rao,
        SUM(COALESCE(locked_rao, 0)) OVER w AS locked_rao,
        SUM(COALESCE(staked_rao, 0)) OVER w AS staked_rao
    FROM batch_supply WINDOW w AS (ORDER BY batch_no)
)
-- free = issued − burned − locked − staked (the supply identity)
SELECT batch_no, issued_rao::HUGEINT AS issued_rao, staked_rao::HUGEINT AS staked_rao,
       (issued_rao - burned_rao - locked_rao - staked_rao)::HUGEINT AS free_rao,
       burned_rao::HUGEINT AS burned_rao, locked_rao::HUGEINT AS locked_rao
FROM running
WHERE batch_no % $stride = 0 OR batch_no = (SELECT MAX(batch_no) FROM batch_supply)
ORDER BY batch_no
"""

SUBNET_EMISSIONS_SQL: Final = """
SELECT subnet,
       SUM(COALESCE(owner_rao, 0) + COALESCE(miners_rao, 0) + COALESCE(validators_rao, 0)
           + COALESCE(delegators_rao, 0))::HUGEINT AS emitted_rao,
       arg_max(COALESCE(owner_rao, 0) + COALESCE(miners_rao, 0) + COALESCE(validators_rao, 0)
               + COALESCE(delegators_rao, 0), epoch)::HUGEINT AS last_epoch_rao
FROM epoch_emission GROUP BY subnet
"""


def _ints(columns: dict[str, list[Any]]) -> dict[str, list[int]]:
    return {name: [int(v) for v in values] for name, values in columns.items()}


def supply(data: ExplorerData) -> dict[str, Any]:
    """Now (the state's supply terms, as ``taoflow ledger supply``) and over batches."""
    state = data.state()
    now = state.supply()
    batches = data.head().batches
    history = _ints(
        data.columns(SUPPLY_HISTORY_SQL, {"fee_rao": state.tx_fee_rao, "stride": stride(batches)})
    )
    last = {name: values[-1] for name, values in history.items() if values}
    matches = bool(last) and (
        last["issued_rao"] == now["issued_rao"]
        and last["burned_rao"] == now["burned_rao"]
        and last["staked_rao"] == now["stakes_rao"]
        and last["free_rao"] == now["balances_rao"]
        and last["locked_rao"] == now["locked_rao"]
    )
    held = now["balances_rao"] + now["stakes_rao"] + now["locked_rao"]
    return {
        "issued_rao": now["issued_rao"],
        "staked_rao": now["stakes_rao"],
        "free_rao": now["balances_rao"],
        "burned_rao": now["burned_rao"],
        "locked_rao": now["locked_rao"],
        "identity_holds": now["issued_rao"] - now["burned_rao"] == held,
        "history": history,
        "history_matches_state": matches,
    }


def subnets(data: ExplorerData, labels: Labels) -> list[dict[str, Any]]:
    """Every subnet: owner, size, emission share, last epoch and the batch that committed it."""
    state = data.state()
    emitted = {r["subnet"]: r for r in data.query(SUBNET_EMISSIONS_SQL)}
    shares_total = sum(info.config.emission_share for info in state.subnets.values()) or 1
    rows = []
    for name, info in sorted(state.subnets.items()):
        last_epoch = state.last_epoch.get(name)
        batch_no = None if last_epoch is None else data.batch_of_epoch(name, last_epoch)
        rows.append(
            {
                "name": name,
                "owner": info.owner_coldkey,
                "owner_label": labels.of(info.owner_coldkey),
                "uids": len(state.neurons.get(name, {})),
                "uids_max": info.uids_max,
                "emission_share": info.config.emission_share / shares_total,
                "last_epoch": last_epoch,
                "last_batch_no": batch_no,
                "last_batch_hash": data.record(batch_no).batch_hash if batch_no else "",
                "emitted_rao": int(emitted.get(name, {}).get("emitted_rao") or 0),
                "last_epoch_emission_rao": int(emitted.get(name, {}).get("last_epoch_rao") or 0),
                "registration_cost_rao": state.registration_cost(name),
            }
        )
    return rows


def network(data: ExplorerData, labels: Labels, verify: dict[str, Any]) -> dict[str, Any]:
    head = data.head()
    return {
        "head": {"batches": head.batches, "head_hash": head.head_hash, "epochs": head.epochs},
        "supply": supply(data),
        "subnets": subnets(data, labels),
        "verify": verify,
        "problems": [dataclasses.asdict(p) for p in data.problems],
    }
