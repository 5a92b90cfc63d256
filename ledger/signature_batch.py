"""Bulk signature checks: many transactions (or an Arrow table of them) at once, in parallel
worker processes when there are many.

Invariants:
- ``signature_problems(txs, network_id=n)[i] == signature_problem(txs[i], network_id=n)`` for
  every ``i``, and ``signature_problems_table(t, network_id=n)[i]`` is the same answer for row
  ``i`` of the ledger table ``t`` (a row whose kind is not a known kind gets
  ``"unknown transaction kind '…'"``). The answer does not depend on the number of workers or
  the chunk size.
- The cheap checks (system kinds, signer, signature length, network prefix) and the signed
  messages are computed in the calling process; only the ed25519 verifications go to workers,
  as ``(public_hex, message, signature)`` tuples of str and bytes (no user object is pickled).
- Worker processes are started with the ``"spawn"`` method (safe when the caller runs threads),
  only when at least ``PARALLEL_VERIFY_MIN_TXS`` signatures need verifying, the work spans more
  than one chunk and the caller is not itself a daemonic process; they live for one call. At
  most ``MAX_VERIFY_WORKERS`` workers, chunks of at most ``VERIFY_CHUNK_TXS`` signatures, and at
  most ``MAX_CHUNKS_IN_FLIGHT_PER_WORKER`` chunks per worker submitted and not yet collected.
- An invalid ``network_id`` (neither "" nor 64 hex digits) raises ``ValueError`` before any work.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.keys import is_account_id
from taoflow.ledger.schema import SIGNED_BY_COLDKEY, SIGNED_BY_HOTKEY, SYSTEM_KINDS, TX_SCHEMA, Tx
from taoflow.ledger.signature_worker import VALID, VerifyJob, verify_jobs
from taoflow.ledger.signing import (
    NETWORK_ID_BYTES,
    SIGNATURE_FIELD_BYTES,
    SIGNED_FOR_ANOTHER_NETWORK,
    message_head,
    network_prefix,
    signer_of,
    signing_body,
    signing_message,
)

PARALLEL_VERIFY_MIN_TXS: Final = 4096
"""Fewer signatures to verify than this are verified in the calling process (a worker pool
costs ~0.1–0.2 s to start)."""
VERIFY_CHUNK_TXS: Final = 2048
"""Signatures per unit of work sent to a worker."""
MAX_VERIFY_WORKERS: Final = 32
"""Upper bound on the worker processes of one call, whatever ``workers`` or the CPU count."""
MAX_CHUNKS_IN_FLIGHT_PER_WORKER: Final = 2
"""Chunks submitted to the pool and not yet collected, per worker."""
VERIFY_START_METHOD: Final = "spawn"

SYSTEM_SIGNED: Final = "system entries carry no signature"
MISSING_SIGNATURE: Final = "missing signature"
BAD_SIGNATURE: Final = "bad signature"

_SYSTEM_KIND_NAMES: Final = frozenset(str(k) for k in SYSTEM_KINDS)
_COLDKEY_KIND_NAMES: Final = frozenset(str(k) for k in SIGNED_BY_COLDKEY)
_HOTKEY_KIND_NAMES: Final = frozenset(str(k) for k in SIGNED_BY_HOTKEY)


def default_workers() -> int:
    """The CPUs this process may run on, at most ``MAX_VERIFY_WORKERS``."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, MAX_VERIFY_WORKERS))


def _check_options(*, workers: int | None, parallel_min_txs: int, chunk_txs: int) -> int:
    """The worker count to use; ``ValueError`` on an out-of-range option."""
    if workers is not None and (type(workers) is not int or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if type(chunk_txs) is not int or chunk_txs < 1:
        raise ValueError(f"chunk_txs must be a positive integer, got {chunk_txs!r}")
    if type(parallel_min_txs) is not int or parallel_min_txs < 0:
        raise ValueError(f"parallel_min_txs must be >= 0, got {parallel_min_txs!r}")
    chosen = default_workers() if workers is None else workers
    return min(chosen, MAX_VERIFY_WORKERS)


def _checked_prefix(network_id: str) -> bytes:
    """``network_prefix(network_id)``; one clear ``ValueError`` for anything but "" or 64 hex."""
    try:
        return network_prefix(network_id)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(
            f"network id must be empty or 64 hex digits, got {str(network_id)[:70]!r}"
        ) from None


def _precheck(signer: str, signature: object, prefix: bytes) -> str | None:
    """``signature_problem``'s answer before the ed25519 check (None: verify the signature)."""
    if not is_account_id(signer):
        return f"signer {signer[:20]!r} is not an account id (64 hex digits)"
    if not signature:
        return MISSING_SIGNATURE
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_FIELD_BYTES:
        return BAD_SIGNATURE
    if signature[:NETWORK_ID_BYTES] != prefix:
        return SIGNED_FOR_ANOTHER_NETWORK
    return None


def signature_problems(
    txs: Sequence[Tx],
    *,
    network_id: str,
    workers: int | None = None,
    parallel_min_txs: int = PARALLEL_VERIFY_MIN_TXS,
    chunk_txs: int = VERIFY_CHUNK_TXS,
) -> list[str | None]:
    """``signature_problem`` of every transaction of ``txs``, in order, computed in bulk.

    ``workers`` processes (default: the CPUs available, at most ``MAX_VERIFY_WORKERS``) verify
    the signatures when at least ``parallel_min_txs`` need verifying; ``chunk_txs`` signatures
    go to a worker at a time.
    """
    n_workers = _check_options(
        workers=workers, parallel_min_txs=parallel_min_txs, chunk_txs=chunk_txs
    )
    prefix = _checked_prefix(network_id)
    results: list[str | None] = [None] * len(txs)
    positions: list[int] = []
    jobs: list[VerifyJob] = []
    for index, tx in enumerate(txs):
        if tx.kind in SYSTEM_KINDS:
            if tx.signature == b"":
                continue
            results[index] = SYSTEM_SIGNED
            continue
        signer = signer_of(tx)
        if signer is None:
            results[index] = f"unknown transaction kind {tx.kind!r}"
            continue
        problem = _precheck(signer, tx.signature, prefix)
        if problem is not None:
            results[index] = problem
            continue
        positions.append(index)
        jobs.append((signer, signing_message(tx, network_id), tx.signature[NETWORK_ID_BYTES:]))
    _record_verdicts(
        results,
        positions=positions,
        jobs=jobs,
        workers=n_workers,
        parallel_min_txs=parallel_min_txs,
        chunk_txs=chunk_txs,
    )
    return results


def signature_problems_table(
    table: pa.Table,
    *,
    network_id: str,
    workers: int | None = None,
    parallel_min_txs: int = PARALLEL_VERIFY_MIN_TXS,
    chunk_txs: int = VERIFY_CHUNK_TXS,
) -> list[str | None]:
    """``signature_problem`` of every row of ``table`` (schema ``TX_SCHEMA``), in order.

    System rows are answered column-wise (no per-row Python work unless they carry a
    signature); only the other rows are read into Python, one column at a time. Options as for
    ``signature_problems``; ``ValueError`` for a table without the ledger schema or with nulls.
    """
    if table.schema.remove_metadata() != TX_SCHEMA.remove_metadata():
        raise ValueError("table does not have the ledger transaction schema")
    if any(column.null_count for column in table.columns):
        raise ValueError("ledger table has null values")
    n_workers = _check_options(
        workers=workers, parallel_min_txs=parallel_min_txs, chunk_txs=chunk_txs
    )
    prefix = _checked_prefix(network_id)
    results: list[str | None] = [None] * table.num_rows
    # Masks as single arrays: pyarrow 25's indices_nonzero crashes on a chunked array that has
    # no chunks (what a compute function returns for an empty table).
    system_names = pa.array(sorted(_SYSTEM_KIND_NAMES))
    is_system = pc.is_in(table.column("kind"), value_set=system_names).combine_chunks()
    has_signature = pc.greater(pc.binary_length(table.column("signature")), 0).combine_chunks()
    signed_system = pc.and_(is_system, has_signature)
    for index in pc.indices_nonzero(signed_system).to_pylist():
        results[index] = SYSTEM_SIGNED
    user_rows = pc.indices_nonzero(pc.invert(is_system))
    positions, jobs = _table_jobs(
        table.take(user_rows),
        row_numbers=user_rows.to_pylist(),
        results=results,
        prefix=prefix,
        head=message_head(network_id),
    )
    _record_verdicts(
        results,
        positions=positions,
        jobs=jobs,
        workers=n_workers,
        parallel_min_txs=parallel_min_txs,
        chunk_txs=chunk_txs,
    )
    return results


def _table_jobs(
    rows: pa.Table,
    *,
    row_numbers: list[int],
    results: list[str | None],
    prefix: bytes,
    head: bytes,
) -> tuple[list[int], list[VerifyJob]]:
    """The verification jobs of the non-system ``rows`` (and their row numbers); the rows that
    fail a cheap check get their answer in ``results``."""
    col = {name: rows.column(name).to_pylist() for name in rows.column_names}
    positions: list[int] = []
    jobs: list[VerifyJob] = []
    for j, index in enumerate(row_numbers):
        kind = col["kind"][j]
        if kind in _COLDKEY_KIND_NAMES:
            signer = col["coldkey"][j]
        elif kind in _HOTKEY_KIND_NAMES:
            signer = col["hotkey"][j]
        else:
            results[index] = f"unknown transaction kind {kind!r}"
            continue
        signature = col["signature"][j]
        problem = _precheck(signer, signature, prefix)
        if problem is not None:
            results[index] = problem
            continue
        body = signing_body(
            tx_id=col["tx_id"][j],
            kind=kind,
            subnet=col["subnet"][j],
            epoch=col["epoch"][j],
            block=col["block"][j],
            coldkey=col["coldkey"][j],
            hotkey=col["hotkey"][j],
            dest=col["dest"][j],
            uid=col["uid"][j],
            amount_rao=col["amount_rao"][j],
            payload=col["payload"][j],
            nonce=col["nonce"][j],
        )
        positions.append(index)
        jobs.append((signer, head + body, signature[NETWORK_ID_BYTES:]))
    return positions, jobs


def _record_verdicts(
    results: list[str | None],
    *,
    positions: list[int],
    jobs: list[VerifyJob],
    workers: int,
    parallel_min_txs: int,
    chunk_txs: int,
) -> None:
    """Verify ``jobs`` and set ``results[positions[i]]`` to ``BAD_SIGNATURE`` where job i fails."""
    n_chunks = -(-len(jobs) // chunk_txs)
    # A daemonic process (a pool worker itself) may not start processes: verify here.
    can_fork = not multiprocessing.current_process().daemon
    if can_fork and workers > 1 and n_chunks > 1 and len(jobs) >= parallel_min_txs:
        verdicts = _verify_in_workers(jobs, workers=min(workers, n_chunks), chunk_txs=chunk_txs)
    else:
        verdicts = verify_jobs(jobs)
    for position, verdict in zip(positions, verdicts, strict=True):
        if verdict != VALID:
            results[position] = BAD_SIGNATURE


def _verify_in_workers(jobs: list[VerifyJob], *, workers: int, chunk_txs: int) -> bytes:
    """``verify_jobs(jobs)``, computed by ``workers`` spawned processes, ``chunk_txs`` at a time."""
    context = multiprocessing.get_context(VERIFY_START_METHOD)
    max_in_flight = workers * MAX_CHUNKS_IN_FLIGHT_PER_WORKER
    pending: deque[Future[bytes]] = deque()
    verdicts = bytearray()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for start in range(0, len(jobs), chunk_txs):
            pending.append(pool.submit(verify_jobs, jobs[start : start + chunk_txs]))
            if len(pending) >= max_in_flight:
                verdicts += pending.popleft().result()
        while pending:
            verdicts += pending.popleft().result()
    return bytes(verdicts)
