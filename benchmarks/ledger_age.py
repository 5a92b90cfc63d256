"""Benchmark: does the ledger stay as fast as it ages? ("flat with age", issue 10's target).

Usage::

    python benchmarks/ledger_age.py [--young 20] [--old 5000] [--miners 256] [--validators 64]

Builds one network with ``taoflow network simulate``'s engine (``tasks.simulate``: seeded
synthetic scores through the real consensus and the real ledger commit path), measures the
operations below after ``--young`` epochs, keeps simulating to ``--old`` epochs, measures again
and prints old/young ratios side by side with the target (≤ 1.5×). Every measurement is taken in
a fresh ``Ledger`` object, as a new process (a CLI call, a flow's first stage) sees it:

* gather — open the ledger (recovery), replay to the head, build the epoch context;
* emit — plan and commit one epoch (the real commit path: rules, supply identity, signatures);
* ``ledger balance`` / ``ledger supply`` — DuckDB views over the verified batches;
* ``metagraph`` — the last epoch's outputs per uid;

and prints the bytes on disk per epoch. Bounds: ``REPEAT`` timings per operation (median).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from ledger.store import Ledger  # noqa: E402
from ledger.views import LedgerViews  # noqa: E402
from taoflow.queries import metagraph  # noqa: E402
from tasks.gather import gather_context  # noqa: E402
from tasks.simulate import SimulationSpec, commit_simulated_epoch, simulate  # noqa: E402

SUBNET = "age"
SEED = 11
REPEAT = 3
TARGET_RATIO = 1.5


def median_s(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(root: Path) -> dict[str, float]:
    """Seconds per operation, each on a fresh ``Ledger`` (what a new process pays)."""

    def gather() -> None:
        ledger = Ledger.open(root)
        gather_context(ledger, subnet=SUBNET)

    def balance() -> None:
        LedgerViews(Ledger(root).table()).balances()

    def supply() -> None:
        LedgerViews(Ledger(root).table()).supply()

    def graph() -> None:
        metagraph(Ledger(root), subnet=SUBNET)

    out = {
        "gather (open + state + context)": median_s(gather),
        "ledger balance (all accounts)": median_s(balance),
        "ledger supply": median_s(supply),
        "metagraph": median_s(graph),
    }
    start = time.perf_counter()
    commit_simulated_epoch(Ledger.open(root), seed=SEED, subnet=SUBNET)
    out["emit (open + plan + commit one epoch)"] = time.perf_counter() - start
    return out


def bytes_per_epoch(root: Path, epochs: int) -> float:
    total = sum(p.stat().st_size for p in (root / "batches").iterdir())
    return total / max(epochs, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--young", type=int, default=20)
    parser.add_argument("--old", type=int, default=5_000)
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--validators", type=int, default=64)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="taoflow-ledger-age-"))
    root = base / "ledger"
    try:
        spec = SimulationSpec(
            subnet=SUBNET,
            epochs=args.young,
            miners=args.miners,
            validators=args.validators,
            seed=SEED,
        )
        simulate(root, spec)
        young = measure(root)
        young_bytes = bytes_per_epoch(root, args.young + 1)
        rest = args.old - args.young - 1  # measure() committed one epoch
        print(f"{args.young} epochs measured; simulating {rest} more …", flush=True)
        if rest > 0:
            simulate(
                root,
                SimulationSpec(
                    subnet=SUBNET,
                    epochs=rest,
                    miners=args.miners,
                    validators=args.validators,
                    seed=SEED,
                ),
            )
        old = measure(root)
        old_bytes = bytes_per_epoch(root, args.old + 1)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"\nflat with age: {args.miners} miners, {args.validators} validators, "
        f"{args.young} vs {args.old} epochs (median of {REPEAT}, fresh Ledger each)"
    )
    print(f"{'operation':<40}{'young s':>10}{'old s':>10}{'old/young':>11}{'target':>9}")
    for name, young_s in young.items():
        ratio = old[name] / young_s if young_s else float("inf")
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        target = f"≤{TARGET_RATIO}× {verdict}"
        print(f"{name:<40}{young_s:>10.3f}{old[name]:>10.3f}{ratio:>10.2f}×  {target}")
    print(f"{'bytes on disk per epoch':<40}{young_bytes:>10,.0f}{old_bytes:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
