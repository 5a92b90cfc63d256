"""Benchmark: how fast each ``taoflow`` command answers, and where a one-shot epoch's wall goes.

Usage::

    python benchmarks/cli_startup.py [--home DIR --subnet S] [--runs 5] [--skip-epoch]
                                     [--only LABEL,LABEL…] [--json OUT]

1. A network: ``--home`` (an existing one, e.g. the demo's ``.taoflow``; the epoch below commits
   one more epoch to it), else the demo's genesis (4 validators, 10 trained miners: 14 neurons)
   in a temporary home, removed afterwards.
2. Commands (``COMMANDS``: ``--help``, every noun's ``--help``, an argument error, the read-only
   commands, ``submit`` of a missing file, ``ledger verify``): one untimed warm-up run each, then
   ``--runs`` fresh ``python -m taoflow.cli …`` processes; printed: the median wall time and the
   median CPU time (user + system of that process), beside the median of ``python -c pass`` (the
   interpreter floor), as ratios to the ``TARGET_S`` (0.5 s) target and to the floor, with the exit
   code (checked against the one a correct CLI gives) and the heavy packages (``HEAVY``) the
   command imported (one more run, which lists them at exit).
3. One-shot epoch: one fresh ``taoflow epoch run`` process, instrumented from inside by
   post-import hooks (the command's own code runs unchanged), split into: interpreter start, CLI
   imports, flow-stack imports and ledger reads, MLflow backfill, Prefect (temporary server start,
   or the reused server's URL), Dask cluster start, each stage's own compute (gather, evaluate,
   consensus, emit, track = MLflow; ``EpochResult.stage_compute_s``), Prefect orchestration (the
   flow run minus what is measured inside it), Dask cluster close, Prefect server stop, output
   and exit; and the ratio of wall time to stage compute (target ``EPOCH_RATIO_TARGET``, 3×).
   Steps that run in parallel overlap, so their rows may add up to more than the wall time.

Bytecode: children run without ``PYTHONDONTWRITEBYTECODE`` (``--as-is`` keeps the caller's
environment), so the warm-up runs, and an import of the epoch's modules before the epoch, leave
bytecode in ``__pycache__`` as an installed package has it (that is all they write).

Wall times depend on the machine and its load; the CPU column and the ratio to the floor are
steadier. Nothing is asserted: PASS/FAIL is printed, ``--json`` writes the report.

This module imports only the standard library at import time: the instrumented epoch child runs
it (``--epoch-child``) before the CLI, and must not preload anything the CLI would import.
"""

from __future__ import annotations

import time

_BOOT_S = time.time()  # the epoch child's first instant after interpreter start (see --epoch-child)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib.abc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any, Final  # noqa: E402

_ROOT: Final = Path(__file__).resolve().parents[1]

TARGET_S: Final = 0.5
"""Read-only commands and argument errors should answer within this (wall, median)."""
EPOCH_RATIO_TARGET: Final = 3.0
"""A one-shot epoch's wall time over its stages' own compute."""
RUNS_DEFAULT: Final = 5
COMMAND_TIMEOUT_S: Final = 300.0
"""One command run (the warm-up compiles every module it imports: minutes on a slow machine)."""
EPOCH_TIMEOUT_S: Final = 1800.0
HEAVY: Final = (
    "torch",
    "prefect",
    "mlflow",
    "dask",
    "distributed",
    "duckdb",
    "pyarrow",
    "pandas",
    "datasets",
    "sklearn",
    "pydantic",
)
"""Packages whose import costs a noticeable share of a command's start-up."""
NOUNS: Final = (
    "wallet",
    "subnet",
    "miner",
    "weights",
    "stake",
    "ledger",
    "epoch",
    "track",
    "network",
    "consensus",
)
STAGES: Final = ("gather", "evaluate", "consensus", "emit", "track")
_SUBMIT_WALLET: Final = "miner-0"
EPOCH_WARM_UP: Final = (
    "import taoflow.cli.app, taoflow.cli.epoch, taoflow.flows.epoch, taoflow.services, "
    "taoflow.tasks.track_reconcile, taoflow.tasks.evaluate.batched"
)
"""Imported once before the timed epoch, so that its own modules are compiled already."""


@dataclass(frozen=True)
class Probe:
    """One command line to time and the exit code a correct CLI gives for it."""

    label: str
    args: tuple[str, ...]
    expect_exit: int


def commands(*, home: Path, subnet: str, scratch: Path) -> tuple[Probe, ...]:
    """Every command the benchmark times, on the network at ``home``."""
    at = ("--home", str(home))
    missing = scratch / "no-such-model"
    return (
        Probe("--help", ("--help",), 0),
        *(Probe(f"{noun} --help", (noun, "--help"), 0) for noun in NOUNS),
        Probe("argument error", ("ledger", "balance", "--no-such-option"), 2),
        Probe("wallet list", ("wallet", "list", *at), 0),
        Probe("ledger balance", ("ledger", "balance", *at), 0),
        Probe("ledger supply", ("ledger", "supply", *at), 0),
        Probe("metagraph", ("metagraph", "--subnet", subnet, *at), 0),
        Probe("submissions", ("submissions", "--subnet", subnet, *at), 0),
        Probe("stake list", ("stake", "list", *at), 0),
        Probe("subnet list", ("subnet", "list", *at), 0),
        Probe(
            "submit (missing file)",
            (
                "submit",
                str(missing / "model.safetensors"),
                str(missing / "config.json"),
                "--subnet",
                subnet,
                "--wallet",
                _SUBMIT_WALLET,
                *at,
            ),
            1,
        ),
        Probe("ledger verify", ("ledger", "verify", *at), 0),
    )


# --- running children --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    exit_code: int


def child_environment(*, as_is: bool) -> dict[str, str]:
    """The caller's environment; unless ``as_is``, without ``PYTHONDONTWRITEBYTECODE``, so that
    the warm-up runs leave bytecode in ``__pycache__`` as an installed package has it."""
    env = dict(os.environ)
    env.pop("TAOFLOW_DEBUG", None)
    if not as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> Run:
    """Run ``argv`` (output discarded): wall time, the process's own CPU time, exit code."""
    started_s = time.perf_counter()
    process = subprocess.Popen(
        list(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watchdog = threading.Timer(COMMAND_TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        watchdog.cancel()
    wall_s = time.perf_counter() - started_s
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall_s, usage.ru_utime + usage.ru_stime, process.returncode)


def cli_argv(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "taoflow.cli", *args]


_LIST_HEAVY = (
    "import atexit, json, runpy, sys\n"
    "_out = sys.argv[1]\n"
    "def _dump():\n"
    "    roots = {name.partition('.')[0] for name in list(sys.modules)}\n"
    "    with open(_out, 'w') as f:\n"
    "        json.dump(sorted(roots & set(HEAVY_NAMES)), f)\n"
    "atexit.register(_dump)\n"
    "sys.argv = ['taoflow', *sys.argv[2:]]\n"
    "runpy.run_module('taoflow.cli', run_name='__main__', alter_sys=True)\n"
)


def heavy_imports(args: Sequence[str], *, env: dict[str, str], cwd: Path) -> tuple[str, ...]:
    """The ``HEAVY`` packages that ``taoflow args…`` has imported when it exits."""
    out = cwd / "heavy.json"
    out.unlink(missing_ok=True)
    code = _LIST_HEAVY.replace("HEAVY_NAMES", repr(HEAVY))
    run_once([sys.executable, "-c", code, str(out), *args], env=env, cwd=cwd)
    return tuple(json.loads(out.read_text())) if out.exists() else ("?",)


@dataclass(frozen=True)
class CommandTiming:
    label: str
    args: tuple[str, ...]
    runs: int
    wall_s: float
    """Median wall time of a fresh process."""
    cpu_s: float
    """Median CPU time (user + system) of that process."""
    exit_code: int
    expect_exit: int
    heavy: tuple[str, ...]

    def verdict(self) -> str:
        if self.exit_code != self.expect_exit:
            return f"FAIL (exit {self.exit_code}, expected {self.expect_exit})"
        return "PASS" if self.wall_s < TARGET_S else "FAIL"


def time_command(
    probe: Probe, *, runs: int, env: dict[str, str], cwd: Path, warm_up: bool = True
) -> CommandTiming:
    argv = cli_argv(probe.args)
    if warm_up:
        run_once(argv, env=env, cwd=cwd)
    timed = [run_once(argv, env=env, cwd=cwd) for _ in range(runs)]
    return CommandTiming(
        label=probe.label,
        args=probe.args,
        runs=runs,
        wall_s=statistics.median(r.wall_s for r in timed),
        cpu_s=statistics.median(r.cpu_s for r in timed),
        exit_code=timed[-1].exit_code,
        expect_exit=probe.expect_exit,
        heavy=heavy_imports(probe.args, env=env, cwd=cwd),
    )


def interpreter_floor(*, runs: int, env: dict[str, str], cwd: Path) -> Run:
    """Median of ``python -c pass`` (what no command can beat)."""
    argv = [sys.executable, "-c", "pass"]
    run_once(argv, env=env, cwd=cwd)
    timed = [run_once(argv, env=env, cwd=cwd) for _ in range(runs)]
    return Run(
        statistics.median(r.wall_s for r in timed), statistics.median(r.cpu_s for r in timed), 0
    )


# --- the instrumented epoch child ---------------------------------------------------------------

_EVENTS: list[tuple[str, float, float]] = []
_STAGE_TIMINGS: list[dict[str, float]] = []


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``hooks[name](module)`` right after module ``name`` has executed (once each)."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self._hooks = dict(hooks)

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        hook = self._hooks.pop(name, None)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            hook(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _record(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start_s = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            _EVENTS.append((name, start_s, time.time()))

    return timed


def _hook_prefect_server(module: ModuleType) -> None:
    server = module.SubprocessASGIServer
    server.start = _record("prefect server start", server.start)
    server.stop = _record("prefect server stop", server.stop)


def _hook_dask(module: ModuleType) -> None:
    cluster = module.LocalCluster
    cluster.__init__ = _record("dask cluster start", cluster.__init__)
    cluster.close = _record("dask cluster close", cluster.close)


def _hook_flows(module: ModuleType) -> None:
    module.Flow.__call__ = _record("flow", module.Flow.__call__)


def _hook_shells(module: ModuleType) -> None:
    start = module.start_stage_timings

    def start_stage_timings() -> dict[str, float]:
        timings: dict[str, float] = start()
        _STAGE_TIMINGS.append(timings)  # filled in place by the stage tasks
        return timings

    setattr(module, "start_stage_timings", start_stage_timings)  # noqa: B010


def _hook_reconcile(module: ModuleType) -> None:
    setattr(module, "reconcile_tracking", _record("mlflow reconcile", module.reconcile_tracking))  # noqa: B010


def _hook_settings(module: ModuleType) -> None:
    load = module.Settings.load  # a bound classmethod
    module.Settings.load = staticmethod(_record("settings", load))


def _hook_oneshot(module: ModuleType) -> None:
    server = module.TemporaryPrefect
    server.wait_ready = _record("prefect server start", server.wait_ready)
    server.stop = _record("prefect server stop", server.stop)


EPOCH_HOOKS: Final[dict[str, Callable[[ModuleType], None]]] = {
    "taoflow.oneshot": _hook_oneshot,
    "prefect.server.api.server": _hook_prefect_server,
    "distributed.deploy.local": _hook_dask,
    "prefect.flows": _hook_flows,
    "taoflow.tasks.shells": _hook_shells,
    "taoflow.tasks.track_reconcile": _hook_reconcile,
    "taoflow.settings": _hook_settings,
}


def epoch_child(report: Path, cli_args: list[str]) -> None:
    """Run ``taoflow cli_args…`` in this process under ``EPOCH_HOOKS``; write what they saw."""
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # benchmarks/ must not shadow top-level names for the CLI
    sys.meta_path.insert(0, _AfterImport(EPOCH_HOOKS))
    exit_code = 0
    main_end_s: list[float] = []

    def write() -> None:  # registered first, so it runs after every other exit handler
        stages: dict[str, float] = {}
        for timings in _STAGE_TIMINGS:
            for stage, seconds in timings.items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        data = {
            "boot_s": _BOOT_S,
            "main_end_s": main_end_s[0] if main_end_s else time.time(),
            "exit_handlers_end_s": time.time(),
            "events": _EVENTS,
            "stage_compute_s": stages,
            "prefect_api_url": os.environ.get("PREFECT_API_URL"),
            "exit_code": exit_code,
        }
        report.write_text(json.dumps(data))

    import atexit
    import runpy

    atexit.register(write)
    sys.argv = ["taoflow", *cli_args]
    try:
        runpy.run_module("taoflow.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        exit_code = exc.code if isinstance(exc.code, int) else 1
    main_end_s.append(time.time())
    sys.exit(exit_code)


# --- the epoch breakdown ------------------------------------------------------------------------


def _clip(spans: Sequence[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    return [(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)]


def covered_s(spans: Sequence[tuple[float, float]]) -> float:
    """Length of the union of ``spans``."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


@dataclass(frozen=True)
class EpochBreakdown:
    wall_s: float
    rows: tuple[tuple[str, float], ...]
    """(step, seconds) in the order they happen; parallel steps overlap."""
    stage_compute_s: dict[str, float]
    prefect: str
    dask: str
    exit_code: int
    tree_cpu_s: float = 0.0
    """CPU time of the command and every process it waited for (server, workers): the work
    done, whatever the machine's load."""

    @property
    def compute_s(self) -> float:
        return sum(self.stage_compute_s.values())

    @property
    def ratio(self) -> float:
        return self.wall_s / self.compute_s if self.compute_s > 0 else float("inf")

    def verdict(self) -> str:
        if self.exit_code != 0:
            return f"FAIL (exit {self.exit_code})"
        return "PASS" if self.ratio <= EPOCH_RATIO_TARGET else "FAIL"


def breakdown(
    *, spawn_s: float, exit_s: float, child: dict[str, Any], tree_cpu_s: float = 0.0
) -> EpochBreakdown:
    """Split ``[spawn_s, exit_s]`` by what ``epoch_child`` recorded (see the module doc)."""
    events: dict[str, list[tuple[float, float]]] = {}
    for name, start_s, end_s in child["events"]:
        events.setdefault(name, []).append((start_s, end_s))
    boot_s = float(child["boot_s"])
    main_end_s = min(max(float(child["main_end_s"]), boot_s), exit_s)
    handlers_end_s = min(max(float(child["exit_handlers_end_s"]), main_end_s), exit_s)
    flows = sorted(events.get("flow", []))
    flow_start_s, flow_end_s = (flows[0][0], flows[-1][1]) if flows else (exit_s, exit_s)
    command_s = min((a for a, _ in events.get("settings", [])), default=flow_start_s)
    stages = {
        s: float(child["stage_compute_s"][s]) for s in STAGES if s in child["stage_compute_s"]
    }
    measured = ("mlflow reconcile", "prefect server start", "dask cluster start")
    after = ("dask cluster close", "prefect server stop")

    def within(name: str, lo: float, hi: float) -> float:
        return covered_s(_clip(events.get(name, []), lo, hi))

    def rest(names: Sequence[str], lo: float, hi: float, *, also_s: float = 0.0) -> float:
        spans = [span for name in names for span in _clip(events.get(name, []), lo, hi)]
        return max(0.0, hi - lo - covered_s(spans) - also_s)

    in_flow = ("prefect server start", "dask cluster start", *after)  # a backfill there is "track"
    rows = [
        ("interpreter start", boot_s - spawn_s),
        ("CLI imports and argument parsing", command_s - boot_s),
        ("flow-stack imports, ledger reads", rest(measured, command_s, flow_start_s)),
        ("MLflow backfill before the flow", within("mlflow reconcile", command_s, flow_start_s)),
        ("Prefect server start (time waited)", within("prefect server start", command_s, exit_s)),
        ("Dask cluster start", within("dask cluster start", command_s, exit_s)),
        *((f"stage {stage}", seconds) for stage, seconds in stages.items()),
        (
            "Prefect orchestration (flow run minus the above)",
            rest(in_flow, flow_start_s, flow_end_s, also_s=sum(stages.values())),
        ),
        ("Dask cluster close", within("dask cluster close", flow_start_s, exit_s)),
        ("Prefect server stop", within("prefect server stop", flow_start_s, exit_s)),
        ("output after the flow", rest(after, flow_end_s, main_end_s)),
        ("threads and exit handlers", rest(after, main_end_s, handlers_end_s)),
        ("interpreter exit", rest(after, handlers_end_s, exit_s)),
    ]
    reused = child.get("prefect_api_url")
    if "prefect server start" in events:
        prefect = "temporary server started"
    else:
        prefect = f"server reused ({reused})" if reused else "no server start seen"
    dask = "LocalCluster started" if "dask cluster start" in events else "scheduler reused"
    return EpochBreakdown(
        wall_s=exit_s - spawn_s,
        rows=tuple(rows),
        stage_compute_s=stages,
        prefect=prefect,
        dask=dask,
        exit_code=int(child["exit_code"]),
        tree_cpu_s=tree_cpu_s,
    )


def time_epoch(*, home: Path, subnet: str, env: dict[str, str], cwd: Path) -> EpochBreakdown:
    """One instrumented ``taoflow epoch run`` in a fresh process (see ``epoch_child``)."""
    report = cwd / "epoch.json"
    report.unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--epoch-child", str(report), "--"]
    argv += ["epoch", "run", "--subnet", subnet, "--home", str(home), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawn_s = time.time()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=EPOCH_TIMEOUT_S)
    exit_s = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tree_cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if not report.exists():
        raise RuntimeError(f"epoch run wrote no report (exit {done.returncode}): {done.stderr!r}")
    child = json.loads(report.read_text())
    child["exit_code"] = done.returncode
    return breakdown(spawn_s=spawn_s, exit_s=exit_s, child=child, tree_cpu_s=tree_cpu_s)


# --- the network --------------------------------------------------------------------------------


def demo_genesis(home: Path) -> None:
    """The demo's genesis (wallets, trained miners) in ``home``: what ``taoflow demo`` builds."""
    from taoflow.ledger.store import Ledger
    from taoflow.network import DEMO_PASSPHRASE, ensure_genesis
    from taoflow.settings import Settings

    settings = Settings.load(home)
    ensure_genesis(
        Ledger.open(settings.ledger_dir),
        artifacts_root=settings.artifacts_dir,
        wallets_root=settings.wallets_dir,
        passphrase=DEMO_PASSPHRASE,
    )


@contextlib.contextmanager
def network(home: Path | None, scratch: Path) -> Iterator[Path]:
    if home is not None:
        yield home.resolve()
        return
    demo = scratch / "demo-home"
    print("building the demo's genesis (training 10 miners)…", flush=True)
    demo_genesis(demo)
    yield demo


# --- report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    floor: Run
    commands: tuple[CommandTiming, ...]
    epoch: EpochBreakdown | None

    def to_json(self) -> dict[str, Any]:
        epoch = None
        if self.epoch is not None:
            epoch = {
                **asdict(self.epoch),
                "rows": [list(row) for row in self.epoch.rows],
                "compute_s": self.epoch.compute_s,
                "ratio": self.epoch.ratio,
                "verdict": self.epoch.verdict(),
            }
        return {
            "target_s": TARGET_S,
            "epoch_ratio_target": EPOCH_RATIO_TARGET,
            "floor": asdict(self.floor),
            "commands": [{**asdict(c), "verdict": c.verdict()} for c in self.commands],
            "epoch": epoch,
        }


def format_report(report: Report) -> str:
    floor = report.floor.wall_s
    lines = [
        f"interpreter floor (python -c pass): {floor:.3f} s wall, {report.floor.cpu_s:.3f} s CPU",
        "",
        f"{'command':<24}{'wall s':>8}{'CPU s':>8}{'/ 0.5 s':>9}{'/ floor':>9}  "
        f"{'verdict':<8} heavy imports",
    ]
    for c in report.commands:
        lines.append(
            f"{c.label:<24}{c.wall_s:>8.3f}{c.cpu_s:>8.3f}{c.wall_s / TARGET_S:>8.2f}×"
            f"{c.wall_s / floor if floor else 0:>8.1f}×  {c.verdict():<8} "
            f"{', '.join(c.heavy) or '-'}"
        )
    epoch = report.epoch
    if epoch is not None:
        lines += [
            "",
            f"one-shot epoch run: {epoch.wall_s:.2f} s wall ({epoch.prefect}; {epoch.dask})",
        ]
        lines.append(
            f"  CPU of the command and the processes it waited for: {epoch.tree_cpu_s:.2f} s"
        )
        lines += [f"  {name:<50}{seconds:>8.2f} s" for name, seconds in epoch.rows]
        lines.append(
            f"  wall / stage compute = {epoch.wall_s:.2f} / {epoch.compute_s:.2f} = "
            f"{epoch.ratio:.1f}× (target ≤ {EPOCH_RATIO_TARGET:g}×): {epoch.verdict()}"
        )
    return "\n".join(lines)


def run_benchmark(
    *,
    home: Path | None,
    subnet: str,
    runs: int,
    only: frozenset[str] | None,
    skip_epoch: bool,
    warm_up: bool = True,
    as_is: bool = False,
    scratch_root: Path | None = None,
) -> Report:
    scratch = Path(tempfile.mkdtemp(prefix="taoflow-cli-bench-", dir=scratch_root))
    try:
        env = child_environment(as_is=as_is)
        work = scratch / "cwd"
        work.mkdir()
        with network(home, scratch) as net:
            probes = commands(home=net, subnet=subnet, scratch=scratch)
            floor = interpreter_floor(runs=max(runs, 1), env=env, cwd=work)
            timings = []
            for probe in probes:
                if only is not None and probe.label not in only:
                    continue
                timing = time_command(probe, runs=runs, env=env, cwd=work, warm_up=warm_up)
                print(f"  {probe.label}: {timing.wall_s:.3f} s", file=sys.stderr, flush=True)
                timings.append(timing)
            epoch = None
            if not skip_epoch:
                if warm_up:
                    run_once([sys.executable, "-c", EPOCH_WARM_UP], env=env, cwd=work)
                epoch = time_epoch(home=net, subnet=subnet, env=env, cwd=work)
        return Report(floor=floor, commands=tuple(timings), epoch=epoch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--epoch-child"]:
        epoch_child(Path(args[1]), args[3:] if args[2:3] == ["--"] else args[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an existing network (default: demo genesis)")
    parser.add_argument("--subnet", default="digits")
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT, help="timed runs per command")
    parser.add_argument("--only", help="comma-separated command labels to time")
    parser.add_argument("--skip-epoch", action="store_true", help="do not run the epoch")
    parser.add_argument("--skip-commands", action="store_true", help="time the epoch only")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed first runs")
    parser.add_argument("--as-is", action="store_true", help="children get this environment")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--scratch", type=Path, help="temporary files under this directory")
    options = parser.parse_args(args)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    only = frozenset(s.strip() for s in options.only.split(",")) if options.only else None
    if options.skip_commands:
        only = frozenset()
    report = run_benchmark(
        home=options.home,
        subnet=options.subnet,
        runs=options.runs,
        only=only,
        skip_epoch=options.skip_epoch,
        warm_up=not options.no_warm_up,
        as_is=options.as_is,
        scratch_root=options.scratch,
    )
    print(format_report(report))
    if options.json is not None:
        options.json.write_text(json.dumps(report.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
