"""Benchmark: the DuckDB Yuma epoch against a vectorised NumPy epoch, in one process.

Usage::

    python benchmarks/consensus.py [--sizes small|all] [--repeat K] [--profile]

For each size (validators × uids: 256 × 4,096 and 1,024 × 16,384 with dense weight rows,
4,096 × 65,536 with 1 % of each validator row set) it builds deterministic random inputs, runs
``tasks.consensus.sql.run_epoch`` (DuckDB, ``SET threads=2``) and ``benchmarks.numpy_yuma``'s
vectorised NumPy epoch on the same inputs in this process, and prints one markdown table: wall
time (best of K after a warm-up run), peak memory, their ratio, whether the project's targets are
met, and how far the two implementations' outputs agree.

Targets (project requirement): DuckDB at least 3× faster than the vectorised NumPy epoch at
1,024 × 16,384, and 4,096 × 65,536 at 1 % in under 2 s on 2 cores.

Inputs per size (seeded ``numpy.random.Generator``): the first V uids are validators with integer
stakes (lognormal, 10^12–10^16 rao), the others miners with small or zero stakes; every validator's
u16 weight row is max-upscaled (largest entry 65,535) and built from a shared per-miner quality
times per-validator noise, so validators broadly agree and κ-clipping does real work. The sparse
case weights a common "popular" set of miners plus random others, 1 % of n per row. The measured
epoch follows one warm-up epoch (computed with the NumPy baseline) that supplies permits and
u16 bonds, so the bond EMA has an old bond matrix; between the two epochs 0.5 % of the miners
re-registered (their bond columns reset) and some validators' last weight update predates those
re-registrations (their weights to them are masked as outdated).

``--profile`` additionally times every SQL statement of ``run_epoch`` one by one (same cursor,
same registered inputs) at the largest selected size and prints the per-statement table.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
import numpy as np
import pyarrow as pa

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from benchmarks.numpy_yuma import choose_layout, numpy_epoch  # noqa: E402
from tasks.consensus import sql as consensus_sql  # noqa: E402
from tasks.consensus.params import YumaParams  # noqa: E402
from tasks.consensus.sql import run_epoch  # noqa: E402
from tasks.consensus.types import EpochInputs, EpochOutputs, EpochState  # noqa: E402

T = TypeVar("T")
EpochResult = tuple[EpochOutputs, EpochState]

DUCKDB_THREADS = 2
SEED = 20_261_126
TEMPO_BLOCKS = 360
SPEEDUP_TARGET = 3.0
LARGE_SECONDS_TARGET = 2.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Size:
    """One benchmark size: V validators setting weights over n uids."""

    name: str
    validators: int
    uids: int
    density: float  # fraction of each validator row that is set (1.0 = dense)

    @property
    def label(self) -> str:
        kind = "dense" if self.density >= 1.0 else f"{self.density:.0%}"
        return f"{self.validators:,} × {self.uids:,} {kind}"


SMALL = Size("small", 256, 4_096, 1.0)
MEDIUM = Size("medium", 1_024, 16_384, 1.0)
LARGE = Size("large", 4_096, 65_536, 0.01)
SIZES = {"small": (SMALL,), "all": (SMALL, MEDIUM, LARGE)}


@dataclass(frozen=True)
class Case:
    """The measured epoch of one size: inputs, previous-epoch state and parameters."""

    size: Size
    inputs: EpochInputs
    state: EpochState
    params: YumaParams


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------
def _weights_table(validator: np.ndarray, miner: np.ndarray, weight_u16: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "validator": pa.array(validator.astype(np.int32)),
            "miner": pa.array(miner.astype(np.int32)),
            "weight_u16": pa.array(weight_u16.astype(np.int32)),
        }
    )


def _max_upscaled_u16(raw: np.ndarray, row: np.ndarray, n_rows: int) -> np.ndarray:
    """u16 weights whose row maximum is exactly 65535 (as set_weights stores them)."""
    row_max = np.zeros(n_rows)
    np.maximum.at(row_max, row, raw)
    return np.floor(raw / row_max[row] * 65_535).astype(np.int64)


def _dense_weights(rng: np.random.Generator, size: Size, quality: np.ndarray) -> pa.Table:
    v, n = size.validators, size.uids
    raw = quality[np.newaxis, :] * rng.lognormal(0.0, 0.5, size=(v, n))
    weight_u16 = np.floor(raw / raw.max(axis=1, keepdims=True) * 65_535).astype(np.int64)
    validator = np.repeat(np.arange(v), n)
    miner = np.tile(np.arange(n), v)
    return _weights_table(validator, miner, weight_u16.ravel())


def _sparse_weights(rng: np.random.Generator, size: Size, quality: np.ndarray) -> pa.Table:
    """Per row: ~90 % of a popular set of the best miners, then random others up to 1 % of n."""
    v, n = size.validators, size.uids
    per_row = max(1, round(size.density * n))
    popular = np.argsort(-quality)[: per_row * 6 // 10]
    others = np.setdiff1d(np.arange(n), popular)
    rows: list[np.ndarray] = []
    for _ in range(v):
        chosen = popular[rng.random(popular.size) < 0.9]
        extra = rng.choice(others, size=per_row - chosen.size, replace=False)
        rows.append(np.sort(np.concatenate([chosen, extra])))
    counts = np.array([r.size for r in rows])
    validator = np.repeat(np.arange(v), counts)
    miner = np.concatenate(rows)
    raw = quality[miner] * rng.lognormal(0.0, 0.5, size=miner.size)
    weight_u16 = _max_upscaled_u16(raw, validator, v)
    return _weights_table(validator, miner, weight_u16)


def build_case(size: Size, params_for: Callable[[Size], YumaParams]) -> Case:
    """Deterministic inputs of ``size`` plus the state left by one warm-up epoch."""
    rng = np.random.default_rng([SEED, size.validators, size.uids])
    v, n = size.validators, size.uids
    params = params_for(size)

    stake = np.zeros(n, dtype=np.int64)
    stake[:v] = np.clip(rng.lognormal(np.log(3e13), 1.2, size=v), 1e12, 1e16).astype(np.int64)
    miner_stake = rng.integers(0, 10**9, size=n - v)
    stake[v:] = np.where(rng.random(n - v) < 0.5, 0, miner_stake)

    quality = rng.lognormal(0.0, 1.0, size=n)
    weights = _dense_weights(rng, size, quality) if size.density >= 1.0 else None
    if weights is None:
        weights = _sparse_weights(rng, size, quality)

    # Warm-up epoch at block b0: everyone registered long ago, validators all active.
    b0 = 1_000_000
    registered = rng.integers(0, b0 - 10 * TEMPO_BLOCKS, size=n)
    last_update = registered.copy()
    last_update[:v] = b0 - rng.integers(0, TEMPO_BLOCKS, size=v)
    warm_inputs = EpochInputs(
        stake_rao=stake,
        weights=weights,
        last_update_block=last_update,
        registered_block=registered,
        current_block=b0,
        owner_uid=None,
        last_step_block=b0 - TEMPO_BLOCKS,
        tempo_blocks=TEMPO_BLOCKS,
    )
    permits = np.zeros(n, dtype=np.bool_)
    permits[:v] = True
    _, state = numpy_epoch(
        warm_inputs, params, EpochState(bonds=_empty_bonds(), validator_permit=permits)
    )

    # Measured epoch one tempo later: 0.5 % of miners re-registered during the tempo (bond
    # columns reset; weights of validators that last updated before that are outdated).
    b1 = b0 + TEMPO_BLOCKS
    registered = registered.copy()
    reregistered = v + rng.choice(n - v, size=max(1, (n - v) // 200), replace=False)
    registered[reregistered] = b0 + rng.integers(1, TEMPO_BLOCKS, size=reregistered.size)
    last_update = last_update.copy()
    last_update[:v] = b1 - rng.integers(0, 2 * TEMPO_BLOCKS, size=v)
    inputs = EpochInputs(
        stake_rao=stake,
        weights=weights,
        last_update_block=last_update,
        registered_block=registered,
        current_block=b1,
        owner_uid=None,
        last_step_block=b0,
        tempo_blocks=TEMPO_BLOCKS,
    )
    return Case(size=size, inputs=inputs, state=state, params=params)


def _empty_bonds() -> pa.Table:
    empty = pa.array([], pa.int32())
    return pa.table({"validator": empty, "miner": empty, "bond_u16": empty})


# ------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_free_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _can_reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class PeakRss:
    """Peak resident memory of a call above the RSS just before it (DuckDB's allocations
    included, which tracemalloc cannot see).

    Preferred: reset the kernel's RSS high-water mark (``5`` → /proc/self/clear_refs) before the
    call and read VmHWM after it. Fallback: a thread sampling VmRSS every millisecond.
    """

    def __init__(self) -> None:
        self.exact = _can_reset_peak_rss()

    @property
    def method(self) -> str:
        if self.exact:
            return (
                "peak RSS above the RSS just before the call: kernel high-water mark reset "
                "(/proc/self/clear_refs = 5) then VmHWM (after gc + malloc_trim)"
            )
        return "peak RSS above the RSS just before the call, VmRSS sampled every 1 ms"

    def measure(self, call: Callable[[], T]) -> tuple[T, float]:
        _release_free_memory()
        before = _status_kib("VmRSS")
        if self.exact:
            _can_reset_peak_rss()
            result = call()
            peak = _status_kib("VmHWM")
        else:
            peak = before
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, _status_kib("VmRSS"))
                    time.sleep(0.001)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                result = call()
            finally:
                done.set()
                sampler.join()
            peak = max(peak, _status_kib("VmRSS"))
        return result, max(0, peak - before) * 1024 / MIB


@dataclass(frozen=True)
class Measurement:
    best_s: float
    peak_mib: float
    result: EpochResult


def _timed(call: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def measure_pair(
    calls: dict[str, Callable[[], EpochResult]], repeat: int, peak: PeakRss
) -> dict[str, Measurement]:
    """Warm-up run (which is also the peak-memory run) per implementation, then ``repeat``
    timed rounds alternating the implementations; the best time of each is kept."""
    peaks: dict[str, float] = {}
    results: dict[str, EpochResult] = {}
    for name, call in calls.items():
        results[name], peaks[name] = peak.measure(call)
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for name, call in calls.items():
            _release_free_memory()
            _, seconds = _timed(call)
            best[name] = min(best[name], seconds)
    return {
        name: Measurement(best_s=best[name], peak_mib=peaks[name], result=results[name])
        for name in calls
    }


def _stored_bonds_equal(left: EpochState, right: EpochState) -> bool:
    return left.bonds.sort_by([("validator", "ascending"), ("miner", "ascending")]).equals(
        right.bonds.sort_by([("validator", "ascending"), ("miner", "ascending")])
    )


def _max_abs_diff(left: np.ndarray, right: np.ndarray) -> float:
    return float(np.max(np.abs(left - right))) if left.size else 0.0


# ------------------------------------------------------------------------------------------------
# Yuma3 support and the DuckDB connection
# ------------------------------------------------------------------------------------------------
def duckdb_supports_yuma3() -> bool:
    """Whether ``run_epoch`` implements the Yuma3 bond path (else the benchmark uses legacy)."""
    inputs = EpochInputs(
        stake_rao=np.array([1, 1], dtype=np.int64),
        weights=pa.table(
            {
                "validator": pa.array([0], pa.int32()),
                "miner": pa.array([1], pa.int32()),
                "weight_u16": pa.array([65_535], pa.int32()),
            }
        ),
        last_update_block=np.array([10, 10], dtype=np.int64),
        registered_block=np.array([0, 0], dtype=np.int64),
        current_block=10,
        owner_uid=None,
        last_step_block=0,
        tempo_blocks=5,
    )
    state = EpochState(bonds=_empty_bonds(), validator_permit=np.array([True, False]))
    try:
        run_epoch(inputs, YumaParams(yuma3=True, liquid_alpha=True), state)
    except NotImplementedError:
        return False
    return True


def connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(f"SET threads={DUCKDB_THREADS}")
    return connection


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    case: Case
    layout: str
    duck: Measurement
    numpy: Measurement

    def cells(self) -> list[str]:
        size, duck, baseline = self.case.size, self.duck, self.numpy
        ratio = baseline.best_s / duck.best_s
        duck_out, duck_state = duck.result
        np_out, np_state = baseline.result
        incentive_diff = _max_abs_diff(duck_out.incentive, np_out.incentive)
        dividends_diff = _max_abs_diff(duck_out.dividends, np_out.dividends)
        bonds_equal = _stored_bonds_equal(duck_state, np_state)
        if size == MEDIUM:
            target = (
                f"≥ {SPEEDUP_TARGET:g}× faster: {'met' if ratio >= SPEEDUP_TARGET else 'NOT met'}"
            )
        elif size == LARGE:
            met = duck.best_s < LARGE_SECONDS_TARGET
            target = f"DuckDB < {LARGE_SECONDS_TARGET:g} s: {'met' if met else 'NOT met'}"
        else:
            target = "—"
        return [
            size.label,
            f"{self.case.inputs.weights.num_rows:,}",
            f"{duck.best_s:.3f}",
            f"{baseline.best_s:.3f} ({self.layout})",
            f"{ratio:.2f}×",
            f"{duck.peak_mib:,.0f}",
            f"{baseline.peak_mib:,.0f}",
            target,
            f"{incentive_diff:.1e} / {dividends_diff:.1e} / {'yes' if bonds_equal else 'NO'}",
        ]


HEADER = [
    "size (V × n)",
    "weights nnz",
    "DuckDB s",
    "NumPy s (layout)",
    "ratio NumPy/DuckDB",
    "DuckDB peak MiB",
    "NumPy peak MiB",
    "target",
    "max |ΔI| / max |ΔD| / u16 bonds equal",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "| "
        + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        + " |"
        for line in [header, ["-" * width for width in widths], *rows]
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Per-statement profile of the DuckDB epoch
# ------------------------------------------------------------------------------------------------
def _statement_names(params: YumaParams) -> list[tuple[str, str]]:
    names = {
        value: name
        for name, value in vars(consensus_sql).items()
        if name.startswith("_") and name.isupper() and isinstance(value, str)
    }
    statements = [
        consensus_sql._SCALARS,
        consensus_sql._NEURON_VECTORS,
        consensus_sql._WEIGHTS,
        consensus_sql._CONSENSUS,
        consensus_sql._CLIPPED_WEIGHTS,
        consensus_sql._INCENTIVE,
        *consensus_sql._bond_path_statements(params),
    ]
    return [(names.get(statement, "?"), statement) for statement in statements]


@contextlib.contextmanager
def _registered_cursor(
    case: Case, connection: duckdb.DuckDBPyConnection
) -> Iterator[duckdb.DuckDBPyConnection]:
    state = case.state.for_uids(case.inputs.n_uids)
    cursor = connection.cursor()
    try:
        cursor.register(
            "epoch_params_in", consensus_sql._epoch_params_table(case.inputs, case.params)
        )
        cursor.register("neuron_in", consensus_sql._neuron_table(case.inputs, state))
        cursor.register("weights_in", case.inputs.weights)
        cursor.register("bonds_in", state.bonds)
        yield cursor
    finally:
        cursor.close()


def profile_statements(case: Case, connection: duckdb.DuckDBPyConnection, repeat: int) -> str:
    """Best-of-``repeat`` seconds of each statement of ``run_epoch``, run in order on a cursor."""
    steps = _statement_names(case.params)
    readbacks = [
        ("output vectors", consensus_sql._OUTPUT_VECTORS),
        ("read yuma_B", "SELECT validator, miner, b AS bond FROM yuma_B ORDER BY validator, miner"),
        (
            "read yuma_B_stored",
            "SELECT validator, miner, bond_u16 FROM yuma_B_stored ORDER BY validator, miner",
        ),
    ]
    best: dict[str, float] = {}
    rows_out: dict[str, int] = {}
    stored_u16: pa.Table | None = None
    for _ in range(repeat + 1):  # the first round warms up
        with _registered_cursor(case, connection) as cursor:
            for name, statement in steps:
                start = time.perf_counter()
                cursor.execute(statement)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
                table_name = statement.split("TEMP TABLE", 1)[1].split()[0]
                count = cursor.execute(f"SELECT count(*) FROM {table_name}").fetchall()[0]
                rows_out[name] = int(count[0]) if count else 0
            for name, query in readbacks:
                start = time.perf_counter()
                table = cursor.sql(query).to_arrow_table()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
                rows_out[name] = table.num_rows
                if name == "read yuma_B_stored":
                    stored_u16 = table
    if stored_u16 is not None:
        start = time.perf_counter()
        EpochState(bonds=stored_u16, validator_permit=case.state.validator_permit)
        best["EpochState(...) validation"] = time.perf_counter() - start
        rows_out["EpochState(...) validation"] = stored_u16.num_rows
    total = sum(best.values())
    rows = [
        [name, f"{seconds:.3f}", f"{seconds / total:.0%}", f"{rows_out[name]:,}"]
        for name, seconds in sorted(best.items(), key=lambda item: -item[1])
    ]
    rows.append(["total", f"{total:.3f}", "100%", ""])
    return markdown_table(["statement", "best s", "share", "rows out"], rows)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def _epoch_calls(
    case: Case, connection: duckdb.DuckDBPyConnection
) -> dict[str, Callable[[], EpochResult]]:
    def duck() -> EpochResult:
        return run_epoch(case.inputs, case.params, case.state, connection=connection)

    def baseline() -> EpochResult:
        return numpy_epoch(case.inputs, case.params, case.state)

    return {"duckdb": duck, "numpy": baseline}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", choices=sorted(SIZES), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument(
        "--profile", action="store_true", help="also time each SQL statement at the largest size"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    yuma3 = duckdb_supports_yuma3()

    def params_for(size: Size) -> YumaParams:
        return YumaParams(yuma3=yuma3, liquid_alpha=yuma3, max_validators=size.validators)

    peak = PeakRss()
    connection = connect()
    threads = connection.execute("SELECT current_setting('threads')").fetchone()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("# Yuma epoch: DuckDB SQL (run_epoch) vs vectorised NumPy (benchmarks/numpy_yuma.py)")
    print()
    print(
        f"- machine: {platform.machine()}, {cores} usable cores; "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__} "
        f"(threads={threads[0] if threads else '?'}), NumPy {np.__version__}"
    )
    if yuma3:
        print("- bond path: Yuma3 + liquid alpha (YumaParams(yuma3=True, liquid_alpha=True))")
    else:
        print(
            "- bond path: LEGACY (run_epoch does not implement Yuma3 yet, so both implementations "
            "run the legacy path; the required Yuma3 + liquid alpha comparison is NOT measured)"
        )
    print(
        "- params: chain defaults (κ = 32767/65535, β = 1, bma = 900 000 ppm) with "
        "max_validators = V; one warm-up epoch supplies permits and u16 bonds"
    )
    print(
        f"- wall time: best of {args.repeat} after one warm-up run, implementations alternated; "
        "the same EpochInputs/EpochState objects every run, a fresh DuckDB cursor (temp tables "
        "dropped) per run, no caching between runs; both times include building EpochOutputs/"
        "EpochState (validation included)"
    )
    print(f"- peak memory: {peak.method}; measured on the warm-up run")
    print(f"- load average before: {_load_average()} (other processes share these cores)")
    print()

    rows: list[Row] = []
    cases: list[Case] = []
    for size in SIZES[args.sizes]:
        start = time.perf_counter()
        case = build_case(size, params_for)
        cases.append(case)
        layout = choose_layout(case.inputs, case.state)
        print(
            f"built {size.label} in {time.perf_counter() - start:.1f} s; measuring …",
            file=sys.stderr,
            flush=True,
        )
        measured = measure_pair(_epoch_calls(case, connection), args.repeat, peak)
        rows.append(Row(case=case, layout=layout, duck=measured["duckdb"], numpy=measured["numpy"]))
    print(markdown_table(HEADER, [row.cells() for row in rows]))
    print()
    print(f"- load average after: {_load_average()}")

    if args.profile:
        largest = cases[-1]
        print()
        print(f"## DuckDB epoch per statement at {largest.size.label} (best of {args.repeat})")
        print()
        print(profile_statements(largest, connection, args.repeat))
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
