"""Paying an open epoch from columns: the emission rows of a batch checked with Arrow compute.

``pay_columns(state, rows)`` is a fast path for what ``LedgerState.apply`` does row by row to an
epoch's emission entries. It takes the path only when the rows pay one open epoch *exactly and
completely* (every due entry once, nothing else) and every row has the plain shape the epoch
flow writes (no signature, no payload, nonce 0, no destination, an id under the epoch's id). It
then changes the state exactly as applying the rows one by one would, and returns True.

Invariant: when any condition does not hold it returns False and changes nothing; the caller
then applies the rows one by one, which accepts exactly what is valid and names the first row
that is not. So the fast path can only make replay faster, never change what is accepted.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.schema import EMISSION_KINDS, EMPTY_PAYLOAD, Kind
from taoflow.ledger.state import TX_ID_CHARS_MAX, LedgerState, epoch_tx_id

EMISSION_NAMES: Final = pa.array(sorted(str(k) for k in EMISSION_KINDS))
"""The emission kinds as an Arrow array (for ``pyarrow.compute.is_in``)."""
_KEY_COLUMNS: Final = ("kind", "uid", "coldkey", "hotkey", "amount_rao")


def _plain_shape(rows: pa.Table, prefix: str) -> bool:
    """Every row has the shape an epoch flow writes, and ids are unique under ``prefix``."""
    ids = rows.column("tx_id")
    return bool(
        pc.all(pc.is_in(rows.column("kind"), value_set=EMISSION_NAMES)).as_py()
        and pc.all(pc.equal(rows.column("payload"), EMPTY_PAYLOAD)).as_py()
        and pc.all(pc.equal(rows.column("nonce"), 0)).as_py()
        and pc.all(pc.equal(rows.column("dest"), "")).as_py()
        and pc.all(pc.equal(pc.binary_length(rows.column("signature")), 0)).as_py()
        and pc.all(pc.starts_with(ids, prefix)).as_py()
        and pc.max(pc.utf8_length(ids)).as_py() <= TX_ID_CHARS_MAX
        and pc.count_distinct(ids).as_py() == rows.num_rows
    )


def pay_columns(state: LedgerState, rows: pa.Table) -> bool:
    """Apply ``rows`` (emission rows of one batch) if they pay one open epoch exactly."""
    if rows.num_rows == 0:
        return False
    subnets = pc.unique(rows.column("subnet")).to_pylist()
    epochs = pc.unique(rows.column("epoch")).to_pylist()
    if len(subnets) != 1 or len(epochs) != 1:
        return False
    subnet, epoch = subnets[0], epochs[0]
    open_epoch = state.open_epochs.get((subnet, epoch))
    if open_epoch is None or open_epoch.paid or len(open_epoch.due) != rows.num_rows:
        return False
    if not _plain_shape(rows, epoch_tx_id(subnet, epoch) + "/"):
        return False
    columns = [rows.column(name).to_pylist() for name in _KEY_COLUMNS]
    neurons = state.neurons.get(subnet, {})
    keys: set[tuple[str, int, str]] = set()
    for kind, uid, coldkey, hotkey, amount in zip(*columns, strict=True):
        key = (kind, uid, coldkey)  # a Kind is a str: equal and equally hashed
        keys.add(key)
        due = open_epoch.due.get(key)  # type: ignore[call-overload]
        if due is None or due.hotkey != hotkey or due.amount_rao != amount:
            return False
        if kind == Kind.EMISSION_INCENTIVE and uid in open_epoch.rejected_uids:
            return False
        if kind != Kind.EMISSION_OWNER:
            neuron = neurons.get(uid)
            if neuron is None or neuron.hotkey != hotkey:
                return False
    if len(keys) != rows.num_rows:
        return False
    # Every due entry is matched by exactly one row (equal counts, unique keys): pay them all.
    del state.open_epochs[(subnet, epoch)]
    per_uid = state.uid_emission_rao.setdefault(subnet, {})
    for kind, uid, coldkey, hotkey, amount in zip(*columns, strict=True):
        state.issued_rao += amount
        if kind == Kind.EMISSION_OWNER:
            state._credit(coldkey, amount)
            continue
        if uid >= 0:
            per_uid[uid] = per_uid.get(uid, 0) + amount
        state._add_stake(coldkey=coldkey, hotkey=hotkey, amount_rao=amount)
    return True
