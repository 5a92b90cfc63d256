"""Benchmark: the DuckDB Yuma epoch against a vectorised NumPy epoch, in one process.

Usage::

    python benchmarks/consensus.py [--sizes small|all] [--repeat K] [--profile]

For each size (validators × uids: 256 × 4,096 and 1,024 × 16,384 with dense weight rows,
4,096 × 65,536 with 1 % of each validator row set) it builds deterministic random inputs, runs
``tasks.consensus.sql.run_epoch`` (DuckDB, ``SET threads=2``) and ``benchmarks.numpy_yuma``'s
vectorised NumPy epoch on the same inputs in this process, and prints one markdown table: wall
time (best of K after a warm-up run, measured in this process), peak memory (measured per
implementation in a fresh child process, see ``MEMORY_METHOD``), their ratio, whether the
project's targets are met, and how far the implementations' outputs agree.

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
same registered inputs) at the largest selected size and prints the per-statement table. (The
statement rewrites once proposed here with ``--proposed`` are now ``run_epoch`` itself.)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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
from taoflow.tasks.consensus import sql as consensus_sql  # noqa: E402
from taoflow.tasks.consensus.params import YumaParams  # noqa: E402
from taoflow.tasks.consensus.sql import run_epoch  # noqa: E402
from taoflow.tasks.consensus.types import EpochInputs, EpochOutputs, EpochState  # noqa: E402

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
# Implementations under test
# ------------------------------------------------------------------------------------------------
IMPLEMENTATIONS = ("numpy", "duckdb")
LABELS = {"duckdb": "DuckDB run_epoch", "numpy": "NumPy"}
LABEL_SHORT = {"duckdb": "DuckDB", "numpy": "NumPy"}


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection limited to the benchmark's thread count."""
    connection = duckdb.connect()
    connection.execute(f"SET threads={DUCKDB_THREADS}")
    return connection


def epoch_call(
    name: str, case: Case, connection: duckdb.DuckDBPyConnection
) -> Callable[[], EpochResult]:
    """A zero-argument call running implementation ``name`` on ``case``."""

    def duck() -> EpochResult:
        return run_epoch(case.inputs, case.params, case.state, connection=connection)

    def baseline() -> EpochResult:
        return numpy_epoch(case.inputs, case.params, case.state)

    return {"duckdb": duck, "numpy": baseline}[name]


def duckdb_supports_yuma3() -> bool:
    """Whether ``run_epoch`` implements the Yuma3 bond path (else the benchmark uses legacy)."""
    inputs = EpochInputs(
        stake_rao=np.array([1, 1], dtype=np.int64),
        weights=_weights_table(np.array([0]), np.array([1]), np.array([65_535])),
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


# ------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------
MEMORY_METHOD = (
    "peak RSS of the epoch call above the RSS just before it, in a fresh child process per "
    "implementation and size (inputs rebuilt there from the seed, DuckDB connection opened, "
    "gc + malloc_trim, "
    "then the kernel high-water mark reset via /proc/self/clear_refs and VmHWM read after the "
    "call; VmRSS sampled every 1 ms where clear_refs is not writable). A fresh process keeps "
    "allocator memory retained by earlier runs from hiding the peak; DuckDB's allocations are "
    "included (tracemalloc cannot see them)"
)


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


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_rss_mib(call: Callable[[], object]) -> float:
    """MiB of peak RSS above the RSS just before ``call`` (high-water mark, or 1 ms sampling)."""
    _release_free_memory()
    before = _status_kib("VmRSS")
    if _reset_peak_rss():
        call()
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
            call()
        finally:
            done.set()
            sampler.join()
        peak = max(peak, _status_kib("VmRSS"))
    return max(0, peak - before) * 1024 / MIB


def params_for(size: Size) -> YumaParams:
    """Yuma3 + liquid alpha where the DuckDB implementation supports it, else legacy."""
    yuma3 = duckdb_supports_yuma3()
    return YumaParams(yuma3=yuma3, liquid_alpha=yuma3, max_validators=size.validators)


def memory_child(size_name: str, name: str) -> int:
    """``--memory-child``: print the peak-RSS MiB of one epoch call on the rebuilt case.

    The case is rebuilt from its size (inputs are deterministic from the seed), so nothing is
    serialised between the processes.
    """
    sizes = {size.name: size for size in SIZES["all"]}
    case = build_case(sizes[size_name], params_for)
    connection = connect()
    print(f"{peak_rss_mib(epoch_call(name, case, connection)):.1f}")
    connection.close()
    return 0


def measure_memory(case: Case, names: tuple[str, ...]) -> dict[str, float]:
    """Peak-RSS MiB of each implementation, each in a fresh child process."""
    peaks: dict[str, float] = {}
    for name in names:
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-child", case.size.name, name],
            check=True,
            capture_output=True,
            text=True,
        )
        peaks[name] = float(completed.stdout.strip().splitlines()[-1])
    return peaks


@dataclass(frozen=True)
class Measurement:
    best_s: float
    peak_mib: float
    result: EpochResult


def measure_times(
    calls: dict[str, Callable[[], EpochResult]], repeat: int
) -> dict[str, tuple[float, EpochResult]]:
    """One warm-up run per implementation, then ``repeat`` rounds alternating them; best time."""
    results = {name: call() for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for name, call in calls.items():
            _release_free_memory()
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in calls}


def validation_seconds(result: EpochResult) -> float:
    """Seconds that EpochState's own input validation takes on ``result``'s stored bonds (a cost
    inside every implementation's time, since all of them return an EpochState)."""
    state = result[1]
    start = time.perf_counter()
    EpochState(bonds=state.bonds, validator_permit=state.validator_permit)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def _max_abs_diff(left: np.ndarray, right: np.ndarray) -> float:
    return float(np.max(np.abs(left - right))) if left.size else 0.0


def agreement(left: EpochResult, right: EpochResult) -> str:
    """max |ΔI| / max |ΔD| / whether the stored u16 bonds are identical."""
    order = [("validator", "ascending"), ("miner", "ascending")]
    bonds_equal = left[1].bonds.sort_by(order).equals(right[1].bonds.sort_by(order))
    incentive = _max_abs_diff(left[0].incentive, right[0].incentive)
    dividends = _max_abs_diff(left[0].dividends, right[0].dividends)
    return f"{incentive:.1e} / {dividends:.1e} / {'yes' if bonds_equal else 'NO'}"


def target_verdict(size: Size, duck_s: float, numpy_s: float) -> str:
    if size == MEDIUM:
        met = numpy_s / duck_s >= SPEEDUP_TARGET
        return f"≥ {SPEEDUP_TARGET:g}× NumPy: {'met' if met else 'NOT met'}"
    if size == LARGE:
        met = duck_s < LARGE_SECONDS_TARGET
        return f"< {LARGE_SECONDS_TARGET:g} s: {'met' if met else 'NOT met'}"
    return "—"


@dataclass(frozen=True)
class Row:
    case: Case
    layout: str
    measured: dict[str, Measurement]
    validation_s: float

    def cells(self, names: tuple[str, ...]) -> list[str]:
        size = self.case.size
        numpy_m = self.measured["numpy"]
        cells = [size.label, f"{self.case.inputs.weights.num_rows:,}"]
        for name in names:
            m = self.measured[name]
            if name == "numpy":
                cells.append(f"{m.best_s:.3f} ({self.layout})")
            else:
                cells += [
                    f"{m.best_s:.3f}",
                    f"{numpy_m.best_s / m.best_s:.2f}×",
                    target_verdict(size, m.best_s, numpy_m.best_s),
                ]
        cells += [f"{self.measured[name].peak_mib:,.0f}" for name in names]
        cells.append(f"{self.validation_s:.3f}")
        cells += [
            agreement(self.measured[name].result, numpy_m.result)
            for name in names
            if name != "numpy"
        ]
        return cells


def header(names: tuple[str, ...]) -> list[str]:
    cells = ["size (V × n)", "weights nnz"]
    for name in names:
        if name == "numpy":
            cells.append("NumPy s (layout)")
        else:
            short = LABEL_SHORT[name]
            cells += [f"{short} s", f"NumPy/{short}", f"{short} target"]
    cells += [f"{LABEL_SHORT[n]} peak MiB" for n in names]
    cells.append("EpochState check s")
    cells += [
        f"{LABEL_SHORT[n]} vs NumPy: max|ΔI| / max|ΔD| / u16 equal" for n in names if n != "numpy"
    ]
    return cells


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=True)]
    return "\n".join(
        "| "
        + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        + " |"
        for line in [head, ["-" * width for width in widths], *rows]
    )


# ------------------------------------------------------------------------------------------------
# Per-statement profile of the DuckDB epoch
# ------------------------------------------------------------------------------------------------
def _sql_names() -> dict[str, str]:
    return {
        value: name
        for name, value in vars(consensus_sql).items()
        if name.startswith("_") and name.isupper() and isinstance(value, str)
    }


def current_statements(params: YumaParams, liquid: bool) -> list[tuple[str, str]]:
    """run_epoch's statements in order (the bond block ``liquid`` selects), named after sql.py's
    constants."""
    names = _sql_names()
    statements = [
        *consensus_sql._BEFORE_BONDS,
        *consensus_sql._bond_path(params, liquid).statements,
    ]
    return [(names.get(statement, "?"), statement) for statement in statements]


def current_readbacks(params: YumaParams, liquid: bool) -> tuple[tuple[str, str], ...]:
    """run_epoch's read-back queries: the output vectors, then the sorted bonds + u16 bonds."""
    readback = consensus_sql._bond_path(params, liquid).readback
    return (
        ("read: output vectors", consensus_sql._OUTPUT_VECTORS),
        (f"read: {_sql_names().get(readback, 'bonds')}", readback),
    )


def profile_statements(
    case: Case,
    connection: duckdb.DuckDBPyConnection,
    repeat: int,
    statements: list[tuple[str, str]],
    readbacks: tuple[tuple[str, str], ...],
) -> str:
    """Best-of-``repeat`` seconds of each statement, run in order on one cursor with the
    inputs registered as run_epoch registers them (plus one warm-up round)."""
    best: dict[str, float] = {}
    rows_out: dict[str, int] = {}
    state = case.state.for_uids(case.inputs.n_uids)
    for _ in range(repeat + 1):
        cursor = connection.cursor()
        try:
            consensus_sql._register_inputs(cursor, case.inputs, case.params, state)
            for name, statement in statements:
                start = time.perf_counter()
                cursor.execute(statement)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
                table_name = statement.split("TEMP TABLE", 1)[1].split()[0]
                count = cursor.execute(f"SELECT count(*) FROM {table_name}").fetchall()
                rows_out[name] = int(count[0][0])
            for name, query in readbacks:
                start = time.perf_counter()
                table = cursor.sql(query).to_arrow_table()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
                rows_out[name] = table.num_rows
        finally:
            cursor.close()
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


def _print_preamble(names: tuple[str, ...], yuma3: bool, repeat: int) -> None:
    connection = connect()
    threads = connection.execute("SELECT current_setting('threads')").fetchall()[0][0]
    connection.close()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("# Yuma epoch: DuckDB SQL (run_epoch) vs vectorised NumPy (benchmarks/numpy_yuma.py)")
    print()
    print(
        f"- machine: {platform.machine()}, {cores} usable cores; "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__} (threads={threads}), "
        f"NumPy {np.__version__}"
    )
    if yuma3:
        print("- bond path: Yuma3 + liquid alpha (YumaParams(yuma3=True, liquid_alpha=True))")
    else:
        print(
            "- bond path: LEGACY — run_epoch does not implement Yuma3 yet, so both run the legacy "
            "path; the required Yuma3 + liquid alpha comparison is NOT measured"
        )
    print(
        "- params: chain defaults (κ = 32767/65535, β = 1, bma = 900 000 ppm, liquid alpha "
        "0.7–0.9, steepness 10) with max_validators = V; one warm-up epoch supplies permits and "
        "u16 bonds"
    )
    print(f"- implementations: {', '.join(LABELS[name] for name in names)}")
    print(
        f"- wall time: best of {repeat} after one warm-up run each, implementations alternated, "
        "same inputs every run, a fresh DuckDB cursor per run (temp tables dropped, nothing "
        "cached); every time includes building EpochOutputs/EpochState, whose own validation "
        "(duplicate check, O(N) on sorted bonds) is shown separately as 'EpochState check s'"
    )
    print(f"- peak memory: {MEMORY_METHOD}")
    print(f"- load average before: {_load_average()} (other processes share these cores)")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument(
        "--profile", action="store_true", help="also time each SQL statement at the largest size"
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("SIZE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return memory_child(*args.memory_child)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    yuma3 = duckdb_supports_yuma3()
    names = IMPLEMENTATIONS
    _print_preamble(names, yuma3, args.repeat)
    connection = connect()
    rows: list[Row] = []
    profiles: list[tuple[str, str]] = []
    for size in SIZES[args.sizes]:
        start = time.perf_counter()
        case = build_case(size, params_for)
        print(
            f"{size.label}: built in {time.perf_counter() - start:.1f} s; measuring …",
            file=sys.stderr,
            flush=True,
        )
        peaks = measure_memory(case, names)
        timed = measure_times(
            {name: epoch_call(name, case, connection) for name in names}, args.repeat
        )
        measured = {
            name: Measurement(best_s=timed[name][0], peak_mib=peaks[name], result=timed[name][1])
            for name in names
        }
        rows.append(
            Row(
                case=case,
                layout=choose_layout(case.inputs, case.state),
                measured=measured,
                validation_s=validation_seconds(measured["numpy"].result),
            )
        )
        if args.profile and size == SIZES[args.sizes][-1]:
            liquid = case.params.yuma3 and case.params.liquid_alpha
            liquid = liquid and bool(np.any(measured["duckdb"].result[0].consensus != 0))
            profiles.append(
                (
                    "run_epoch",
                    profile_statements(
                        case,
                        connection,
                        args.repeat,
                        current_statements(case.params, liquid),
                        current_readbacks(case.params, liquid),
                    ),
                )
            )
    print(markdown_table(header(names), [row.cells(names) for row in rows]))
    print()
    print(f"- load average after: {_load_average()}")
    for title, table in profiles:
        print()
        print(f"## {title}: seconds per statement at {rows[-1].case.size.label}")
        print()
        print(table)
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
