"""Benchmark: bulk signature checks (``ledger.signature_batch``) against raw ed25519 verifies.

Usage::

    python benchmarks/signatures.py [--txs 20_000] [--accounts 256] [--repeat 2] [--workers N]

What it measures, all in one run, on ``--txs`` signed transfers between ``--accounts`` accounts
(derived benchmark keys, signed for a benchmark network id):

(a) raw: ``Ed25519PublicKey.verify`` over precomputed (loaded key, message, signature) triples,
    one process — the ceiling a signature check can reach with ``cryptography``;
(b) ``signature_problems(txs, workers=1)``: every check ``signature_problem`` makes (kind,
    signer, length, network prefix, signed message rebuilt from the transaction, key cache,
    ed25519 verify), one process;
(b') ``signature_problems_table(txs_to_table(txs), workers=1)``: the same from the ledger's Arrow
    table (the table is built outside the timing, as the ledger already holds it);
(c) ``signature_problems`` with ``--workers`` processes (default: every CPU this process may
    use, at most ``MAX_VERIFY_WORKERS``), worker start-up included.

Each single-process figure is the best of ``--repeat`` interleaved rounds; every run's answers
are checked (all valid) before its time counts. Target (issue 10): (b) >= 80 % of (a).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

import cryptography  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from taoflow.ledger.keys import Keypair  # noqa: E402
from taoflow.ledger.schema import Kind, Tx, txs_to_table  # noqa: E402
from taoflow.ledger.signature_batch import (  # noqa: E402
    default_workers,
    signature_problems,
    signature_problems_table,
)
from taoflow.ledger.signing import NETWORK_ID_BYTES, sign, signing_message  # noqa: E402

NETWORK_ID = hashlib.sha256(b"bench-network/signatures").hexdigest()
TARGET_SINGLE_RATIO = 0.80
DEFAULT_TXS = 20_000
DEFAULT_ACCOUNTS = 256
DEFAULT_REPEAT = 2
MAX_REPEAT = 10

T = TypeVar("T")
RawTriple = tuple[Ed25519PublicKey, bytes, bytes]


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def keypair(name: str) -> Keypair:
    """A fixed benchmark key per name (derived from a public seed: never use outside tests)."""
    return Keypair.from_private_bytes(hashlib.sha256(f"bench-key/{name}".encode()).digest())


def signed_transfers(n_txs: int, *, n_accounts: int) -> list[Tx]:
    """``n_txs`` transfers, signed by ``n_accounts`` accounts in turn, each to the next one."""
    keys = [keypair(f"signer/{i}") for i in range(n_accounts)]
    txs = []
    for i in range(n_txs):
        signer, dest = keys[i % n_accounts], keys[(i + 1) % n_accounts]
        tx = Tx(
            f"transfer/{i}",
            Kind.TRANSFER,
            coldkey=signer.public_hex,
            dest=dest.public_hex,
            amount_rao=1_000_000 + i,
            nonce=i // n_accounts + 1,
        )
        txs.append(sign(tx, signer, network_id=NETWORK_ID))
    return txs


def raw_triples(txs: list[Tx]) -> list[RawTriple]:
    """(loaded public key, message, 64-byte signature) per transaction, one key object per
    account: everything a bulk check computes, precomputed."""
    loaded: dict[str, Ed25519PublicKey] = {}
    triples = []
    for tx in txs:
        key = loaded.get(tx.coldkey)
        if key is None:
            key = loaded[tx.coldkey] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(tx.coldkey))
        triples.append((key, signing_message(tx, NETWORK_ID), tx.signature[NETWORK_ID_BYTES:]))
    return triples


def verify_raw(triples: list[RawTriple]) -> int:
    """Verify every triple (``InvalidSignature`` propagates); the count verified."""
    for key, message, signature in triples:
        key.verify(signature, message)
    return len(triples)


def _all_valid(answers: list[str | None], n_txs: int) -> None:
    bad = [a for a in answers if a is not None]
    if len(answers) != n_txs or bad:
        raise RuntimeError(f"benchmark transactions did not verify: {bad[:1]}")


def bench(
    n_txs: int,
    *,
    n_accounts: int = DEFAULT_ACCOUNTS,
    repeat: int = DEFAULT_REPEAT,
    workers: int | None = None,
) -> dict[str, float]:
    """The rates (signatures/s) and ratios to raw of (a), (b), (b') and (c), and the workers.

    Keys: ``raw_per_s``, ``bulk_per_s``, ``bulk_ratio``, ``table_per_s``, ``table_ratio``,
    ``parallel_per_s``, ``parallel_ratio``, ``workers``, ``txs``.
    """
    if n_txs < 1 or not 1 <= repeat <= MAX_REPEAT:
        raise ValueError(f"need n_txs >= 1 and 1 <= repeat <= {MAX_REPEAT}")
    n_workers = default_workers() if workers is None else workers
    txs = signed_transfers(n_txs, n_accounts=n_accounts)
    triples = raw_triples(txs)
    table = txs_to_table(txs)
    raw_s = bulk_s = table_s = parallel_s = float("inf")
    for _ in range(repeat):
        raw_s = min(raw_s, timed(lambda: verify_raw(triples))[1])
        answers, seconds = timed(lambda: signature_problems(txs, network_id=NETWORK_ID, workers=1))
        _all_valid(answers, n_txs)
        bulk_s = min(bulk_s, seconds)
        answers, seconds = timed(
            lambda: signature_problems_table(table, network_id=NETWORK_ID, workers=1)
        )
        _all_valid(answers, n_txs)
        table_s = min(table_s, seconds)
    for _ in range(repeat):
        answers, seconds = timed(
            lambda: signature_problems(
                txs, network_id=NETWORK_ID, workers=n_workers, parallel_min_txs=0
            )
        )
        _all_valid(answers, n_txs)
        parallel_s = min(parallel_s, seconds)
    raw = n_txs / raw_s
    return {
        "txs": float(n_txs),
        "raw_per_s": raw,
        "bulk_per_s": n_txs / bulk_s,
        "bulk_ratio": raw_s / bulk_s,
        "table_per_s": n_txs / table_s,
        "table_ratio": raw_s / table_s,
        "parallel_per_s": n_txs / parallel_s,
        "parallel_ratio": raw_s / parallel_s,
        "workers": float(n_workers),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(figures: dict[str, float]) -> None:
    workers = int(figures["workers"])
    rows = [
        ("(a) raw Ed25519PublicKey.verify, 1 process", "raw", ""),
        ("(b) signature_problems, 1 process", "bulk", f">= {TARGET_SINGLE_RATIO:.2f}"),
        ("(b') signature_problems_table, 1 process", "table", ""),
        (f"(c) signature_problems, {workers} processes", "parallel", ""),
    ]
    print("\n" + "=" * 92)
    print(f"{'signature checks':<48}{'rate (sig/s)':>16}{'ratio to raw':>14}{'target':>8}{'':>6}")
    print("-" * 92)
    for label, name, target in rows:
        rate = figures[f"{name}_per_s"]
        ratio = 1.0 if name == "raw" else figures[f"{name}_ratio"]
        mark = verdict(ratio >= TARGET_SINGLE_RATIO) if target else ""
        print(f"{label:<48}{rate:>16,.0f}{ratio:>14.2f}{target:>8}{mark:>6}")
    print("=" * 92)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--txs", type=int, default=DEFAULT_TXS, help="signed transfers")
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS, help="signers")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="best of N rounds")
    parser.add_argument("--workers", type=int, default=None, help="processes for (c)")
    args = parser.parse_args(argv)
    if args.txs < 1 or args.accounts < 1 or not 1 <= args.repeat <= MAX_REPEAT:
        print(f"error: need --txs >= 1, --accounts >= 1, 1 <= --repeat <= {MAX_REPEAT}")
        return 2
    print(
        f"signature benchmark: --txs {args.txs:,} --accounts {args.accounts} "
        f"--repeat {args.repeat}; python {sys.version.split()[0]}, "
        f"cryptography {cryptography.__version__}, {os.cpu_count()} CPUs "
        f"({default_workers()} usable)",
        flush=True,
    )
    figures = bench(args.txs, n_accounts=args.accounts, repeat=args.repeat, workers=args.workers)
    print_table(figures)
    return 0 if figures["bulk_ratio"] >= TARGET_SINGLE_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
