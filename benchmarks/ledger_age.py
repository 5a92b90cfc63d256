"""Benchmark: does the ledger stay as fast as it ages? ("flat with age", issue 10's target).

Usage::

    python benchmarks/ledger_age.py [--young 20] [--old 600] [--miners 256] [--validators 64]
                                    [--dir PATH]

Builds one network with ``taoflow network simulate``'s engine (``tasks.simulate``: seeded
synthetic scores through the real consensus and the real ledger commit path), measures the
operations below after ``--young`` epochs, keeps simulating to about ``--old`` epochs, measures
again and prints each old/young ratio beside the target (<= 1.5x). Issue 10 compares 20 with
5,000 epochs (``--old 5000``, a much longer run); the default old age (600) keeps a run under
10 minutes on a 2-core machine. The epochs (and batches) actually in the ledger at each
measurement are printed: the old measurement starts at the same offset from the last automatic
snapshot as the young one (so both replay the same tail), which can add up to
``snapshot_every - 1`` epochs.

Operations, each the median of ``REPEAT`` runs:

* gather — ``tasks.gather.gather_context`` on a fresh ``Ledger.open`` (what a new process, or a
  flow's first stage in a new worker, pays: recovery, newest snapshot + tail, head hash, the
  previous epoch's records) and on ``Ledger.shared`` (a long-lived flow worker that keeps one
  state and catches up incrementally; warmed up before timing, as a running worker is);
* emit — plan, build and commit the next epoch (records, co-signatures, the full commit path)
  from a fresh ``Ledger.open``, and through ``tasks.emit.commit_epoch`` (``Ledger.shared``, as
  the flow does). The context and the consensus proposal are prepared outside the timing;
* ``ledger balance`` / ``ledger supply`` — what the CLI computes without ``--as-of-epoch``: a
  fresh ``Ledger``'s ``state()``, then the sorted non-zero balances, or the supply terms and
  their identity;
* ``metagraph`` — ``taoflow.queries.metagraph`` on a fresh ``Ledger``;
* peak RSS of a fresh process that opens the ledger and builds its state (one run).

Bytes on disk per epoch are printed per kind — batch files, epoch record files
(``<ledger>/records/``) and snapshots — as the average over the ledger's epochs at each age and
as the bytes added per epoch between the two ages.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from benchmarks.ledger import fresh_process_memory, tree_bytes  # noqa: E402
from taoflow.ledger.store import Ledger  # noqa: E402
from taoflow.ledger.store.ledger import snapshot_every_batches  # noqa: E402
from taoflow.queries import metagraph  # noqa: E402
from taoflow.tasks.emit import commit_epoch, epoch_batch, plan_from_context  # noqa: E402
from taoflow.tasks.gather import EpochContext, gather_context  # noqa: E402
from taoflow.tasks.simulate import (  # noqa: E402
    EpochProposal,
    SimulationSpec,
    cosigners_of,
    propose_epoch,
    simulate,
)

SUBNET: Final = "age"
SEED: Final = 11
REPEAT: Final = 5
TARGET_RATIO: Final = 1.5
YOUNG_DEFAULT: Final = 20
OLD_DEFAULT: Final = 600
OLD_ISSUE: Final = 5_000
BYTE_KINDS: Final = ("batches", "records", "snapshots")


def median_s(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class Prepared:
    """The next epoch's context and consensus proposal, made outside the timing."""

    ctx: EpochContext
    proposal: EpochProposal
    validators: int


def prepare_next(root: Path) -> Prepared:
    ctx = gather_context(Ledger.shared(root), subnet=SUBNET)
    validators = sum(1 for n in ctx.neurons if n.role == "validator")
    return Prepared(ctx, propose_epoch(ctx, seed=SEED), validators)


def emit_fresh(root: Path, p: Prepared) -> None:
    """A new process's emit: open, plan, build and commit the epoch."""
    ledger = Ledger.open(root)
    plan = plan_from_context(p.ctx, p.proposal.shares)
    batch = epoch_batch(p.ctx, plan, shares=p.proposal.shares, records=p.proposal.records)
    ledger.commit(
        list(batch.txs),
        cosigners=cosigners_of(p.ctx, seed=SEED, validators=p.validators),
        records=batch.tables,
    )


def emit_shared(root: Path, p: Prepared) -> None:
    """The flow's emit stage: ``commit_epoch`` on this process's ``Ledger.shared``."""
    commit_epoch(
        root,
        p.ctx,
        p.proposal.shares,
        records=p.proposal.records,
        cosigners=cosigners_of(p.ctx, seed=SEED, validators=p.validators),
    )


def median_emit(root: Path, emit: Callable[[Path, Prepared], None]) -> float:
    """Median seconds of ``REPEAT`` emits (each commits the next epoch)."""
    times = []
    for _ in range(REPEAT):
        prepared = prepare_next(root)
        start = time.perf_counter()
        emit(root, prepared)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_balance(root: Path) -> list[tuple[str, int]]:
    """``taoflow ledger balance``: the state of a fresh Ledger, non-zero balances, sorted."""
    state = Ledger(root).state()
    return [(coldkey, rao) for coldkey, rao in sorted(state.balances.items()) if rao]


def cli_supply(root: Path) -> bool:
    """``taoflow ledger supply``: the supply terms of a fresh Ledger's state and the identity."""
    supply = Ledger(root).state().supply()
    held = supply["balances_rao"] + supply["stakes_rao"] + supply["locked_rao"]
    return supply["issued_rao"] - supply["burned_rao"] == held


def peak_rss_mib(root: Path) -> float:
    """Peak RSS of a fresh process that opens the ledger and builds its state."""
    return int(fresh_process_memory(root)["peak_kib"]) / 1024


@dataclass(frozen=True)
class Age:
    """One measurement: where the ledger was, the figures, and its bytes on disk."""

    epochs: int
    batches: int
    figures: dict[str, float]
    bytes_by_kind: dict[str, int]


def measure(root: Path) -> Age:
    """Every figure at the ledger's current age (the emits commit 2 · ``REPEAT`` epochs)."""
    ledger = Ledger(root)
    epochs = ledger.state().last_epoch[SUBNET] + 1
    batches = len(ledger.records())
    bytes_by_kind = {kind: tree_bytes(root / kind) for kind in BYTE_KINDS}
    gather_context(Ledger.shared(root), subnet=SUBNET)  # a running worker is caught up
    figures = {
        "gather, fresh Ledger.open (s)": median_s(
            lambda: gather_context(Ledger.open(root), subnet=SUBNET)
        ),
        "gather, Ledger.shared worker (s)": median_s(
            lambda: gather_context(Ledger.shared(root), subnet=SUBNET)
        ),
        "ledger balance, fresh (s)": median_s(lambda: cli_balance(root)),
        "ledger supply, fresh (s)": median_s(lambda: cli_supply(root)),
        "metagraph, fresh (s)": median_s(lambda: metagraph(Ledger(root), subnet=SUBNET)),
        "open + state, fresh process RSS (MiB)": peak_rss_mib(root),
        "emit, fresh Ledger.open (s)": median_emit(root, emit_fresh),
        "emit, commit_epoch / shared (s)": median_emit(root, emit_shared),
    }
    return Age(epochs, batches, figures, bytes_by_kind)


def spec(args: argparse.Namespace, epochs: int) -> SimulationSpec:
    return SimulationSpec(
        subnet=SUBNET,
        epochs=epochs,
        miners=args.miners,
        validators=args.validators,
        seed=SEED,
    )


def epochs_to_old(root: Path, *, young_batches: int, old: int) -> int:
    """Epochs to simulate so that the old measurement starts at ``old`` epochs or a little
    more, at the young one's offset from the automatic snapshots."""
    ledger = Ledger(root)
    batches = len(ledger.records())
    epochs = ledger.state().last_epoch[SUBNET] + 1
    target = batches + max(old - epochs, 0)
    every = snapshot_every_batches()
    if every:
        target += (young_batches - target) % every
    return target - batches


def print_report(args: argparse.Namespace, young: Age, old: Age) -> None:
    print(
        f"\nflat with age: {args.miners} miners, {args.validators} validators; young "
        f"{young.epochs} epochs ({young.batches} batches), old {old.epochs} epochs "
        f"({old.batches} batches); issue 10: {YOUNG_DEFAULT} vs {OLD_ISSUE:,} epochs; "
        f"median of {REPEAT}; snapshot every {snapshot_every_batches()} batches"
    )
    print(f"{'operation':<40}{'young':>10}{'old':>10}{'old/young':>11}{'target':>14}")
    for name, young_v in young.figures.items():
        old_v = old.figures[name]
        ratio = old_v / young_v if young_v else float("inf")
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        print(
            f"{name:<40}{young_v:>10.3f}{old_v:>10.3f}{ratio:>10.2f}x"
            f"{f'<= {TARGET_RATIO}x {verdict}':>14}"
        )
    print(f"\n{'bytes on disk per epoch':<40}{'young':>10}{'old':>10}{'added/epoch':>14}")
    added_epochs = max(old.epochs - young.epochs, 1)
    for kind in (*BYTE_KINDS, "total"):
        y = sum(young.bytes_by_kind.values()) if kind == "total" else young.bytes_by_kind[kind]
        o = sum(old.bytes_by_kind.values()) if kind == "total" else old.bytes_by_kind[kind]
        print(
            f"{kind:<40}{y / young.epochs:>10,.0f}{o / old.epochs:>10,.0f}"
            f"{(o - y) / added_epochs:>14,.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--young", type=int, default=YOUNG_DEFAULT)
    parser.add_argument("--old", type=int, default=OLD_DEFAULT, help=f"issue 10: {OLD_ISSUE}")
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--validators", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None, help="work here (default: a temp dir)")
    args = parser.parse_args(argv)
    if not 1 <= args.young < args.old:
        parser.error("need 1 <= --young < --old")
    base = Path(tempfile.mkdtemp(prefix="taoflow-ledger-age-", dir=args.dir))
    root = base / "ledger"
    try:
        simulate(root, spec(args, args.young))
        young = measure(root)
        rest = epochs_to_old(root, young_batches=young.batches, old=args.old)
        print(f"{young.epochs} epochs measured; simulating {rest} more …", flush=True)
        if rest > 0:
            simulate(root, spec(args, rest))
        old = measure(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_report(args, young, old)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
