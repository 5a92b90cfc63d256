"""The ledger and transaction pages as plain data (see ``pages`` for the shared invariants).

Transactions are searched in SQL over every committed row (newest first, one page of at most
``PAGE_SIZE_MAX`` rows, ``PAGE_MAX`` pages deep). Balances "as of epoch N" are the ledger's own
fold up to the batch that committed the epoch (``Ledger.state_as_of``: newest snapshot + the
tail), the same as ``taoflow ledger balance --as-of-epoch``; a few recent ones are cached.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from taoflow.dashboards.explorer.data import ExplorerData
from taoflow.dashboards.explorer.pages import Labels, NotFound
from taoflow.ledger.schema import Kind
from taoflow.ledger.state import LedgerState

PAGE_SIZE_DEFAULT: Final = 50
PAGE_SIZE_MAX: Final = 200
PAGE_MAX: Final = 100_000
BATCHES_SHOWN: Final = 20
BALANCES_SHOWN_MAX: Final = 100
STATES_CACHED_MAX: Final = 4
TX_ID_PREFIX_CHARS_MIN: Final = 8
QUERY_CHARS_MAX: Final = 128
KINDS: Final = tuple(str(k) for k in Kind)

TRANSACTIONS_SQL: Final = """
SELECT batch_no, row_no, tx_id, kind, subnet, epoch, coldkey, hotkey, dest, uid,
       amount_rao::HUGEINT AS amount_rao
FROM tx
WHERE ($q = '' OR tx_id = $q OR (length($q) >= $prefix_min AND starts_with(tx_id, $q)))
  AND ($kind = '' OR kind = $kind)
  AND ($account = '' OR coldkey = $account OR hotkey = $account OR dest = $account)
  AND batch_no <= $as_of_batch
ORDER BY batch_no DESC, row_no DESC
LIMIT $limit OFFSET $offset
"""


@dataclass(frozen=True)
class LedgerQuery:
    """The ledger page's parameters, checked by the app (bounds above)."""

    q: str = ""
    account: str = ""
    kind: str = ""
    page: int = 0
    page_size: int = PAGE_SIZE_DEFAULT
    as_of_epoch: int | None = None
    subnet: str = ""
    batches_before: int | None = None
    """Show the ``BATCHES_SHOWN`` batches right before this one (default: the newest)."""


class StatesAsOf:
    """``Ledger.state_as_of`` for a few batches, kept (LRU of ``STATES_CACHED_MAX``)."""

    def __init__(self) -> None:
        self._states: OrderedDict[tuple[str, int], LedgerState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, data: ExplorerData, batch_no: int) -> LedgerState:
        key = (data.head().head_hash, batch_no)
        with self._lock:
            if key in self._states:
                self._states.move_to_end(key)
                return self._states[key]
        state = data.ledger.state_as_of(batch_no)
        with self._lock:
            self._states[key] = state
            while len(self._states) > STATES_CACHED_MAX:
                self._states.popitem(last=False)
        return state


def _as_of_batch(data: ExplorerData, query: LedgerQuery) -> int | None:
    if query.as_of_epoch is None:
        return None
    if query.subnet not in data.state().subnets:
        raise NotFound(f"no subnet {query.subnet!r} in this ledger")
    batch_no = data.batch_of_epoch(query.subnet, query.as_of_epoch)
    if batch_no is None or batch_no > data.head().batches:
        raise NotFound(f"epoch {query.as_of_epoch} of {query.subnet!r} is not in the ledger")
    return batch_no


def _balances(state: LedgerState, labels: Labels) -> dict[str, Any]:
    ranked = sorted(
        ((coldkey, amount) for coldkey, amount in state.balances.items() if amount),
        key=lambda kv: (-kv[1], kv[0]),
    )
    return {
        "rows": [
            {"coldkey": coldkey, "label": labels.of(coldkey), "balance_rao": amount}
            for coldkey, amount in ranked[:BALANCES_SHOWN_MAX]
        ],
        "total": len(ranked),
        "sum_rao": sum(amount for _, amount in ranked),
    }


def ledger_page(
    data: ExplorerData, query: LedgerQuery, labels: Labels, states: StatesAsOf
) -> dict[str, Any]:
    as_of = _as_of_batch(data, query)
    bound = data.head().batches if as_of is None else as_of
    rows = data.query(
        TRANSACTIONS_SQL,
        {
            "q": query.q,
            "prefix_min": TX_ID_PREFIX_CHARS_MIN,
            "kind": query.kind,
            "account": query.account,
            "as_of_batch": bound,
            "limit": query.page_size + 1,
            "offset": query.page * query.page_size,
        },
    )
    for row in rows:
        row["amount_rao"] = int(row["amount_rao"])
        for key in ("coldkey", "hotkey", "dest"):
            row[f"{key}_label"] = labels.of(row[key])
    newest = bound if query.batches_before is None else min(bound, query.batches_before - 1)
    records = data.records()[max(0, newest - BATCHES_SHOWN) : max(0, newest)]
    state = data.state() if as_of is None else states.get(data, as_of)
    return {
        "query": {**query.__dict__},
        "as_of_batch": as_of,
        "transactions": rows[: query.page_size],
        "has_next": len(rows) > query.page_size,
        "batches": [
            {
                "batch_no": r.batch_no,
                "batch_hash": r.batch_hash,
                "parent_hash": r.parent_hash,
                "rows": r.rows,
                "epochs": list(r.epochs),
            }
            for r in reversed(records)
        ],
        "older_batches_before": (
            records[0].batch_no if records and records[0].batch_no > 1 else None
        ),
        "balances": _balances(state, labels),
        "kinds": list(KINDS),
    }


def tx_page(data: ExplorerData, tx_id: str, labels: Labels) -> dict[str, Any]:
    rows = data.query(
        "SELECT batch_no, row_no, tx_id, kind, subnet, epoch, coldkey, hotkey, dest, uid, "
        "amount_rao::HUGEINT AS amount_rao, nonce, payload FROM tx WHERE tx_id = $id "
        "ORDER BY batch_no LIMIT 1",
        {"id": tx_id},
    )
    if not rows:
        raise NotFound(f"no transaction {tx_id!r} in this ledger")
    row = rows[0]
    row["amount_rao"] = int(row["amount_rao"])
    if row["payload"] is None:  # an epoch entry: its payload stays in the batch file
        row["payload"] = data.stored_payload(batch_no=row["batch_no"], row_no=row["row_no"])
    with contextlib.suppress(ValueError):  # a payload that is not JSON is shown as stored
        row["payload"] = json.loads(row["payload"]) if row["payload"] else {}
    for key in ("coldkey", "hotkey", "dest"):
        row[f"{key}_label"] = labels.of(row[key])
    record = data.record(int(row["batch_no"]))
    row["batch_hash"] = record.batch_hash
    return row
