"""Stored epochs: what the ledger holds about each committed epoch, with its inputs rebuilt.

An epoch of a subnet is committed as one ``epoch`` entry (payload: block, seed, parent hash,
schedule, shares, rejected uids, record references) plus its payout rows, in one batch, and four
record tables bound to the entry by hash (``ledger.epoch_records``). Its inputs are a function of
the ledger: the state at the head the epoch was gathered from (the payload's ``parent_hash``) and
the previous epoch's ``bonds``/``uids`` records. :func:`stored_epochs` rebuilds them for a range
of epochs in one forward pass over the batches (``Ledger.walk_states``), so auditing 1,000 epochs
costs one replay of those batches, not 1,000.

Invariants:
- ``StoredEpoch.ctx`` is ``tasks.gather.build_context`` of the state after the batch whose hash is
  the payload's ``parent_hash`` (normally the batch right before the epoch's batch; otherwise
  ``replanned`` is true and that state is read with ``Ledger.state_as_of``), so its seed, block and
  neurons are the ones the epoch's evaluation and consensus saw.
- Record tables are read as stored (``read_record_as_stored``): a table that fails its hash is
  still returned (so an audit can say which rows differ) and ``record_problems`` says why; a
  record that cannot be read at all is absent and named in ``record_problems``.
- ``rows`` are the epoch's own rows of its batch (its ``epoch`` entry and payouts), in batch order.
- Nothing here writes; ranges are bounded by ``EPOCHS_PER_WALK_MAX``.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.epoch_payment import EMISSION_NAMES
from taoflow.ledger.epoch_records import RECORDS_KEY, check_refs
from taoflow.ledger.schema import Kind
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.commit_log import CommitRecord
from taoflow.ledger.store.hashing import GENESIS_PARENT
from taoflow.ledger.store.records import read_record_as_stored
from taoflow.tasks.gather import (
    PREVIOUS_RECORDS,
    EpochContext,
    PreviousEpoch,
    UnknownSubnet,
    build_context,
)

EPOCHS_PER_WALK_MAX: Final = 100_000
"""Most epochs one walk (replay range, what-if, audit) may cover."""
WALK_AHEAD_EPOCHS_MAX: Final = 16
"""Epochs a walking child process may read ahead of its caller (its queue's bound)."""
WALK_AHEAD_MIN_EPOCHS: Final = 64
"""Shortest range walked by a child process (shorter ones gain less than the hand-over costs)."""
WALK_AHEAD_WAIT_S: Final = 300.0
"""Longest wait for the next epoch from the walking child (one epoch takes milliseconds)."""
EPOCH_ROW_KINDS: Final = pa.array([Kind.EPOCH.value, *EMISSION_NAMES.to_pylist()])
"""Kinds of an epoch's own rows in its batch: the ``epoch`` entry and its payouts."""
_RANGE = re.compile(r"^\s*(\d{1,9})\s*(?:\.\.\s*(\d{1,9}))?\s*$")


class HistoryError(ValueError):
    """An epoch or range the ledger does not hold (one line, for the user)."""


@dataclass(frozen=True)
class StoredEpoch:
    """One committed epoch: where it is, what it stored, and the inputs it was computed from."""

    subnet: str
    epoch: int
    batch_no: int
    batch_hash: str
    payload: Mapping[str, Any]
    ctx: EpochContext
    records: Mapping[str, pa.Table]
    rows: pa.Table
    record_problems: Mapping[str, str] = field(default_factory=dict)
    replanned: bool = False
    """The epoch was gathered from an older head than the batch before it (the emit stage
    re-planned its payouts on the newer state, ``tasks.emit.commit_epoch``)."""

    @property
    def record_hashes(self) -> dict[str, str]:
        """Record name → the sha256 the epoch entry names for it."""
        refs = self.payload.get("records") or {}
        return {name: str(ref.get("sha256", "")) for name, ref in sorted(refs.items())}


def parse_epoch_range(text: str) -> tuple[int, int]:
    """``"A..B"`` (or ``"N"``) as (A, B), refused in one line unless 0 ≤ A ≤ B."""
    match = _RANGE.match(text)
    if match is None:
        raise HistoryError(f"epochs must be N or A..B (e.g. 0..9), got {text!r}")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise HistoryError(f"epoch range {text!r} ends before it starts")
    if last - first + 1 > EPOCHS_PER_WALK_MAX:
        raise HistoryError(f"epoch range {text!r} covers more than {EPOCHS_PER_WALK_MAX} epochs")
    return first, last


def committed_epochs(ledger: Ledger, *, subnet: str) -> int:
    """How many epochs of ``subnet`` are committed (a one-line ``HistoryError`` if unknown)."""
    state = ledger.state()
    if subnet not in state.subnets:
        known = ", ".join(sorted(state.subnets)) or "none"
        raise HistoryError(f"no subnet {subnet!r} in this ledger (subnets: {known})")
    return state.last_epoch.get(subnet, -1) + 1


def _batch_of(ledger: Ledger, *, subnet: str, epoch: int, committed: int) -> int:
    batch_no = ledger.batch_of_epoch(subnet, epoch) if 0 <= epoch < committed else None
    if batch_no is None:
        if committed == 0:
            raise HistoryError(f"subnet {subnet!r} has no committed epoch yet")
        raise HistoryError(
            f"subnet {subnet!r} has no committed epoch {epoch} (epochs 0..{committed - 1})"
        )
    return batch_no


def read_records(
    ledger: Ledger,
    *,
    subnet: str,
    epoch: int,
    payload: Mapping[str, Any] | None = None,
    names: frozenset[str] | None = None,
) -> tuple[dict[str, pa.Table], dict[str, str]]:
    """The epoch's record tables as stored, and the problem of each that is not as committed.

    ``payload`` is the epoch entry's payload when the caller has it (saves finding the entry);
    ``names`` limits the records read (default: all).
    """
    tables: dict[str, pa.Table] = {}
    problems: dict[str, str] = {}
    if payload is None:
        refs = ledger.epoch_record_refs(subnet, epoch)
    else:
        checked = check_refs(payload.get(RECORDS_KEY))
        if isinstance(checked, str):
            raise HistoryError(f"epoch {epoch} of {subnet!r}: {checked}")
        refs = checked
    for name, ref in refs.items():
        if names is not None and name not in names:
            continue
        table, problem = read_record_as_stored(ledger.root, subnet=subnet, epoch=epoch, ref=ref)
        if table is not None:
            tables[name] = table
        if problem is not None:
            problems[name] = problem
    return tables, problems


def previous_of(
    records: Mapping[str, pa.Table], payload: Mapping[str, Any] | None
) -> PreviousEpoch:
    """What an epoch with ``records`` and ``payload`` left for the next one (see gather)."""
    if payload is None:
        return PreviousEpoch()
    empty = PreviousEpoch()
    uids = records.get("uids")
    return PreviousEpoch(
        block=int(payload.get("block", 0)),
        bonds=records.get("bonds", empty.bonds),
        permits=uids.column("permit").combine_chunks() if uids is not None else empty.permits,
    )


def epoch_rows(table: pa.Table, *, subnet: str, epoch: int) -> pa.Table:
    """The rows of ``table`` (a batch) that belong to ``subnet``'s ``epoch``: entry and payouts."""
    mask = pc.and_(
        pc.is_in(table.column("kind"), value_set=EPOCH_ROW_KINDS),
        pc.and_(pc.equal(table.column("subnet"), subnet), pc.equal(table.column("epoch"), epoch)),
    )
    return table.filter(mask)


def _payload_of(rows: pa.Table) -> dict[str, Any]:
    entries = rows.filter(pc.equal(rows.column("kind"), Kind.EPOCH.value))
    return dict(json.loads(entries.column("payload")[0].as_py())) if entries.num_rows else {}


def _context(
    ledger: Ledger,
    *,
    subnet: str,
    state_before: LedgerState,
    record: CommitRecord,
    payload: Mapping[str, Any],
    previous: PreviousEpoch,
) -> tuple[EpochContext, bool]:
    """The epoch's context from the head it was gathered at, and whether that head is older."""
    parent = str(payload.get("parent_hash", record.parent_hash))
    if parent == record.parent_hash:
        state = state_before
    else:
        numbers = {r.batch_hash: r.batch_no for r in ledger.records()}
        if parent != GENESIS_PARENT and parent not in numbers:
            raise HistoryError(
                f"epoch entry of batch {record.batch_no} names a parent {parent[:16]}… "
                "that is not a batch of this ledger"
            )
        state = ledger.state_as_of(numbers.get(parent, 0))
    try:
        ctx = build_context(state, subnet=subnet, head_hash=parent, previous=previous)
    except UnknownSubnet:
        raise HistoryError(f"subnet {subnet!r} did not exist at its epoch's head") from None
    return ctx, parent != record.parent_hash


def stored_epochs(
    ledger: Ledger,
    *,
    subnet: str,
    first: int,
    last: int,
    records: Sequence[str] | None = None,
    state_before_first: LedgerState | None = None,
) -> Iterator[StoredEpoch]:
    """Every committed epoch ``first..last`` of ``subnet``, oldest first, in one forward pass.

    ``records`` names the record tables to read (default: all); ``bonds`` and ``uids`` are always
    read, as the next epoch's context needs them (``PREVIOUS_RECORDS``). ``state_before_first``:
    the state right before the batch of ``first``, when the caller holds it (it is advanced in
    place as the walk goes on).
    """
    names = None if records is None else frozenset(records) | frozenset(PREVIOUS_RECORDS)
    committed = committed_epochs(ledger, subnet=subnet)
    if last - first + 1 > EPOCHS_PER_WALK_MAX:
        raise HistoryError(f"at most {EPOCHS_PER_WALK_MAX} epochs per walk")
    batches = {
        e: _batch_of(ledger, subnet=subnet, epoch=e, committed=committed) for e in (first, last)
    }
    if first > 0:
        prev_records, _ = read_records(
            ledger, subnet=subnet, epoch=first - 1, names=frozenset(PREVIOUS_RECORDS)
        )
        previous = previous_of(prev_records, ledger.epoch_payload(subnet, first - 1))
    else:
        previous = PreviousEpoch()
    wanted = {f"{subnet}/{e}": e for e in range(first, last + 1)}
    walk = ledger.walk_states(
        first_batch=batches[first], last_batch=batches[last], start=state_before_first
    )
    for record, state_before, table in walk:
        for label in record.epochs:
            epoch = wanted.get(label)
            if epoch is None:
                continue
            rows = epoch_rows(table, subnet=subnet, epoch=epoch)
            payload = _payload_of(rows)
            ctx, replanned = _context(
                ledger,
                subnet=subnet,
                state_before=state_before,
                record=record,
                payload=payload,
                previous=previous,
            )
            tables, problems = read_records(
                ledger, subnet=subnet, epoch=epoch, payload=payload, names=names
            )
            yield StoredEpoch(
                subnet=subnet,
                epoch=epoch,
                batch_no=record.batch_no,
                batch_hash=record.batch_hash,
                payload=payload,
                ctx=ctx,
                records=tables,
                rows=rows,
                record_problems=problems,
                replanned=replanned,
            )
            previous = previous_of(tables, payload)


def _walk_into(
    queue: Any, root: str, subnet: str, first: int, last: int, records: Sequence[str] | None
) -> None:
    """Child process of :func:`stored_epochs_ahead`: every stored epoch, then ``None``."""
    ledger = Ledger(Path(root))
    try:
        for stored in stored_epochs(ledger, subnet=subnet, first=first, last=last, records=records):
            queue.put(stored)
    except Exception as exc:  # handed to the parent, which raises it as one line
        queue.put(HistoryError(f"{type(exc).__name__}: {exc}"))
        return
    queue.put(None)


def stored_epochs_ahead(
    ledger: Ledger,
    *,
    subnet: str,
    first: int,
    last: int,
    records: Sequence[str] | None = None,
) -> Iterator[StoredEpoch]:
    """:func:`stored_epochs`, walked by a child process up to ``WALK_AHEAD_EPOCHS_MAX`` epochs
    ahead of the caller, so on two cores the walk and the caller's work on each epoch overlap.

    The child is forked, so it starts at once and never re-runs the caller's main module; a
    fork is only safe when this process runs no other thread (a thread holding a lock at the
    fork would leave it held in the child), so in a threaded process (a Prefect flow, a server)
    and on platforms without ``fork``, and for ranges shorter than ``WALK_AHEAD_MIN_EPOCHS``,
    the epochs are walked in this process. The child only reads, and is stopped when the caller
    stops iterating; waiting for the next epoch is bounded by ``WALK_AHEAD_WAIT_S``.
    """
    committed_epochs(ledger, subnet=subnet)  # one-line errors before a process starts
    if (
        last - first + 1 < WALK_AHEAD_MIN_EPOCHS
        or threading.active_count() > 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        yield from stored_epochs(ledger, subnet=subnet, first=first, last=last, records=records)
        return
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=WALK_AHEAD_EPOCHS_MAX)
    child = context.Process(
        target=_walk_into,
        args=(queue, str(ledger.root), subnet, first, last, records),
        name="taoflow-walk",
        daemon=True,
    )
    child.start()
    try:
        while True:
            try:
                item = queue.get(timeout=WALK_AHEAD_WAIT_S)
            except Empty:
                raise HistoryError(
                    f"reading the stored epochs took longer than {WALK_AHEAD_WAIT_S:.0f} s "
                    "for one epoch"
                ) from None
            if item is None:
                return
            if isinstance(item, HistoryError):
                raise item
            yield item
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=WALK_AHEAD_WAIT_S)
        queue.close()


def stored_epoch(
    ledger: Ledger, *, subnet: str, epoch: int, state_before: LedgerState | None = None
) -> StoredEpoch:
    """One committed epoch of ``subnet`` (a one-line ``HistoryError`` if there is none).

    ``state_before``: the state right before the epoch's batch, when the caller holds it
    (``Ledger.state_as_of(batch_no - 1)``); it is read, not changed (the walk stops at the
    epoch).
    """
    walk = stored_epochs(
        ledger, subnet=subnet, first=epoch, last=epoch, state_before_first=state_before
    )
    return next(walk)


def uid_column(stored: StoredEpoch, name: str) -> np.ndarray:
    """Column ``name`` of the stored ``uids`` record as numpy (empty if the record is absent)."""
    uids = stored.records.get("uids")
    if uids is None:
        return np.zeros(0)
    return np.asarray(uids.column(name).to_numpy(zero_copy_only=False))
