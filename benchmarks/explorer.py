"""Benchmark: the explorer's page times over a simulated 256-miner × 64-validator history.

Builds (or reuses, under ``--cache-dir``) a simulated network with ``tasks.simulate`` — the real
consensus and ledger, synthetic scores — or reads an existing home (``--home``), then serves the
explorer the way ``taoflow explorer`` does: ``create_app`` (which loads the whole history; its
seconds are printed as the start-up time) under uvicorn on 127.0.0.1 in a daemon thread, every
request going over HTTP with httpx. It waits for the background ledger verification the first
visit starts (bounded by ``VERIFY_WAIT_S``; its seconds are printed) so that it does not compete
with the timed requests.

Every page is requested as HTML and as its JSON twin: the network page; the subnet page
(default sort, and by stake descending); the neuron page of the top miner and of the top
validator (the last epoch's explain, and ``?epoch=`` an early epoch); the ledger page (first
page, search by account, by kind and by transaction id, page 50, balances as of an early and
a late epoch); a transaction; governance. Each page is requested once untimed ("first", shown),
then ``--requests`` times in a row; the table gives p50, p95 and max in ms, the bytes of the
response and PASS/FAIL against ``TARGET_P95_MS`` (the issue's target: p95 < 300 ms for every
page of a 5,000-epoch history). The exit code is 1 if any page fails. Then ``CLIENTS`` clients
request the pages concurrently (each in its own order, ``--rounds`` times) and the overall
p50/p95/max and requests per second are printed. ``--profile`` runs one request of each failing
page in-process under cProfile (the route's handler: reading, page data, rendering; not HTTP)
and prints the functions with the most cumulative time.

Also printed: the ledger's size (batches, epochs, transaction rows, ``uids`` record rows, bytes
on disk) and the process's resident memory after loading and at its peak.

Usage::

    .venv/bin/python benchmarks/explorer.py --epochs 5000 --cache-dir .bench-cache
    .venv/bin/python benchmarks/explorer.py --home /path/to/home [--requests 30] [--profile]

Building 5,000 epochs takes about 30 minutes once (0.3–0.5 s per epoch); the cache keeps it and
a larger ``--epochs`` continues it. A small ``--epochs`` (50) is a quick run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import re
import resource
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.routing import Match  # noqa: E402

from taoflow.dashboards.explorer.app import ExplorerConfig, create_app  # noqa: E402

TARGET_P95_MS: Final = 300.0
TARGET_EPOCHS: Final = 5_000
SUBNET: Final = "bench"
MINERS: Final = 256
VALIDATORS: Final = 64
EPOCHS_MAX: Final = 100_000
REQUESTS_DEFAULT: Final = 30
REQUESTS_MAX: Final = 10_000
CLIENTS: Final = 4
ROUNDS_DEFAULT: Final = 3
ROUNDS_MAX: Final = 100
EARLY_EPOCH: Final = 10
"""The early epoch of the neuron pages' ``?epoch=`` and of the early balances."""
LATE_EPOCH_BACK: Final = 1
"""The late balances are as of this many epochs before the last one (not the head's state)."""
LEDGER_PAGE_DEEP: Final = 50
SERVER_START_WAIT_S: Final = 30.0
SERVER_STOP_WAIT_S: Final = 10.0
SERVER_POLL_S: Final = 0.02
VERIFY_WAIT_S: Final = 1_800.0
HTTP_TIMEOUT_S: Final = 120.0
PROFILE_LINES: Final = 30
HEX_SHOWN_CHARS: Final = 8
LONG_HEX: Final = re.compile(r"[0-9a-f]{64}")
MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class Page:
    """One timed page: a name for the table and its path with query."""

    name: str
    url: str


@dataclass(frozen=True)
class Timing:
    """A page's untimed first request and its timed requests (ms), and its response bytes."""

    page: Page
    first_ms: float
    times_ms: tuple[float, ...]
    size_bytes: int

    def p(self, fraction: float) -> float:
        return percentile(self.times_ms, fraction)


@dataclass(frozen=True)
class Targets:
    """What the pages are about, read from the explorer's own JSON."""

    subnet: str
    last_epoch: int
    miner_hotkey: str
    validator_hotkey: str
    tx_id: str


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in (0, 1]) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def build(ledger_dir: Path, *, epochs: int) -> None:
    """Simulate up to ``epochs`` epochs (continuing a cached network; nothing if it has them)."""
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.simulate import SimulationSpec, simulate

    have = 0
    if (ledger_dir / "COMMITS").exists():
        have = Ledger.open(ledger_dir).state().last_epoch.get(SUBNET, -1) + 1
    missing = epochs - have
    if missing <= 0:
        return
    spec = SimulationSpec(subnet=SUBNET, epochs=missing, miners=MINERS, validators=VALIDATORS)
    print(f"building {missing} simulated epochs ({MINERS} × {VALIDATORS}) in {ledger_dir} …")
    summary = simulate(ledger_dir, spec)
    print(f"built: {summary.seconds_per_epoch:.3f} s per epoch")


# ---- the server ------------------------------------------------------------------------------


class Served:
    """The app under uvicorn on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: FastAPI) -> None:
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only for a socket
        # whose proto says TCP (with proto 0, Nagle holds each small response ~40 ms).
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline_s = time.monotonic() + SERVER_START_WAIT_S
        while not self.server.started:
            if time.monotonic() > deadline_s or not self.thread.is_alive():
                raise RuntimeError(f"the explorer did not start within {SERVER_START_WAIT_S} s")
            time.sleep(SERVER_POLL_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(SERVER_STOP_WAIT_S)
        self.socket.close()


def client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S)


def get(http: httpx.Client, url: str) -> tuple[float, int]:
    """One request's wall time (ms, the whole body read) and its size in bytes."""
    started_s = time.perf_counter()
    response = http.get(url)
    took_ms = 1000 * (time.perf_counter() - started_s)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]!r}")
    return took_ms, len(response.content)


# ---- the pages -------------------------------------------------------------------------------


def targets(http: httpx.Client, *, subnet: str | None) -> Targets:
    """The subnet (default: the network page's first), its top miner and validator, a tx id."""
    if subnet is None:
        subnets = http.get("/api/network").json()["subnets"]
        if not subnets:
            raise RuntimeError("the ledger has no subnet to show")
        subnet = str(subnets[0]["name"])
    by_stake = http.get(f"/api/subnet/{subnet}?sort=stake_rao&order=desc").json()
    by_incentive = http.get(f"/api/subnet/{subnet}?sort=incentive&order=desc").json()
    validators = [r for r in by_stake["metagraph"] if r["role"] == "validator"]
    miners = [r for r in by_incentive["metagraph"] if r["role"] == "miner"]
    if not validators or not miners:
        raise RuntimeError(f"subnet {subnet!r} needs a miner and a validator to benchmark")
    epochs = http.get("/api/ledger", params={"kind": "epoch"}).json()["transactions"]
    if not epochs:
        raise RuntimeError("the ledger has no epoch to benchmark")
    return Targets(
        subnet=subnet,
        last_epoch=int(by_stake["last_epoch"]),
        miner_hotkey=str(miners[0]["hotkey"]),
        validator_hotkey=str(validators[0]["hotkey"]),
        tx_id=str(epochs[-1]["tx_id"]),
    )


def html_pages(t: Targets) -> list[Page]:
    """The HTML pages (each has a JSON twin under /api)."""
    early = min(EARLY_EPOCH, t.last_epoch)
    late = max(0, t.last_epoch - LATE_EPOCH_BACK)
    subnet = f"/subnet/{t.subnet}"

    def ledger(**query: object) -> str:
        return f"/ledger?{urlencode(query)}" if query else "/ledger"

    return [
        Page("network", "/"),
        Page("subnet", subnet),
        Page("subnet by stake desc", f"{subnet}?sort=stake_rao&order=desc"),
        Page("neuron miner", f"{subnet}/neuron/{t.miner_hotkey}"),
        Page(f"neuron miner epoch {early}", f"{subnet}/neuron/{t.miner_hotkey}?epoch={early}"),
        Page("neuron validator", f"{subnet}/neuron/{t.validator_hotkey}"),
        Page(
            f"neuron validator epoch {early}",
            f"{subnet}/neuron/{t.validator_hotkey}?epoch={early}",
        ),
        Page("ledger", ledger()),
        Page("ledger by account", ledger(account=t.validator_hotkey)),
        Page("ledger by kind", ledger(kind="epoch")),
        Page("ledger by tx id", ledger(q=t.tx_id)),
        Page(f"ledger page {LEDGER_PAGE_DEEP}", ledger(page=LEDGER_PAGE_DEEP)),
        Page(f"ledger as of epoch {early}", ledger(as_of_epoch=early, subnet=t.subnet)),
        Page(f"ledger as of epoch {late}", ledger(as_of_epoch=late, subnet=t.subnet)),
        Page("transaction", f"/ledger/tx/{t.tx_id}"),
        Page("governance", "/governance"),
    ]


def with_json_twins(pages: list[Page]) -> list[Page]:
    twins = []
    for page in pages:
        twins.append(page)
        api = "/api/network" if page.url == "/" else f"/api{page.url}"
        twins.append(Page(f"{page.name} (json)", api))
    return twins


def shown(url: str) -> str:
    """``url`` with 64-hex ids cut to their first characters (for the table)."""
    return LONG_HEX.sub(lambda m: m.group(0)[:HEX_SHOWN_CHARS] + "…", url)


# ---- timing ----------------------------------------------------------------------------------


def time_pages(http: httpx.Client, pages: list[Page], *, requests: int) -> list[Timing]:
    """Each page once untimed, then ``requests`` times in a row."""
    timings = []
    for page in pages:
        first_ms, size_bytes = get(http, page.url)
        times_ms = tuple(get(http, page.url)[0] for _ in range(requests))
        timings.append(Timing(page, first_ms, times_ms, size_bytes))
        print(f"  {page.name}: p95 {percentile(times_ms, 0.95):.0f} ms", file=sys.stderr)
    return timings


def print_table(timings: list[Timing], *, target_ms: float) -> bool:
    """The markdown table; whether every page met the target."""
    print(f"| page | url | first ms | p50 ms | p95 ms | max ms | bytes | p95 < {target_ms:g} ms |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    passed = True
    for t in timings:
        ok = t.p(0.95) < target_ms
        passed = passed and ok
        print(
            f"| {t.page.name} | `{shown(t.page.url)}` | {t.first_ms:.0f} | {t.p(0.5):.0f} | "
            f"{t.p(0.95):.0f} | {max(t.times_ms):.0f} | {t.size_bytes:,} | "
            f"{'PASS' if ok else 'FAIL'} |"
        )
    return passed


def concurrent(base_url: str, pages: list[Page], *, rounds: int) -> None:
    """``CLIENTS`` clients, each over every page ``rounds`` times in its own rotation."""
    times_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def work(index: int) -> None:
        shift = index * len(pages) // CLIENTS
        order = pages[shift:] + pages[:shift]
        mine = []
        with client(base_url) as http:
            barrier.wait()
            try:
                mine = [get(http, p.url)[0] for _ in range(rounds) for p in order]
            except (RuntimeError, httpx.HTTPError) as exc:
                errors.append(str(exc).splitlines()[0])
        with lock:
            times_ms.extend(mine)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(CLIENTS)]
    started_s = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started_s
    if errors:
        raise RuntimeError(f"concurrent run: {errors[0]}")
    print(
        f"\nconcurrent: {CLIENTS} clients × {rounds} rounds × {len(pages)} pages = "
        f"{len(times_ms)} requests in {wall_s:.1f} s ({len(times_ms) / wall_s:.1f} req/s): "
        f"p50 {percentile(times_ms, 0.5):.0f} ms, p95 {percentile(times_ms, 0.95):.0f} ms, "
        f"max {max(times_ms):.0f} ms"
    )


# ---- profiling -------------------------------------------------------------------------------


def handle_in_process(app: FastAPI, url: str) -> None:
    """Run the route handler of ``url`` in this thread (reading, page data, rendering)."""
    path, _, query = url.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "app": app,
    }
    for route in app.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            scope.update(child)
            endpoint = getattr(route, "endpoint", None)
            if endpoint is not None:
                endpoint(request=Request(scope), **scope["path_params"])
                return
    raise RuntimeError(f"no route for {url}")


def profile(app: FastAPI, timings: list[Timing], *, target_ms: float) -> None:
    slow = [t for t in timings if t.p(0.95) >= target_ms]
    if not slow:
        print(f"\nno page at or over {target_ms:g} ms: nothing to profile")
    for t in slow:
        profiler = cProfile.Profile()
        profiler.runcall(handle_in_process, app, t.page.url)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
        stats.print_stats(PROFILE_LINES)
        print(f"\n## profile: {t.page.name} (`{shown(t.page.url)}`)\n")
        print(out.getvalue().strip())


# ---- the run ---------------------------------------------------------------------------------


def rss_mib() -> tuple[float, float]:
    """This process's resident memory now and at its peak (MiB; Linux /proc and getrusage)."""
    now_mib = 0.0
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                now_mib = int(line.split()[1]) / 1024
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return now_mib, peak_mib


def print_size(app: FastAPI, home: Path) -> None:
    data = app.state.explorer.data
    head = data.head()
    tx_rows = data.query("SELECT count(*) AS n FROM tx")[0]["n"]
    uids_rows = data.query("SELECT count(*) AS n FROM uids_history")[0]["n"]
    ledger_dir = (home / "ledger").resolve()
    disk_bytes = sum(f.stat().st_size for f in ledger_dir.rglob("*") if f.is_file())
    print(
        f"ledger: {head.batches:,} batches, {head.epochs:,} epochs, {tx_rows:,} transaction "
        f"rows, {uids_rows:,} uids rows, {disk_bytes / MIB:,.0f} MiB on disk"
    )


def start(home: Path) -> tuple[FastAPI, float]:
    started_s = time.perf_counter()
    app = create_app(ExplorerConfig(home=home))
    return app, time.perf_counter() - started_s


def wait_for_verification(app: FastAPI, http: httpx.Client) -> None:
    """The first visit starts the background verification; wait for it (bounded)."""
    started_s = time.perf_counter()
    get(http, "/api/network")
    verifier = app.state.explorer.verifier
    finished = verifier.finished.wait(VERIFY_WAIT_S)
    took_s = time.perf_counter() - started_s
    if finished:
        print(f"background verification: {took_s:.1f} s ({verifier.result.state})")
    else:
        print(f"background verification still running after {took_s:.0f} s: it competes")


def run(home: Path, args: argparse.Namespace) -> int:
    app, startup_s = start(home)
    now_mib, _ = rss_mib()
    print(f"# explorer over {home}")
    print(f"start-up (create_app: loading the history): {startup_s:.1f} s, RSS {now_mib:,.0f} MiB")
    print_size(app, home)
    with Served(app) as served, client(served.base_url) as http:
        wait_for_verification(app, http)
        pages = with_json_twins(html_pages(targets(http, subnet=args.subnet)))
        timings = time_pages(http, pages, requests=args.requests)
        print(f"\n{args.requests} sequential requests per page after one untimed first request\n")
        passed = print_table(timings, target_ms=args.target_ms)
        concurrent(served.base_url, pages, rounds=args.rounds)
    now_mib, peak_mib = rss_mib()
    print(f"process RSS: {now_mib:,.0f} MiB now, {peak_mib:,.0f} MiB peak")
    if args.profile:
        profile(app, timings, target_ms=args.target_ms)
    verdict = "every page meets" if passed else "some pages MISS"
    print(f"\n{verdict} the p95 < {args.target_ms:g} ms target")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--home", type=Path, default=None, help="Serve this existing home")
    where.add_argument("--cache-dir", type=Path, default=None, help="Keep the built network")
    parser.add_argument("--epochs", type=int, default=TARGET_EPOCHS)
    parser.add_argument("--subnet", default=None, help="Default: the network page's first")
    parser.add_argument("--requests", type=int, default=REQUESTS_DEFAULT)
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT)
    parser.add_argument("--target-ms", type=float, default=TARGET_P95_MS)
    parser.add_argument("--profile", action="store_true", help="cProfile each failing page")
    args = parser.parse_args(argv)
    if not 1 <= args.epochs <= EPOCHS_MAX:
        parser.error(f"--epochs must be between 1 and {EPOCHS_MAX}")
    if not 1 <= args.requests <= REQUESTS_MAX or not 1 <= args.rounds <= ROUNDS_MAX:
        parser.error(f"--requests must be in 1..{REQUESTS_MAX} and --rounds in 1..{ROUNDS_MAX}")
    if args.home is not None:
        if not (args.home / "ledger" / "COMMITS").exists():
            parser.error(f"no ledger at {args.home / 'ledger'}")
        return run(args.home, args)
    with tempfile.TemporaryDirectory(prefix="taoflow-bench-explorer-") as scratch:
        root = args.cache_dir if args.cache_dir is not None else Path(scratch)
        home = root / f"explorer-{MINERS}x{VALIDATORS}"
        build(home / "ledger", epochs=args.epochs)
        return run(home, args)


if __name__ == "__main__":
    sys.exit(main())
