"""Benchmark: what-if over stored epochs of a 256-miner × 64-validator simulated subnet.

Builds (or reuses, under ``--cache-dir``) a simulated network with ``tasks.simulate`` — the real
consensus and ledger, synthetic scores — then times ``tasks.audit.whatif.whatif`` over all its
epochs with κ changed (so every epoch's consensus is recomputed and the bonds carried forward),
and prints the seconds beside the original epoch time (``simulate``'s seconds per epoch) and the
target (``TARGET_S`` for ``TARGET_EPOCHS`` epochs). The issue's figure is ``--epochs 1000``
(building it takes several minutes once; the cache keeps it); a smaller ``--epochs`` is a quick
run, and its time is also shown scaled to 1,000 epochs.

Usage: ``.venv/bin/python benchmarks/whatif.py --epochs 1000 --cache-dir .bench-cache``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

TARGET_EPOCHS: Final = 1_000
TARGET_S: Final = 30.0
SUBNET: Final = "bench"
MINERS: Final = 256
VALIDATORS: Final = 64
OVERRIDES: Final = "kappa=0.6"
EPOCHS_MAX: Final = 100_000


def build(ledger_dir: Path, *, epochs: int) -> float:
    """Simulate up to ``epochs`` epochs (continuing a cached network); seconds per new epoch
    (0.0 when the cache already held them all)."""
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.simulate import SimulationSpec, simulate

    have = 0
    if (ledger_dir / "COMMITS").exists():
        have = Ledger.open(ledger_dir).state().last_epoch.get(SUBNET, -1) + 1
    missing = epochs - have
    if missing <= 0:
        return 0.0
    spec = SimulationSpec(subnet=SUBNET, epochs=missing, miners=MINERS, validators=VALIDATORS)
    print(f"building {missing} simulated epochs ({MINERS} × {VALIDATORS}) in {ledger_dir} …")
    return simulate(ledger_dir, spec).seconds_per_epoch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TARGET_EPOCHS)
    parser.add_argument("--cache-dir", type=Path, default=None, help="Keep the built network")
    parser.add_argument("--engine", choices=("numpy", "duckdb"), default="numpy")
    args = parser.parse_args(argv)
    if not 1 <= args.epochs <= EPOCHS_MAX:
        parser.error(f"--epochs must be between 1 and {EPOCHS_MAX}")
    with tempfile.TemporaryDirectory(prefix="taoflow-bench-whatif-") as scratch:
        root = args.cache_dir if args.cache_dir is not None else Path(scratch)
        ledger_dir = root / f"whatif-{MINERS}x{VALIDATORS}" / "ledger"
        epoch_s = build(ledger_dir, epochs=args.epochs)
        return _time_whatif(ledger_dir, epochs=args.epochs, epoch_s=epoch_s, engine=args.engine)


def _time_whatif(ledger_dir: Path, *, epochs: int, epoch_s: float, engine: str) -> int:
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.audit.whatif import parse_overrides, whatif

    ledger = Ledger.open(ledger_dir)
    started_s = time.perf_counter()
    report = whatif(
        ledger,
        subnet=SUBNET,
        first=0,
        last=epochs - 1,
        overrides=parse_overrides(OVERRIDES),
        engine="duckdb" if engine == "duckdb" else "numpy",
    )
    took_s = time.perf_counter() - started_s
    per_epoch_ms = 1000 * took_s / epochs
    scaled_s = took_s * TARGET_EPOCHS / epochs
    print(f"# what-if ({OVERRIDES}, engine {engine}) over {epochs} epochs, {MINERS} × {VALIDATORS}")
    if epoch_s:
        print(f"original epoch (simulate, this build): {1000 * epoch_s:9.1f} ms/epoch")
    print(f"what-if:                                {per_epoch_ms:9.1f} ms/epoch")
    print(f"what-if total:                          {took_s:9.1f} s")
    print(f"scaled to {TARGET_EPOCHS} epochs:                  {scaled_s:9.1f} s")
    print(f"target for {TARGET_EPOCHS} epochs:                 {TARGET_S:9.1f} s")
    print(f"epochs recomputed in DuckDB (guard):    {report.duckdb_epochs:9d}")
    print(f"total emission conserved to the rao:    {report.conserved!s:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
