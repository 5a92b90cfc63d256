"""Benchmark: the DuckDB Yuma epoch against a vectorised NumPy epoch and yuma-simulation.

Usage::

    python benchmarks/consensus.py [--sizes tiny|small|all] [--repeat K] [--profile]

For each size (validators × uids: 256 × 4,096 and 1,024 × 16,384 with dense weight rows,
4,096 × 65,536 with 1 % of each validator row set; ``tiny`` = 16 × 256 dense, for tests) it
builds deterministic random inputs and times, on the same inputs and in this process:

* ``tasks.consensus.sql.run_epoch`` (DuckDB; threads as ``run_epoch`` sets them);
* ``benchmarks.numpy_yuma``'s vectorised NumPy float64 epoch;
* yuma-simulation's ``Yuma3`` (the torch float32 simulator Bittensor subnets use; torch's default
  thread count), when its epoch code is found: ``$TAOFLOW_YUMA_SIM_DIR/yumas.py`` if that variable
  is set, else ``<repository root>/../shared/anchors/yuma_simulation/yumas.py``. It is not on the
  package index; when the file (or torch) is absent one line says so and its column is skipped.

It prints one markdown table per run: best wall time of each implementation, peak memory beside
each time (measured per implementation in a fresh child process, see ``MEMORY_METHOD``), the
same-run ratios yuma-sim ÷ DuckDB and NumPy ÷ DuckDB, the targets of issue 15 with met / NOT met,
and how far the outputs agree (DuckDB vs NumPy: max |ΔI|, max |ΔD|, identical u16 bonds; DuckDB
vs yuma-sim loosely: Spearman rank correlation of incentive, since the simulator's semantics
differ, shared/yuma-spec.md §10).

Targets (issue 15, same-run ratios):

* 256 × 4,096 dense: DuckDB not slower than NumPy;
* 1,024 × 16,384 dense: DuckDB at least 3× faster than yuma-simulation;
* 4,096 × 65,536 at 1 %: DuckDB under 0.5 s and at least 3× faster than yuma-simulation.

Invariants of the measurement:

* Every implementation gets the same epoch. Input construction is outside the timed region for
  every implementation alike: the Arrow tables of ``EpochInputs`` / ``EpochState`` for DuckDB and
  NumPy, and the simulator's dense float32 tensors (W: V × n u16 weights of each validator row,
  row-normalised by the simulator itself; S: the validators' stakes; B_old: the previous state's
  u16 bonds / 65535; C_old: the warm-up epoch's consensus) are built before the clock starts.
* Implementations are interleaved: one warm-up run each, then ``--repeat`` rounds (default 3)
  that run each implementation once, in turn; the best time of each is reported, so load from
  other processes hits all of them alike within a round.
* The simulator is dense (each V × n float32 matrix is 4·V·n bytes, 1 GiB at the large size). It
  runs at a size only when ``/proc/meminfo``'s MemAvailable covers its estimated peak
  (``SIM_PEAK_MATRICES`` + ``SIM_INPUT_MATRICES`` matrices) plus ``SIM_MEMORY_HEADROOM_BYTES``;
  otherwise one line says so and that size's cells read "skipped".
* Parameters: chain defaults with Yuma3 + liquid alpha and max_validators = V; the simulator gets
  the closest equivalent (``sim_config``): κ, bond_moving_avg = bma/10^6, liquid alpha on with the
  same alpha_low / alpha_high, steepness / 100 (the chain stores it ×100), bond_penalty = β (the
  simulator's Yuma3 ignores it, §10).

Inputs per size (seeded ``numpy.random.Generator``): the first V uids are validators with integer
stakes (lognormal, 10^12–10^16 rao), the others miners with small or zero stakes; every validator's
u16 weight row is max-upscaled (largest entry 65,535) and built from a shared per-miner quality
times per-validator noise, so validators broadly agree and κ-clipping does real work. The sparse
case weights a common "popular" set of miners plus random others, 1 % of n per row. The measured
epoch follows one warm-up epoch (computed with the NumPy baseline) that supplies permits, u16
bonds and the previous consensus; between the two epochs 0.5 % of the miners re-registered (their
bond columns reset) and some validators' last weight update predates those re-registrations
(their weights to them are masked as outdated).

The per-statement profile (``--profile``, and always with ``--sizes all``) runs ``run_epoch``
itself at the largest selected size through a tracing connection that times every statement the
epoch executes (named after ``sql.py``'s constants, else after the table it creates), whatever
sequence the module runs; time spent outside SQL is its own row. If ``run_epoch`` cannot be traced
the profile is replaced by one line saying why.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import os
import platform
import re
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import duckdb
import numpy as np
import pyarrow as pa

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from benchmarks.numpy_yuma import choose_layout, numpy_epoch  # noqa: E402
from taoflow.tasks.consensus import sql as consensus_sql  # noqa: E402
from taoflow.tasks.consensus.params import PPM_ONE, U16_MAX, YumaParams  # noqa: E402
from taoflow.tasks.consensus.sql import run_epoch  # noqa: E402
from taoflow.tasks.consensus.types import EpochInputs, EpochOutputs, EpochState  # noqa: E402

if TYPE_CHECKING:
    import torch

EpochResult = tuple[EpochOutputs, EpochState]

SEED: Final = 20_261_126
TEMPO_BLOCKS: Final = 360
MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB
FLOAT32_BYTES: Final = 4

SIM_SPEEDUP_TARGET: Final = 3.0
"""DuckDB must be at least this many times faster than yuma-simulation (medium and large)."""
LARGE_SECONDS_TARGET: Final = 0.5
"""DuckDB's best time at the large size must be under this many seconds."""
SMALL_NUMPY_RATIO_TARGET: Final = 1.0
"""At the small size NumPy ÷ DuckDB must be at least this (DuckDB not slower than NumPy)."""

SIM_PEAK_MATRICES: Final = 11.0
"""Dense V × n float32 matrices alive at the simulator's Yuma3 peak (10.6 measured at
1,024 × 16,384: sort values and int64 indices, cumulative stakes, clipped weights, liquid alpha's
buy/sell differences and sigmoid, bonds)."""
SIM_INPUT_MATRICES: Final = 2.0
"""Dense inputs held beside it: W and B_old."""
SIM_MEMORY_HEADROOM_BYTES: Final = 2 * GIB
"""MemAvailable must exceed the simulator's estimate by this much (the machine is shared)."""

YUMA_SIM_ENV: Final = "TAOFLOW_YUMA_SIM_DIR"
YUMA_SIM_DEFAULT_DIR: Final = _ROOT.parent / "shared" / "anchors" / "yuma_simulation"
_YUMA_SIM_PACKAGE: Final = "_taoflow_bench_yuma_simulation"


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


TINY = Size("tiny", 16, 256, 1.0)
SMALL = Size("small", 256, 4_096, 1.0)
MEDIUM = Size("medium", 1_024, 16_384, 1.0)
LARGE = Size("large", 4_096, 65_536, 0.01)
SIZES = {"tiny": (TINY,), "small": (SMALL,), "all": (SMALL, MEDIUM, LARGE)}
_SIZE_BY_NAME = {size.name: size for group in SIZES.values() for size in group}


@dataclass(frozen=True)
class Case:
    """The measured epoch of one size: inputs, previous-epoch state, parameters, and the
    warm-up epoch's consensus (the simulator's C_old)."""

    size: Size
    inputs: EpochInputs
    state: EpochState
    params: YumaParams
    previous_consensus: np.ndarray


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


def params_for(size: Size) -> YumaParams:
    """Chain defaults with Yuma3 + liquid alpha and one permit per validator."""
    return YumaParams(yuma3=True, liquid_alpha=True, max_validators=size.validators)


def build_case(size: Size) -> Case:
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
    warm_outputs, state = numpy_epoch(
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
    return Case(
        size=size,
        inputs=inputs,
        state=state,
        params=params,
        previous_consensus=np.asarray(warm_outputs.consensus),
    )


def _empty_bonds() -> pa.Table:
    empty = pa.array([], pa.int32())
    return pa.table({"validator": empty, "miner": empty, "bond_u16": empty})


# ------------------------------------------------------------------------------------------------
# The yuma-simulation anchor
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """The simulator's ``yumas`` module (None when it cannot run) and the line that says so."""

    yumas: types.ModuleType | None
    line: str


def yuma_sim_dir() -> Path:
    """``$TAOFLOW_YUMA_SIM_DIR`` when set, else ``<repository root>/../shared/anchors/…``."""
    configured = os.environ.get(YUMA_SIM_ENV)
    return Path(configured) if configured else YUMA_SIM_DEFAULT_DIR


def load_anchor() -> Anchor:
    """Import ``yumas.py`` from :func:`yuma_sim_dir` as a package module (it imports
    ``.simulation_utils``), under a private name so an installed copy cannot be picked up."""
    directory = yuma_sim_dir()
    source = directory / "yumas.py"
    if not source.is_file():
        return Anchor(None, f"yuma-simulation anchor not found at {source}: its column is skipped")
    try:
        import torch
    except ImportError:
        return Anchor(
            None,
            f"yuma-simulation needs torch, which is not installed: its column is "
            f"skipped ({source})",
        )
    for name in [m for m in sys.modules if m.partition(".")[0] == _YUMA_SIM_PACKAGE]:
        del sys.modules[name]
    package = types.ModuleType(_YUMA_SIM_PACKAGE)
    package.__path__ = [str(directory)]
    sys.modules[_YUMA_SIM_PACKAGE] = package
    try:
        yumas = importlib.import_module(f"{_YUMA_SIM_PACKAGE}.yumas")
        yumas.Yuma3  # noqa: B018 (the one entry point the benchmark calls)
    except (ImportError, SyntaxError, AttributeError) as error:
        return Anchor(
            None,
            f"yuma-simulation anchor at {source} does not load ({error}): its column is skipped",
        )
    return Anchor(
        yumas,
        f"yuma-simulation: Yuma3 from {source}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads (torch's default here), float32, dense",
    )


@dataclass(frozen=True)
class SimInputs:
    """The simulator's dense float32 tensors for one case (see the module docstring)."""

    weights: torch.Tensor  # V × n, u16 weight values of each validator row
    stake: torch.Tensor  # V
    bonds_old: torch.Tensor  # V × n, u16 / 65535
    consensus_old: torch.Tensor  # n


@dataclass(frozen=True)
class SimOutcome:
    """What the benchmark keeps of one simulator epoch (the dense matrices are freed)."""

    incentive: np.ndarray


def _dense_rows(table: pa.Table, value: str, shape: tuple[int, int]) -> np.ndarray:
    validator = table.column("validator").to_numpy()
    keep = validator < shape[0]
    dense = np.zeros(shape, dtype=np.float32)
    dense[validator[keep], table.column("miner").to_numpy()[keep]] = table.column(value).to_numpy()[
        keep
    ]
    return dense


def build_sim_inputs(case: Case) -> SimInputs:
    """Dense tensors of the measured epoch, built outside any timed region."""
    import torch

    shape = (case.size.validators, case.size.uids)
    bonds = _dense_rows(case.state.bonds, "bond_u16", shape)
    bonds /= np.float32(U16_MAX)
    return SimInputs(
        weights=torch.from_numpy(_dense_rows(case.inputs.weights, "weight_u16", shape)),
        stake=torch.from_numpy(case.inputs.stake_rao[: shape[0]].astype(np.float32)),
        bonds_old=torch.from_numpy(bonds),
        consensus_old=torch.from_numpy(case.previous_consensus.astype(np.float32)),
    )


def sim_config(yumas: types.ModuleType, params: YumaParams) -> Any:
    """The simulator's ``YumaConfig`` closest to ``params`` (liquid alpha in CURRENT mode)."""
    return yumas.YumaConfig(
        simulation=yumas.SimulationHyperparameters(
            kappa=params.kappa, bond_penalty=params.bonds_penalty
        ),
        yuma_params=yumas.YumaParams(
            bond_moving_avg=params.bonds_moving_average_ppm / PPM_ONE,
            liquid_alpha=params.liquid_alpha,
            alpha_low=params.alpha_low,
            alpha_high=params.alpha_high,
            alpha_sigmoid_steepness=params.alpha_sigmoid_steepness / 100,
        ),
    )


def sim_call(yumas: types.ModuleType, case: Case, sim: SimInputs) -> Callable[[], SimOutcome]:
    """A zero-argument call running the simulator's Yuma3 epoch on prepared tensors."""
    config = sim_config(yumas, case.params)

    def run() -> SimOutcome:
        result = yumas.Yuma3(
            sim.weights,
            sim.stake,
            num_servers=case.size.uids,
            num_validators=case.size.validators,
            use_full_matrices=False,
            B_old=sim.bonds_old,
            C_old=sim.consensus_old,
            config=config,
        )
        return SimOutcome(incentive=result["server_incentive"].numpy())

    return run


def mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def sim_memory_needed_bytes(size: Size) -> int:
    matrix_bytes = size.validators * size.uids * FLOAT32_BYTES
    estimate = (SIM_PEAK_MATRICES + SIM_INPUT_MATRICES) * matrix_bytes
    return int(estimate) + SIM_MEMORY_HEADROOM_BYTES


def sim_memory_refusal(size: Size) -> str | None:
    """One line why the simulator must not run at ``size`` now, or None when it fits."""
    needed = sim_memory_needed_bytes(size)
    available = mem_available_bytes()
    if available is None or available >= needed:
        return None
    return (
        f"yuma-simulation skipped at {size.label}: it is dense and needs ~{needed / GIB:.1f} GiB "
        f"({SIM_PEAK_MATRICES + SIM_INPUT_MATRICES:g} float32 V × n matrices of "
        f"{size.validators * size.uids * FLOAT32_BYTES / GIB:.2f} GiB + "
        f"{SIM_MEMORY_HEADROOM_BYTES / GIB:g} GiB headroom); MemAvailable is "
        f"{available / GIB:.1f} GiB"
    )


# ------------------------------------------------------------------------------------------------
# Implementations under test
# ------------------------------------------------------------------------------------------------
EPOCH_IMPLEMENTATIONS: Final = ("duckdb", "numpy")
SIM: Final = "yuma-sim"
LABELS: Final = {
    "duckdb": "DuckDB (run_epoch)",
    "numpy": "NumPy (benchmarks/numpy_yuma.py)",
    SIM: "yuma-simulation Yuma3 (torch float32)",
}
LABEL_SHORT: Final = {"duckdb": "DuckDB", "numpy": "NumPy", SIM: "yuma-sim"}


def epoch_call(
    name: str, case: Case, connection: duckdb.DuckDBPyConnection
) -> Callable[[], object]:
    """A zero-argument call running implementation ``name`` (DuckDB or NumPy) on ``case``."""

    def duck() -> EpochResult:
        return run_epoch(case.inputs, case.params, case.state, connection=connection)

    def baseline() -> EpochResult:
        return numpy_epoch(case.inputs, case.params, case.state)

    return {"duckdb": duck, "numpy": baseline}[name]


def _duckdb_threads_text() -> str:
    threads = getattr(consensus_sql, "CONSENSUS_THREADS", None)
    if threads is None:
        return "threads as run_epoch sets them"
    return f"threads={threads}, as run_epoch sets them (CONSENSUS_THREADS)"


# ------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------
MEMORY_METHOD: Final = (
    "peak RSS of the epoch call above the RSS just before it, in a fresh child process per "
    "implementation and size (inputs rebuilt there from the seed, the simulator's dense tensors "
    "built, DuckDB connection opened, gc + malloc_trim, "
    "then the kernel high-water mark reset via /proc/self/clear_refs and VmHWM read after the "
    "call; VmRSS sampled every 1 ms where clear_refs is not writable). A fresh process keeps "
    "allocator memory retained by earlier runs from hiding the peak; DuckDB's and torch's "
    "allocations are included (tracemalloc cannot see them)"
)
RSS_SAMPLE_INTERVAL_S: Final = 0.001


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


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
                time.sleep(RSS_SAMPLE_INTERVAL_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            call()
        finally:
            done.set()
            sampler.join()
        peak = max(peak, _status_kib("VmRSS"))
    return max(0, peak - before) * 1024 / MIB


def memory_child(size_name: str, name: str) -> int:
    """``--memory-child``: print the peak-RSS MiB of one epoch call on the rebuilt case.

    The case is rebuilt from its size (inputs are deterministic from the seed), so nothing is
    serialised between the processes.
    """
    case = build_case(_SIZE_BY_NAME[size_name])
    connection = duckdb.connect()
    if name == SIM:
        anchor = load_anchor()
        if anchor.yumas is None:
            raise SystemExit(anchor.line)
        call: Callable[[], object] = sim_call(anchor.yumas, case, build_sim_inputs(case))
    else:
        call = epoch_call(name, case, connection)
    print(f"{peak_rss_mib(call):.1f}")
    connection.close()
    return 0


def measure_memory(case: Case, names: tuple[str, ...]) -> dict[str, float]:
    """Peak-RSS MiB of each implementation, each in a fresh child process. A failed simulator
    child (killed for memory, say) is one line and leaves the simulator out of the dict."""
    peaks: dict[str, float] = {}
    for name in names:
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-child", case.size.name, name],
            check=name != SIM,
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["no message"])[-1]
            print(
                f"- yuma-simulation skipped at {case.size.label}: its memory run exited with "
                f"{completed.returncode} ({last})"
            )
            continue
        peaks[name] = float(completed.stdout.strip().splitlines()[-1])
    return peaks


def measure_times(
    calls: dict[str, Callable[[], object]], repeat: int
) -> dict[str, tuple[float, object]]:
    """One warm-up run per implementation, then ``repeat`` rounds running each once, in turn;
    the best time of each, with its warm-up result."""
    results: dict[str, object] = {}
    for name, call in calls.items():
        results[name] = call()
        _release_free_memory()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for name, call in calls.items():
            _release_free_memory()
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in calls}


# ------------------------------------------------------------------------------------------------
# Agreement and targets
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


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their positions (as Spearman's ρ needs)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman_rho(left: np.ndarray, right: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    left_ranks = average_ranks(np.asarray(left, dtype=np.float64))
    right_ranks = average_ranks(np.asarray(right, dtype=np.float64))
    if np.ptp(left_ranks) == 0 or np.ptp(right_ranks) == 0:
        return float("nan")
    return float(np.corrcoef(left_ranks, right_ranks)[0, 1])


def _verdict(text: str, met: bool) -> str:
    return f"{text}: {'met' if met else 'NOT met'}"


def target_verdicts(size: Size, best_s: dict[str, float]) -> str:
    """The issue's targets at ``size`` (only the three named sizes have any)."""
    duck_s = best_s["duckdb"]
    sim_s = best_s.get(SIM)
    sim_text = f"≥ {SIM_SPEEDUP_TARGET:g}× yuma-sim"
    if sim_s is None:
        sim_verdict = f"{sim_text}: not measured"
    else:
        sim_verdict = _verdict(sim_text, sim_s / duck_s >= SIM_SPEEDUP_TARGET)
    if size == SMALL:
        met = best_s["numpy"] / duck_s >= SMALL_NUMPY_RATIO_TARGET
        return _verdict("not slower than NumPy", met)
    if size == MEDIUM:
        return sim_verdict
    if size == LARGE:
        seconds = _verdict(f"< {LARGE_SECONDS_TARGET:g} s", duck_s < LARGE_SECONDS_TARGET)
        return f"{seconds}; {sim_verdict}"
    return "—"


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One size's measurements; ``SIM`` is absent from the dicts when the simulator was skipped."""

    case: Case
    layout: str
    best_s: dict[str, float]
    peak_mib: dict[str, float]
    results: dict[str, object]

    def cells(self) -> list[str]:
        size = self.case.size
        duck_s = self.best_s["duckdb"]
        sim_s = self.best_s.get(SIM)
        duck = cast(EpochResult, self.results["duckdb"])
        numpy_result = cast(EpochResult, self.results["numpy"])
        sim = cast(SimOutcome | None, self.results.get(SIM))
        rho = spearman_rho(duck[0].incentive, sim.incentive) if sim is not None else None
        return [
            size.label,
            f"{self.case.inputs.weights.num_rows:,}",
            f"{duck_s:.3f}",
            f"{self.best_s['numpy']:.3f} ({self.layout})",
            "skipped" if sim_s is None else f"{sim_s:.3f}",
            *(_mib_cell(self.peak_mib.get(name)) for name in (*EPOCH_IMPLEMENTATIONS, SIM)),
            "—" if sim_s is None else f"{sim_s / duck_s:.2f}×",
            f"{self.best_s['numpy'] / duck_s:.2f}×",
            target_verdicts(size, self.best_s),
            agreement(duck, numpy_result),
            "—" if rho is None else ("n/a (constant)" if np.isnan(rho) else f"{rho:.4f}"),
        ]


def _mib_cell(peak: float | None) -> str:
    return "skipped" if peak is None else f"{peak:,.0f}"


HEADER: Final = (
    "size (V × n)",
    "weights nnz",
    "DuckDB s",
    "NumPy s (layout)",
    "yuma-sim s",
    "DuckDB peak MiB",
    "NumPy peak MiB",
    "yuma-sim peak MiB",
    "yuma-sim ÷ DuckDB",
    "NumPy ÷ DuckDB",
    "DuckDB target (issue 15)",
    "DuckDB vs NumPy: max|ΔI| / max|ΔD| / u16 equal",
    "DuckDB vs yuma-sim: Spearman ρ(I)",
)


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=True)]
    return "\n".join(
        "| "
        + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        + " |"
        for line in [head, ["-" * width for width in widths], *rows]
    )


# ------------------------------------------------------------------------------------------------
# Per-statement profile of the DuckDB epoch: run_epoch through a tracing connection
# ------------------------------------------------------------------------------------------------
_CREATED_TABLE = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
    re.IGNORECASE,
)
_TERMINAL_METHODS: Final = frozenset(
    {
        "to_arrow_table",
        "arrow",
        "fetch_arrow_table",
        "fetchall",
        "fetchone",
        "fetchnumpy",
        "df",
        "fetchdf",
        "to_df",
        "pl",
        "execute",
    }
)
STATEMENT_LABEL_CHARS: Final = 48


@dataclass
class StatementTime:
    """One statement of a traced epoch (mutable: a lazy relation adds its fetch time later)."""

    name: str
    seconds: float
    rows_out: int | None
    counting_s: float = 0.0  # the tracer's own row count after a CREATE, not the epoch's time


def _sql_names() -> dict[str, str]:
    """Statement constants (``_UPPER_CASE`` strings) by text, from sql.py and any other loaded
    module of ``taoflow.tasks.consensus`` (sql.py's names win), whatever names they use."""
    modules = [
        module
        for name, module in sorted(sys.modules.items())
        if name.startswith("taoflow.tasks.consensus.") and module is not consensus_sql
    ]
    names: dict[str, str] = {}
    for module in [*modules, consensus_sql]:
        for name, value in list(vars(module).items()):
            if name.startswith("_") and name.isupper() and isinstance(value, str):
                names[value] = name
    return names


def statement_name(query: str, names: dict[str, str]) -> str:
    """The constant holding ``query``, else the table it creates, else its first line."""
    if query in names:
        return names[query]
    created = _CREATED_TABLE.search(query)
    if created:
        return f"create {created.group(1)}"
    first = next((line.strip() for line in query.splitlines() if line.strip()), "?")
    return first[:STATEMENT_LABEL_CHARS]


class _TracingRelation:
    """A DuckDB relation whose fetch methods add their time to the statement's entry."""

    def __init__(self, relation: Any, entry: StatementTime) -> None:
        self._relation = relation
        self._entry = entry

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._relation, attribute)
        if attribute not in _TERMINAL_METHODS or not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = value(*args, **kwargs)
            self._entry.seconds += time.perf_counter() - start
            rows = getattr(result, "num_rows", None)
            self._entry.rows_out = rows if isinstance(rows, int) else self._entry.rows_out
            return result

        return timed


class _TracingCursor:
    """A cursor that times ``execute`` and ``sql`` (and the fetch of lazy relations)."""

    def __init__(self, cursor: Any, log: list[StatementTime], names: dict[str, str]) -> None:
        self._cursor = cursor
        self._log = log
        self._names = names

    def _count_created(self, query: str, entry: StatementTime) -> None:
        created = _CREATED_TABLE.search(query)
        if not created:
            return
        start = time.perf_counter()
        rows = self._cursor.execute(f"SELECT count(*) FROM {created.group(1)}").fetchall()
        entry.rows_out = int(rows[0][0])  # fetchall: DuckDB refuses work on an unfinished result
        entry.counting_s = time.perf_counter() - start

    def execute(self, query: str, *args: Any, **kwargs: Any) -> _TracingCursor:
        start = time.perf_counter()
        self._cursor.execute(query, *args, **kwargs)
        entry = StatementTime(statement_name(query, self._names), time.perf_counter() - start, None)
        self._log.append(entry)
        self._count_created(query, entry)
        return self

    def sql(self, query: str, *args: Any, **kwargs: Any) -> _TracingRelation:
        start = time.perf_counter()
        relation = self._cursor.sql(query, *args, **kwargs)
        entry = StatementTime(statement_name(query, self._names), time.perf_counter() - start, None)
        self._log.append(entry)
        return _TracingRelation(relation, entry)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._cursor, attribute)


class _TracingConnection(_TracingCursor):
    """A real connection whose cursors (and its own ``execute`` / ``sql``) are traced."""

    def cursor(self) -> _TracingCursor:
        return _TracingCursor(self._cursor.cursor(), self._log, self._names)


def traced_epoch(
    case: Case, connection: duckdb.DuckDBPyConnection
) -> tuple[float, list[StatementTime]]:
    """Total seconds of one run_epoch call and the statements it executed, in order."""
    log: list[StatementTime] = []
    tracer = cast(duckdb.DuckDBPyConnection, _TracingConnection(connection, log, _sql_names()))
    start = time.perf_counter()
    run_epoch(case.inputs, case.params, case.state, connection=tracer)
    return time.perf_counter() - start, log


OUTSIDE_SQL: Final = "outside SQL (registration, Arrow → NumPy, EpochOutputs/EpochState)"


def profile_statements(case: Case, connection: duckdb.DuckDBPyConnection, repeat: int) -> str:
    """Best-of-``repeat`` seconds of each statement run_epoch executes (after one warm-up run),
    in execution order, with its share of the epoch; or one line why it could not be traced."""
    try:
        runs = [traced_epoch(case, connection) for _ in range(repeat + 1)][1:]
    except (TypeError, AttributeError, duckdb.Error) as error:
        return f"per-statement profile unavailable: run_epoch could not be traced ({error})"
    first = [entry.name for entry in runs[0][1]]
    if not first:
        return (
            "per-statement profile unavailable: run_epoch ran no statement through its connection"
        )
    if any([entry.name for entry in log] != first for _, log in runs):
        return "per-statement profile unavailable: run_epoch ran different statements per run"
    best = [min(log[index].seconds for _, log in runs) for index in range(len(first))]
    outside = min(
        total - sum(entry.seconds + entry.counting_s for entry in log) for total, log in runs
    )
    total_s = sum(best) + max(0.0, outside)
    rows = [
        [name, f"{seconds:.3f}", f"{seconds / total_s:.0%}", _rows_cell(runs[0][1][index])]
        for index, (name, seconds) in enumerate(zip(first, best, strict=True))
    ]
    rows.append([OUTSIDE_SQL, f"{max(0.0, outside):.3f}", f"{max(0.0, outside) / total_s:.0%}", ""])
    rows.append(["total", f"{total_s:.3f}", "100%", ""])
    return markdown_table(["statement", "best s", "share", "rows out"], rows)


def _rows_cell(entry: StatementTime) -> str:
    return "" if entry.rows_out is None else f"{entry.rows_out:,}"


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def _print_preamble(anchor: Anchor, repeat: int) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("# Yuma epoch: DuckDB SQL (run_epoch) vs vectorised NumPy vs yuma-simulation")
    print()
    print(
        f"- machine: {platform.machine()}, {cores} usable cores; Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__} ({_duckdb_threads_text()}), "
        f"NumPy {np.__version__}"
    )
    print(f"- {anchor.line}")
    print(
        "- epoch: Yuma3 + liquid alpha, chain defaults (κ = 32767/65535, β = 1, bma = 900 000 "
        "ppm, liquid alpha 0.7–0.9, steepness 1000 = 10 in the simulator) with max_validators = "
        "V; one warm-up epoch supplies permits, u16 bonds and the previous consensus"
    )
    print(
        f"- wall time: best of {repeat} after one warm-up run each, implementations interleaved "
        "(each runs once per round), same inputs every run, input construction (Arrow tables; "
        "the simulator's dense float32 tensors) outside the timed region for all alike; DuckDB "
        "uses a fresh cursor per run (temp tables dropped, nothing cached)"
    )
    print(f"- peak memory: {MEMORY_METHOD}")
    print(f"- load average before: {_load_average()} (other processes share these cores)")
    print()


def measure_size(
    size: Size, anchor: Anchor, connection: duckdb.DuckDBPyConnection, repeat: int
) -> tuple[Row, Case]:
    """Build one size's case and measure every implementation that can run on it."""
    start = time.perf_counter()
    case = build_case(size)
    print(
        f"{size.label}: built in {time.perf_counter() - start:.1f} s; measuring …",
        file=sys.stderr,
        flush=True,
    )
    names: tuple[str, ...] = EPOCH_IMPLEMENTATIONS
    refusal = sim_memory_refusal(size) if anchor.yumas is not None else None
    if refusal is not None:
        print(f"- {refusal}")
    elif anchor.yumas is not None:
        names = (*EPOCH_IMPLEMENTATIONS, SIM)
    peaks = measure_memory(case, names)
    calls = {name: epoch_call(name, case, connection) for name in EPOCH_IMPLEMENTATIONS}
    if SIM in peaks and anchor.yumas is not None:
        refusal = sim_memory_refusal(size)  # the machine is shared: look again before timing
        if refusal is None:
            calls[SIM] = sim_call(anchor.yumas, case, build_sim_inputs(case))
        else:
            print(f"- {refusal}")
            del peaks[SIM]
    timed = measure_times(calls, repeat)
    row = Row(
        case=case,
        layout=choose_layout(case.inputs, case.state),
        best_s={name: seconds for name, (seconds, _) in timed.items()},
        peak_mib=peaks,
        results={name: result for name, (_, result) in timed.items()},
    )
    return row, case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds after the warm-up")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time each SQL statement at the largest size (always on with --sizes all)",
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("SIZE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return memory_child(*args.memory_child)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    anchor = load_anchor()
    _print_preamble(anchor, args.repeat)
    connection = duckdb.connect()
    rows: list[Row] = []
    profile = ""
    sizes = SIZES[args.sizes]
    for size in sizes:
        row, case = measure_size(size, anchor, connection, args.repeat)
        rows.append(row)
        if (args.profile or args.sizes == "all") and size == sizes[-1]:
            profile = profile_statements(case, connection, args.repeat)
    print()
    print(markdown_table(list(HEADER), [row.cells() for row in rows]))
    print()
    print(f"- load average after: {_load_average()}")
    if profile:
        print()
        print(f"## run_epoch: seconds per statement at {rows[-1].case.size.label}")
        print()
        print(profile)
    connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
