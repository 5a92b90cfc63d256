"""Benchmark: replaying one stored epoch beside the original epoch's compute.

Usage::

    python benchmarks/replay.py [--miners 256] [--validators 64] [--epochs 3] [--repeat 3]

Builds a simulated network (``tasks.simulate``: synthetic scores through the real consensus and
ledger) in a temporary directory, then for its last epoch measures, best of ``--repeat`` after a
warm-up run, in this process:

- **original**: the epoch's own compute as the simulator ran it -- ``propose_epoch`` (scores →
  weights → DuckDB consensus → shares and records) and the emit stage's plan and batch
  (``plan_from_context``, ``epoch_batch``), on the context the epoch was gathered from;
- **replay**: ``replay_epoch(from_stage="consensus")`` of the stored epoch -- weights re-derived
  from the stored scores, consensus re-run, the plan rebuilt, and every record, the payload's
  shares and each payout row compared (the simulated network has no artifacts to re-evaluate);
- **load**: ``stored_epoch`` (rebuilding the epoch's inputs from the ledger and reading its
  records), which a replay of a range shares across epochs (one forward pass).

Prints one markdown table with the ratio replay / original (target ≤ 2×) and whether the replay
was identical. Evaluation is not part of either side: the original epoch's evaluation would be
re-run by a replay from ``evaluate`` at the same cost, model for model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from taoflow.ledger.store import Ledger  # noqa: E402
from taoflow.tasks.audit.history import stored_epoch  # noqa: E402
from taoflow.tasks.audit.replay import replay_epoch  # noqa: E402
from taoflow.tasks.emit import epoch_batch, plan_from_context  # noqa: E402
from taoflow.tasks.simulate import SimulationSpec, propose_epoch, simulate  # noqa: E402

SUBNET: Final = "bench"
SEED: Final = 1
TARGET_RATIO: Final = 2.0
REPEAT_MAX: Final = 50
T = TypeVar("T")


def best_of(repeat: int, work: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeat`` timed runs after one warm-up run, and the last result."""
    result = work()
    best_s = float("inf")
    for _ in range(repeat):
        started_s = time.perf_counter()
        result = work()
        best_s = min(best_s, time.perf_counter() - started_s)
    return best_s, result


def measure(root: Path, *, miners: int, validators: int, epochs: int, repeat: int) -> list[str]:
    """The markdown table's rows for a fresh simulated network under ``root``."""
    spec = SimulationSpec(
        subnet=SUBNET, epochs=epochs, miners=miners, validators=validators, seed=SEED
    )
    simulate(root / "ledger", spec)
    ledger = Ledger.open(root / "ledger")
    last = epochs - 1
    stored = stored_epoch(ledger, subnet=SUBNET, epoch=last)

    def original() -> object:
        proposal = propose_epoch(stored.ctx, seed=SEED)
        plan = plan_from_context(stored.ctx, proposal.shares)
        return epoch_batch(stored.ctx, plan, shares=proposal.shares, records=proposal.records)

    original_s, _ = best_of(repeat, original)
    load_s, _ = best_of(repeat, lambda: stored_epoch(ledger, subnet=SUBNET, epoch=last))
    replay_s, report = best_of(
        repeat, lambda: replay_epoch(stored, from_stage="consensus", ledger=ledger)
    )
    ratio = replay_s / original_s
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    size = f"{miners} miners × {validators} validators, epoch {last}"
    return [
        f"| original epoch compute (propose + plan + batch) | {original_s:.3f} s | {size} |",
        f"| replay from consensus (compute + compare) | {replay_s:.3f} s | "
        f"{'identical' if report.identical else 'DIFFERS at ' + str(report.first_difference)} |",
        f"| replay / original | {ratio:.2f}× | {verdict} the ≤ {TARGET_RATIO:g}× target |",
        f"| load the stored epoch (inputs + records) | {load_s:.3f} s | shared by a range walk |",
        f"| replay incl. load / original | {(replay_s + load_s) / original_s:.2f}× | |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--validators", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="epochs simulated (≥ 2)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.epochs < 2 or not 1 <= args.repeat <= REPEAT_MAX:
        parser.error(f"--epochs must be ≥ 2 and --repeat in 1..{REPEAT_MAX}")
    with tempfile.TemporaryDirectory(prefix="taoflow-replay-bench-") as tmp:
        rows = measure(
            Path(tmp),
            miners=args.miners,
            validators=args.validators,
            epochs=args.epochs,
            repeat=args.repeat,
        )
    print("| measure | value | note |")
    print("|---|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
