"""Benchmark: the ledger at scale — every figure of issue 10 beside its target, in one run.

Usage::

    python benchmarks/ledger.py [--entries 1_000_000] [--batch-size 100_000] [--signed 20_000]
                                [--snapshot-every 16] [--dir PATH] [--keep]

``--entries`` is the number of rows the ledger ends with. The default (1M) finishes in a few
minutes on a 2-core machine; issue 10 states its targets at ``--entries 10_000_000``. The scale
actually used is printed first. Everything runs through the real code in a temporary directory
(or under ``--dir``; ``--keep`` leaves it there).

The ledger built (a 256-uid subnet, 64 validators and 192 miners, plus D delegators):

- batch 1: the ``network`` entry (writer key), mints, the signed ``subnet_create`` and the
  signed registrations of every validator and miner;
- batch 2: each delegator's signed ``add_stake`` on every validator (D · 64 user transactions);
- then one batch per epoch: the ``epoch`` entry and the emission rows the ledger's own plan owes
  (``LedgerState.epoch_plan``): the owner's, one incentive per miner, one dividend (the take) per
  validator and one delegator entry per (validator, delegator). D is chosen so that an epoch
  batch holds at least ``--batch-size`` rows. These are real epoch batches, not genesis mints
  (without epoch record tables: ``benchmarks/ledger_age.py`` measures epochs with records).

Every batch goes through ``Ledger.commit`` (rules, supply identity, rows hash, writer signature,
batch file, fsyncs, commit-log line, and a snapshot every ``--snapshot-every`` batches, written
inside the commit that triggers it); at the end one on-demand ``Ledger.snapshot()`` of the head,
so figures 3 and 4 start from a snapshot of the head (the batch the rules are replayed from and
the snapshot used are printed) while the as-of figures start from the newest snapshot at or
before their batch, or from genesis.

Figures (target from issue 10; the table prints PASS/FAIL, nothing is asserted):

1. append — emission rows per second of ``Ledger.commit`` over the epoch batches: >= 1M/s with
   batches >= 100k rows. Also: with the ``Tx`` construction and plan included, and the signed
   stake batch's commit rate (one signature checked per row).
2. signed user transactions — ``benchmarks.signatures.bench(--signed)``: the bulk check
   (``signature_problems``, one process) against raw ``cryptography`` ed25519 verifies of the
   same signatures in the same run: >= 80 %.
3. ``Ledger.verify(from_snapshot=True)`` against a raw pyarrow scan of the same batch files
   (memory map + ``read_all`` + Σ ``amount_rao``, best of ``SCAN_REPEAT``): throughput ratio
   scan_s / verify_s >= 50 %, with the bulk signature checks counted separately: the time spent
   inside ``verify``'s own ``signature_problems_table`` calls, measured during that same call,
   is taken out of its time. For reference: the ratio with them, the full ``verify()`` from
   genesis, and the sha256 of every batch file alone (a floor for any verify that hashes the
   bytes, which the one-column raw scan does not read).
4. open + state — ``Ledger(root).state()`` in a fresh object (newest snapshot + tail): < 1 s.
5. balance and supply "as of epoch N", N = the middle epoch, as ``taoflow ledger balance|supply
   --as-of-epoch N`` computes them (fresh ``Ledger``, ``batch_of_epoch``, ``state_as_of``):
   < 100 ms each (median of up to ``QUERY_REPEAT`` runs, fewer once they have taken
   ``REPEAT_BUDGET_S``; the number of runs is printed).
6. memory — peak RSS of a fresh process that opens the ledger and builds the state, beside the
   same process's RSS after its imports, the bytes of the state's snapshot tables
   (``snapshot_codec.state_to_tables``) and the history on disk (batch + record files;
   snapshots apart). Printed, no verdict: ``benchmarks/ledger_age.py`` checks that it stays flat
   as the history grows.

Bounds: ``--entries`` <= ``ENTRIES_MAX``, ``--batch-size`` in [``BATCH_ROWS_MIN``,
``TXS_PER_BATCH_MAX``], the memory child runs at most ``CHILD_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.ipc as ipc  # noqa: E402

from benchmarks.signatures import bench as signature_bench  # noqa: E402
from taoflow.ledger.keys import Keypair  # noqa: E402
from taoflow.ledger.network import TX_FEE_DEFAULT_RAO, NetworkParams  # noqa: E402
from taoflow.ledger.payouts import EpochShares  # noqa: E402
from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json  # noqa: E402
from taoflow.ledger.signing import sign, signer_of  # noqa: E402
from taoflow.ledger.snapshot_codec import state_to_tables  # noqa: E402
from taoflow.ledger.state import LedgerState, epoch_tx_id  # noqa: E402
from taoflow.ledger.store import Ledger  # noqa: E402
from taoflow.ledger.store import ledger as ledger_module  # noqa: E402
from taoflow.ledger.store.hashing import file_sha256  # noqa: E402
from taoflow.ledger.store.ledger import TXS_PER_BATCH_MAX, default_writer_key_path  # noqa: E402
from taoflow.ledger.store.snapshots import SNAPSHOT_EVERY_BATCHES_DEFAULT, index_records  # noqa: E402
from taoflow.ledger.store.writer_key import load_or_create_writer_key  # noqa: E402

SUBNET: Final = "bench"
NETWORK_NAME: Final = "taoflow-ledger-bench"
VALIDATORS: Final = 64
MINERS: Final = 192
TEMPO_BLOCKS: Final = 360
REGISTER_COST_RAO: Final = RAO_PER_TAO
LOCK_RAO: Final = 100 * RAO_PER_TAO
SPARE_RAO: Final = 10 * RAO_PER_TAO
STAKE_BASE_RAO: Final = RAO_PER_TAO
STAKE_SPREAD_RAO: Final = 997

ENTRIES_DEFAULT: Final = 1_000_000
ENTRIES_ISSUE: Final = 10_000_000
ENTRIES_MAX: Final = 100_000_000
BATCH_ROWS_DEFAULT: Final = 100_000
BATCH_ROWS_ISSUE: Final = 100_000
BATCH_ROWS_MIN: Final = 1_000
EPOCHS_MIN: Final = 2
SIGNED_DEFAULT: Final = 20_000
SCAN_REPEAT: Final = 2
OPEN_REPEAT: Final = 3
QUERY_REPEAT: Final = 5
REPEAT_BUDGET_S: Final = 5.0
PROGRESS_EVERY_S: Final = 10.0
CHILD_TIMEOUT_S: Final = 600

TARGET_APPEND_PER_S: Final = 1_000_000
TARGET_SIGNED_RATIO: Final = 0.80
TARGET_VERIFY_RATIO: Final = 0.50
TARGET_OPEN_S: Final = 1.0
TARGET_QUERY_S: Final = 0.100

T = TypeVar("T")

# The memory child: peak RSS after imports, then after opening the ledger and building its
# state. VmHWM (the peak of this process image), not ru_maxrss: Linux carries ru_maxrss over
# from the parent through fork and exec, so a child would report the benchmark's own peak.
_RSS_CHILD: Final = """
import json, sys
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status")
sys.path.insert(0, sys.argv[2])
from taoflow.ledger.store import Ledger
imports_kib = peak_kib()
ledger = Ledger(sys.argv[1])
state = ledger.state()
print(json.dumps({"imports_kib": imports_kib, "peak_kib": peak_kib(),
                  "snapshot": ledger.last_snapshot_load.used, "accounts": len(state.balances)}))
"""


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def median_s(fn: Callable[[], object], *, repeat: int) -> tuple[float, int]:
    """Median wall time of up to ``repeat`` calls of ``fn`` and how many ran: calls stop once
    they have taken ``REPEAT_BUDGET_S`` in all (a slow figure is not repeated for minutes)."""
    times: list[float] = []
    while len(times) < repeat and sum(times) < REPEAT_BUDGET_S:
        times.append(timed(fn)[1])
    return statistics.median(times), len(times)


def keypair(name: str) -> Keypair:
    """A fixed benchmark key per name (derived from a public seed: never for real money)."""
    return Keypair.from_private_bytes(hashlib.sha256(f"bench-ledger/{name}".encode()).digest())


# ---- the population and its batches ----------------------------------------------------------


@dataclass(frozen=True)
class Neuron:
    """A registered validator or miner: its coldkey and hotkey."""

    role: str
    cold: Keypair
    hot: Keypair


@dataclass(frozen=True)
class Population:
    """Everyone in the benchmark network (uids: validators first, then miners)."""

    params: NetworkParams
    owner: Keypair
    owner_hot: Keypair
    neurons: tuple[Neuron, ...]
    delegators: tuple[Keypair, ...]

    @property
    def validators(self) -> tuple[Neuron, ...]:
        return self.neurons[:VALIDATORS]

    def rows_per_epoch(self, *, first: bool = False) -> int:
        """Rows of an epoch batch: the entry, the owner's, an incentive per miner, a take per
        validator and a delegator entry per (validator, staker). The take is paid as stake on
        the validator's own hotkey, so from the second epoch on each validator's coldkey is one
        more staker: the first epoch batch has ``VALIDATORS`` rows fewer."""
        stakers = len(self.delegators) + (0 if first else 1)
        return 2 + MINERS + VALIDATORS + stakers * VALIDATORS


def population(*, writer: Keypair, batch_rows: int) -> Population:
    """Keys for a 256-uid subnet and enough delegators for ``batch_rows`` rows per epoch."""
    # enough that even the first (smallest) epoch batch holds batch_rows rows
    delegators = max(1, math.ceil((batch_rows - 2 - MINERS - VALIDATORS) / VALIDATORS))
    salt_hex = hashlib.sha256(b"bench-ledger/salt").hexdigest()
    return Population(
        params=NetworkParams(name=NETWORK_NAME, writer_key=writer.public_hex, salt_hex=salt_hex),
        owner=keypair("owner/cold"),
        owner_hot=keypair("owner/hot"),
        neurons=tuple(
            Neuron(role, keypair(f"{role}-{i}/cold"), keypair(f"{role}-{i}/hot"))
            for role, count in (("validator", VALIDATORS), ("miner", MINERS))
            for i in range(count)
        ),
        delegators=tuple(keypair(f"delegator-{d}") for d in range(delegators)),
    )


def stake_rao(delegator: int, validator: int) -> int:
    """The stake delegator ``delegator`` puts on validator ``validator`` (distinct amounts)."""
    return STAKE_BASE_RAO + (delegator * VALIDATORS + validator) % STAKE_SPREAD_RAO


def signed_by(pop: Population, txs: Sequence[Tx]) -> list[Tx]:
    """``txs`` signed by their signers' keys (nonces are set by the caller)."""
    keys = {k.public_hex: k for k in (pop.owner, *pop.delegators)}
    keys.update({n.cold.public_hex: n.cold for n in pop.neurons})
    network_id = pop.params.network_id
    return [sign(tx, keys[str(signer_of(tx))], network_id=network_id) for tx in txs]


def genesis_txs(pop: Population) -> list[Tx]:
    """Batch 1: network, mints, the signed subnet and the signed registrations."""
    delegator_mint = VALIDATORS * (STAKE_BASE_RAO + STAKE_SPREAD_RAO + TX_FEE_DEFAULT_RAO)
    mints = [(pop.owner.public_hex, LOCK_RAO + SPARE_RAO)]
    mints += [(n.cold.public_hex, REGISTER_COST_RAO + SPARE_RAO) for n in pop.neurons]
    mints += [(k.public_hex, delegator_mint + SPARE_RAO) for k in pop.delegators]
    config = {
        "tempo_blocks": TEMPO_BLOCKS,
        "uids_max": VALIDATORS + MINERS,
        "registration_cost_rao": REGISTER_COST_RAO,
        "registration_cost_increase_ppm": 0,
    }
    subnet = Tx(
        f"genesis/subnet/{SUBNET}",
        Kind.SUBNET_CREATE,
        subnet=SUBNET,
        coldkey=pop.owner.public_hex,
        hotkey=pop.owner_hot.public_hex,
        amount_rao=LOCK_RAO,
        payload=canonical_json(config),
        nonce=1,
    )
    registers = [
        Tx(
            f"genesis/register/{uid}",
            Kind.REGISTER,
            subnet=SUBNET,
            coldkey=n.cold.public_hex,
            hotkey=n.hot.public_hex,
            amount_rao=REGISTER_COST_RAO,
            payload=canonical_json({"role": n.role}),
            nonce=1,
        )
        for uid, n in enumerate(pop.neurons)
    ]
    network = Tx("genesis/network", Kind.NETWORK, payload=canonical_json(pop.params.to_payload()))
    minted = [
        Tx(f"genesis/mint/{i}", Kind.GENESIS_MINT, coldkey=account, amount_rao=amount)
        for i, (account, amount) in enumerate(mints)
    ]
    return [network, *minted, *signed_by(pop, [subnet, *registers])]


def stake_txs(pop: Population) -> list[Tx]:
    """Batch 2: every delegator stakes on every validator (signed, nonces 1..VALIDATORS)."""
    txs = [
        Tx(
            f"stake/{d}/{v}",
            Kind.ADD_STAKE,
            coldkey=key.public_hex,
            hotkey=validator.hot.public_hex,
            amount_rao=stake_rao(d, v),
            nonce=v + 1,
        )
        for d, key in enumerate(pop.delegators)
        for v, validator in enumerate(pop.validators)
    ]
    return signed_by(pop, txs)


def epoch_shares(state: LedgerState, epoch: int) -> EpochShares:
    """Deterministic consensus shares: miners earn incentive, validators dividends."""
    neurons = state.neurons[SUBNET]
    roles = [neurons[uid].role for uid in range(len(neurons))]
    incentive = [1 + (uid * 7 + epoch) % 13 if r == "miner" else 0 for uid, r in enumerate(roles)]
    dividends = [1 + (uid + epoch) % 5 if r == "validator" else 0 for uid, r in enumerate(roles)]
    return EpochShares(
        hotkeys=tuple(neurons[uid].hotkey for uid in range(len(neurons))),
        incentive_q=tuple(incentive),
        dividends_q=tuple(dividends),
        validator_share_q=tuple(dividends),
    )


def epoch_txs(state: LedgerState) -> list[Tx]:
    """The next epoch of ``SUBNET``: its entry and the emission rows the ledger's plan owes."""
    epoch = state.last_epoch.get(SUBNET, -1) + 1
    shares = epoch_shares(state, epoch)
    plan = state.epoch_plan(SUBNET, shares)
    block = state.block + TEMPO_BLOCKS
    payload = {
        "scheduled_rao": plan.scheduled_rao,
        "unissued_rao": plan.payouts.unissued_rao,
        "shares": shares.to_payload(),
        "evaluation": {"errors": {}},
    }
    prefix = epoch_tx_id(SUBNET, epoch)
    entry = Tx(
        prefix,
        Kind.EPOCH,
        subnet=SUBNET,
        epoch=epoch,
        block=block,
        amount_rao=plan.total_rao,
        payload=canonical_json(payload),
    )
    return [entry] + [
        Tx(
            f"{prefix}/{e.kind.value}/{e.uid}/{e.coldkey}",
            e.kind,
            subnet=SUBNET,
            epoch=epoch,
            block=block,
            coldkey=e.coldkey,
            hotkey=e.hotkey,
            uid=e.uid,
            amount_rao=e.amount_rao,
        )
        for e in plan.entries
    ]


# ---- 1. append ---------------------------------------------------------------------------------


@dataclass
class Build:
    """What building the ledger took."""

    pop: Population
    genesis_rows: int = 0
    stake_rows: int = 0
    stake_sign_s: float = 0.0
    stake_commit_s: float = 0.0
    epochs: int = 0
    emission_rows: int = 0
    construct_s: float = 0.0
    commit_s: list[float] = field(default_factory=list)
    snapshot_s: float = 0.0

    @property
    def rows(self) -> int:
        return self.genesis_rows + self.stake_rows + self.emission_rows


def epochs_for(entries: int, pop: Population) -> int:
    """Epoch batches needed for the ledger to hold about ``entries`` rows."""
    genesis = 1 + 1 + len(pop.neurons) * 2 + len(pop.delegators) * (1 + VALIDATORS)
    return max(EPOCHS_MIN, math.ceil((entries - genesis) / pop.rows_per_epoch()))


def build(ledger: Ledger, pop: Population, *, epochs: int) -> Build:
    """Genesis, the signed stakes, then ``epochs`` epoch batches, all through ``commit``."""
    out = Build(pop)
    txs = genesis_txs(pop)
    ledger.commit(txs)
    out.genesis_rows = len(txs)
    txs, out.stake_sign_s = timed(lambda: stake_txs(pop))
    _, out.stake_commit_s = timed(lambda: ledger.commit(txs))
    out.stake_rows = len(txs)
    last_print = time.perf_counter()
    for _ in range(epochs):  # bounded by epochs_for(ENTRIES_MAX)
        txs, seconds = timed(lambda: epoch_txs(ledger.state()))
        out.construct_s += seconds
        result, seconds = timed(functools.partial(ledger.commit, txs))
        if result.applied != len(txs):
            raise RuntimeError(f"epoch batch applied {result.applied} of {len(txs)} rows")
        out.commit_s.append(seconds)
        out.emission_rows += len(txs)
        out.epochs += 1
        if time.perf_counter() - last_print > PROGRESS_EVERY_S:
            last_print = time.perf_counter()
            print(f"  … {out.epochs}/{epochs} epochs, {out.rows:,} rows", flush=True)
    _, out.snapshot_s = timed(ledger.snapshot)
    return out


# ---- 3. verify against a raw scan ------------------------------------------------------------


def raw_scan(root: Path) -> tuple[int, int, float]:
    """Plain pyarrow scan of every batch file: (rows, Σ amount_rao, seconds)."""
    start = time.perf_counter()
    rows = total = 0
    for path in sorted((root / "batches").glob("*.arrow")):
        table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        rows += table.num_rows
        total += pc.sum(table.column("amount_rao")).as_py() or 0
    return rows, total, time.perf_counter() - start


@contextlib.contextmanager
def time_spent_in(module: types.ModuleType, name: str) -> Iterator[list[float]]:
    """Accumulate the seconds spent in ``module.name`` while the block runs (in ``[0]``)."""
    original: Callable[..., Any] = getattr(module, name)
    spent = [0.0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    setattr(module, name, wrapper)
    try:
        yield spent
    finally:
        setattr(module, name, original)


@dataclass(frozen=True)
class VerifyFigures:
    rows: int
    scan_s: float
    snap_verify_s: float
    signatures_s: float
    full_verify_s: float
    rules_from_batch: int
    hash_floor_s: float
    """``file_sha256`` of every batch file: what any verify that hashes the bytes must pay."""

    @property
    def ratio_without_signatures(self) -> float:
        return self.scan_s / max(self.snap_verify_s - self.signatures_s, 1e-9)

    @property
    def ratio_with_signatures(self) -> float:
        return self.scan_s / self.snap_verify_s


def measure_verify(root: Path) -> VerifyFigures:
    """verify(from_snapshot=True) with the time its bulk signature checks took (measured
    inside that very call), full verify, and the raw scan (before and after)."""
    first = raw_scan(root)
    with time_spent_in(ledger_module, "signature_problems_table") as signatures_s:
        report, snap_s = timed(lambda: Ledger(root).verify(from_snapshot=True))
    if not report.ok:
        raise RuntimeError(f"verify --from-snapshot failed: {report.problem}")
    full, full_s = timed(lambda: Ledger(root).verify())
    if not full.ok:
        raise RuntimeError(f"verify failed: {full.problem}")
    scans = [first[2]] + [raw_scan(root)[2] for _ in range(SCAN_REPEAT - 1)]
    files = sorted((root / "batches").glob("*.arrow"))
    _, hash_floor_s = timed(lambda: [file_sha256(path) for path in files])
    return VerifyFigures(
        rows=report.rows,
        scan_s=min(scans),
        snap_verify_s=snap_s,
        signatures_s=signatures_s[0],
        full_verify_s=full_s,
        rules_from_batch=report.rules_from_batch,
        hash_floor_s=hash_floor_s,
    )


# ---- 4, 5. open and "as of" ------------------------------------------------------------------


@dataclass(frozen=True)
class QueryFigures:
    open_s: float
    open_runs: int
    open_snapshot: int | None
    as_of_epoch: int
    as_of_batch: int
    as_of_snapshot: int | None
    balance_s: float
    supply_s: float
    query_runs: tuple[int, int]
    balance_rao: int
    supply: dict[str, int]


def as_of_state(root: Path, epoch: int) -> LedgerState:
    """What ``taoflow ledger balance|supply --as-of-epoch`` reads: a fresh Ledger's answer."""
    ledger = Ledger(root)
    batch = ledger.batch_of_epoch(SUBNET, epoch)
    if batch is None:
        raise RuntimeError(f"epoch {epoch} of {SUBNET!r} is not in the ledger")
    return ledger.state_as_of(batch)


def measure_queries(root: Path, *, epoch: int, account: str) -> QueryFigures:
    """Open + state (fresh object), then balance and supply as of ``epoch``."""
    opened: list[Ledger] = []

    def open_state() -> None:
        ledger = Ledger(root)
        ledger.state()
        opened.append(ledger)

    open_s, open_runs = median_s(open_state, repeat=OPEN_REPEAT)
    batch = Ledger(root).batch_of_epoch(SUBNET, epoch) or 0
    older = [r.batch_no for r in index_records(root)[0] if r.batch_no <= batch]
    answers: list[int | dict[str, int]] = []
    balance = median_s(
        lambda: answers.append(as_of_state(root, epoch).balance(account)), repeat=QUERY_REPEAT
    )
    supply = median_s(
        lambda: answers.append(as_of_state(root, epoch).supply()), repeat=QUERY_REPEAT
    )
    balance_rao, supply_terms = answers[0], answers[-1]
    if not isinstance(balance_rao, int) or not isinstance(supply_terms, dict):
        raise RuntimeError("as-of answers out of order")
    return QueryFigures(
        open_s=open_s,
        open_runs=open_runs,
        open_snapshot=opened[-1].last_snapshot_load.used,
        as_of_epoch=epoch,
        as_of_batch=batch,
        as_of_snapshot=max(older) if older else None,
        balance_s=balance[0],
        supply_s=supply[0],
        query_runs=(balance[1], supply[1]),
        balance_rao=balance_rao,
        supply=supply_terms,
    )


# ---- 6. memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryFigures:
    peak_bytes: int
    imports_bytes: int
    state_table_bytes: int
    history_bytes: int
    record_bytes: int
    snapshot_bytes: int
    snapshot_used: int | None


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def fresh_process_memory(root: Path) -> dict[str, Any]:
    """Peak RSS (KiB) of a fresh process after imports and after opening the ledger at ``root``
    and building its state, with the snapshot it used (``_RSS_CHILD``)."""
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(root), str(_ROOT)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_memory(root: Path) -> MemoryFigures:
    """Peak RSS of a fresh process that opens the ledger and builds the state."""
    child = fresh_process_memory(root)
    tables = state_to_tables(Ledger(root).state())
    return MemoryFigures(
        peak_bytes=int(child["peak_kib"]) * 1024,
        imports_bytes=int(child["imports_kib"]) * 1024,
        state_table_bytes=sum(t.nbytes for t in tables.values()),
        history_bytes=tree_bytes(root / "batches"),
        record_bytes=tree_bytes(root / "records"),
        snapshot_bytes=tree_bytes(root / "snapshots"),
        snapshot_used=child["snapshot"],
    )


# ---- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    metric: str
    measured: str
    target: str = ""
    verdict: str = ""


def judged(metric: str, measured: str, target: str, ok: bool) -> Figure:
    return Figure(metric, measured, target, "PASS" if ok else "FAIL")


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def append_figures(b: Build, batch_rows: int) -> list[Figure]:
    commit_s = sum(b.commit_s)
    rate = b.emission_rows / commit_s
    size = b.emission_rows // max(b.epochs, 1)
    target = f">= {TARGET_APPEND_PER_S:,}/s"
    return [
        judged(
            f"append: emission rows via commit ({size:,}/batch)",
            f"{rate:,.0f}/s",
            target,
            rate >= TARGET_APPEND_PER_S and size >= BATCH_ROWS_ISSUE,
        ),
        Figure(
            "  incl. plan + Tx construction",
            f"{b.emission_rows / (commit_s + b.construct_s):,.0f}/s",
        ),
        Figure(
            "  commit per batch: first / last / max",
            " / ".join(f"{s:.2f} s" for s in (b.commit_s[0], b.commit_s[-1], max(b.commit_s))),
        ),
        Figure(
            f"  signed stakes batch ({b.stake_rows:,} rows) commit",
            f"{b.stake_rows / b.stake_commit_s:,.0f}/s",
        ),
        Figure("  on-demand snapshot of the head", f"{b.snapshot_s:.2f} s"),
    ] + (
        [
            Figure(
                f"  (batches < {BATCH_ROWS_ISSUE:,} rows: not the issue's append setting)",
                f"--batch-size {batch_rows:,}",
            )
        ]
        if batch_rows < BATCH_ROWS_ISSUE
        else []
    )


def signature_figures(sig: dict[str, float]) -> list[Figure]:
    ratio = sig["bulk_ratio"]
    return [
        judged(
            "signed user txs: bulk check / raw ed25519 (1 proc)",
            f"{ratio:.1%}",
            f">= {TARGET_SIGNED_RATIO:.0%}",
            ratio >= TARGET_SIGNED_RATIO,
        ),
        Figure(
            "  raw ed25519 verify / bulk check",
            f"{sig['raw_per_s']:,.0f} / {sig['bulk_per_s']:,.0f} sig/s",
        ),
        Figure(
            "  from the Arrow table (1 proc) / ratio",
            f"{sig['table_per_s']:,.0f} sig/s / {sig['table_ratio']:.1%}",
        ),
        Figure(
            f"  {int(sig['workers'])} worker processes / ratio",
            f"{sig['parallel_per_s']:,.0f} sig/s / {sig['parallel_ratio']:.1%}",
        ),
    ]


def verify_figures(v: VerifyFigures) -> list[Figure]:
    ratio = v.ratio_without_signatures
    return [
        judged(
            "verify --from-snapshot / raw scan (sigs apart)",
            f"{ratio:.1%}",
            f">= {TARGET_VERIFY_RATIO:.0%}",
            ratio >= TARGET_VERIFY_RATIO,
        ),
        Figure(
            "  verify --from-snapshot: total / signatures",
            f"{v.snap_verify_s:.2f} s / {v.signatures_s:.2f} s",
        ),
        Figure("  rules replayed from batch", f"{v.rules_from_batch}"),
        Figure("  ratio with the signature checks", f"{v.ratio_with_signatures:.1%}"),
        Figure("  raw pyarrow scan", f"{v.scan_s * 1e3:,.1f} ms ({v.rows / v.scan_s:,.0f} rows/s)"),
        Figure(
            "  sha256 of every batch file / its share of verify",
            f"{v.hash_floor_s:.2f} s / "
            f"{v.hash_floor_s / max(v.snap_verify_s - v.signatures_s, 1e-9):.0%}",
        ),
        Figure(
            "  full verify() from genesis (reference)",
            f"{v.full_verify_s:.2f} s ({v.rows / v.full_verify_s:,.0f} rows/s)",
        ),
    ]


def query_figures(q: QueryFigures) -> list[Figure]:
    target = f"< {TARGET_QUERY_S * 1e3:.0f} ms"
    where = f"batch {q.as_of_batch}, snapshot {q.as_of_snapshot or 'none: genesis'}"
    return [
        judged(
            "open + state, fresh Ledger",
            f"{q.open_s:.3f} s",
            f"< {TARGET_OPEN_S:.0f} s",
            q.open_s < TARGET_OPEN_S,
        ),
        Figure(f"  snapshot used (median of {q.open_runs})", f"batch {q.open_snapshot}"),
        judged(
            f"balance as of epoch {q.as_of_epoch}",
            f"{q.balance_s * 1e3:,.1f} ms",
            target,
            q.balance_s < TARGET_QUERY_S,
        ),
        judged(
            f"supply as of epoch {q.as_of_epoch}",
            f"{q.supply_s * 1e3:,.1f} ms",
            target,
            q.supply_s < TARGET_QUERY_S,
        ),
        Figure(f"  as-of start (median of {q.query_runs[0]} / {q.query_runs[1]})", where),
    ]


def memory_figures(m: MemoryFigures) -> list[Figure]:
    return [
        Figure(
            "open + state, fresh process: peak RSS",
            mib(m.peak_bytes),
            "bounded by state",
            "printed",
        ),
        Figure("  same process after imports only", mib(m.imports_bytes)),
        Figure("  state tables (snapshot_codec, in memory)", mib(m.state_table_bytes)),
        Figure(
            "  history on disk: batches / records",
            f"{mib(m.history_bytes)} / {mib(m.record_bytes)}",
        ),
        Figure("  snapshots on disk (all kept)", mib(m.snapshot_bytes)),
    ]


def print_table(figures: Sequence[Figure]) -> None:
    width = 108
    print("\n" + "=" * width)
    print(f"{'figure':<54}{'measured':>26}{'target':>19}{'':>9}")
    print("-" * width)
    for f in figures:
        print(f"{f.metric:<54}{f.measured:>26}{f.target:>19}{f.verdict:>9}")
    print("=" * width)


# ---- main -------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--entries",
        type=int,
        default=ENTRIES_DEFAULT,
        help=f"rows in the ledger (issue 10: {ENTRIES_ISSUE:,})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_ROWS_DEFAULT,
        help="rows per epoch batch, at least (issue 10: >= 100,000)",
    )
    parser.add_argument(
        "--signed",
        type=int,
        default=SIGNED_DEFAULT,
        help="signatures for the signed-transaction figure",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=SNAPSHOT_EVERY_BATCHES_DEFAULT,
        help="batches between automatic snapshots (the ledger's default)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="work here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the ledger directory")
    args = parser.parse_args(argv)
    if not 1 <= args.entries <= ENTRIES_MAX:
        parser.error(f"--entries must be in [1, {ENTRIES_MAX:,}]")
    if not BATCH_ROWS_MIN <= args.batch_size <= TXS_PER_BATCH_MAX:
        parser.error(f"--batch-size must be in [{BATCH_ROWS_MIN:,}, {TXS_PER_BATCH_MAX:,}]")
    if args.signed < 1 or args.snapshot_every < 0:
        parser.error("--signed must be >= 1 and --snapshot-every >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    base = Path(tempfile.mkdtemp(prefix="taoflow-ledger-bench-", dir=args.dir))
    try:
        figures = run(args, base / "ledger")
    finally:
        if args.keep:
            print(f"\nkept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print_table(figures)
    return 0


def run(args: argparse.Namespace, root: Path) -> list[Figure]:
    """Build the ledger, measure everything, and return the table's rows."""
    writer = load_or_create_writer_key(
        default_writer_key_path(root), new_key=lambda: keypair("writer")
    )
    pop = population(writer=writer, batch_rows=args.batch_size)
    epochs = epochs_for(args.entries, pop)
    print(
        f"ledger benchmark: --entries {args.entries:,} (issue 10: {ENTRIES_ISSUE:,}), "
        f"--batch-size {args.batch_size:,}, --snapshot-every {args.snapshot_every}\n"
        f"  rows: real epoch batches (1 epoch entry + {pop.rows_per_epoch(first=True) - 1:,}+ "
        f"emission rows: owner, incentive, take, delegators); {epochs} epochs, {VALIDATORS} "
        f"validators, {MINERS} miners, {len(pop.delegators):,} delegators on every validator\n"
        f"  python {sys.version.split()[0]}, pyarrow {pa.__version__}; {root}",
        flush=True,
    )
    ledger = Ledger.open(root, snapshot_every=args.snapshot_every)
    print("\n[1/5] building through Ledger.commit …", flush=True)
    b = build(ledger, pop, epochs=epochs)
    print(f"  {b.rows:,} rows in {len(ledger.records())} batches", flush=True)
    print("[2/5] signed transactions vs raw ed25519 …", flush=True)
    sig = signature_bench(args.signed)
    print("[3/5] verify vs raw scan …", flush=True)
    ver = measure_verify(root)
    print("[4/5] open and as-of queries …", flush=True)
    account = pop.delegators[0].public_hex
    q = measure_queries(root, epoch=b.epochs // 2, account=account)
    print("[5/5] memory of a fresh process …", flush=True)
    mem = measure_memory(root)
    print(
        f"  as of epoch {q.as_of_epoch}: balance of {account[:12]}… {q.balance_rao:,} rao; "
        f"supply {q.supply}\n  this process's peak RSS "
        f"{mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}"
    )
    return [
        Figure(
            f"scale: rows in the ledger ({len(ledger.records())} batches)",
            f"{b.rows:,}",
            f"{ENTRIES_ISSUE:,}",
        ),
        *append_figures(b, args.batch_size),
        *signature_figures(sig),
        *verify_figures(ver),
        *query_figures(q),
        *memory_figures(mem),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
