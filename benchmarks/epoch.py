"""Benchmark: one full epoch (256 miners, 64 hosted validators) through the real stack.

Usage::

    python benchmarks/epoch.py [--miners 256] [--validators 64] [--workers 2] [--repeat 3]
                               [--keep] [--profile]

What it does, all in a temporary home (removed afterwards unless ``--keep``):

1. Genesis: ``--miners`` tiny MLPs on ``digits`` (random initialisation, hidden sizes cycling
   through ``ARCHITECTURES`` so that batching has same-architecture groups to stack), stored in the
   real content-addressed artifact store, and one signed genesis batch (mints, subnet, 320
   registrations, validator stakes, submission commits) committed to the real ledger.  Keys are
   derived in memory from fixed seeds and sign directly (no wallet files: scrypt for 320 wallets
   would dominate the set-up).
2. Services: a Prefect server (``python -m prefect server start`` with ``PREFECT_HOME`` in the
   temporary home, waited for on ``/api/health``; ``PREFECT_API_URL`` points at it) and one Dask
   ``LocalCluster`` (``--workers`` processes, one thread each, 127.0.0.1).
3. One warm-up epoch (imports, database migrations, MLflow experiment), then one timed epoch
   (``flows.epoch.epoch_flow``): wall time, each stage's own compute time (measured inside the
   Prefect tasks, ``EpochResult.stage_compute_s``) and the orchestration overhead share
   ``1 - sum(stage compute) / wall``, with PASS/FAIL against the targets (wall < 15 s on 2 cores,
   overhead <= 25 %).
4. Evaluation only, same 256 models, same epoch sample, same cluster, best of ``--repeat``:
   batched fan-out (``tasks.evaluate.fanout.evaluate_all``: a few same-architecture chunk tasks)
   vs one model per Dask task (``evaluate_job`` via ``client.map``, the previous fan-out), and
   the same pair in-process without Dask (``evaluate_group`` vs an ``evaluate_job`` loop), as
   ratios; the results must be identical.
5. Stops the cluster and the server (the server's own process group, by its id).

``--profile`` runs a third epoch under cProfile in this process (the Dask workers' own time is
not visible there) and prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from taoflow.settings import Settings  # noqa: E402  (sets no environment by itself)

SUBNET: Final = "digits"
ARCHITECTURES: Final = ((16,), (32,), (64,), (32, 16))
MINERS_DEFAULT: Final = 256
VALIDATORS_DEFAULT: Final = 64
DASK_WORKERS_DEFAULT: Final = 2
TARGET_WALL_S: Final = 15.0
TARGET_OVERHEAD_SHARE: Final = 0.25
SERVER_START_TIMEOUT_S: Final = 120.0
SERVER_STOP_TIMEOUT_S: Final = 15.0
EVAL_TIMEOUT_S: Final = 120.0
PREFECT_SERVER_COMMAND: Final = (sys.executable, "-m", "prefect", "server", "start")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Participant:
    name: str
    role: str  # "owner" | "validator" | "miner"
    balance_tao: int
    stake_tao: int = 0
    hidden_sizes: tuple[int, ...] = ()


def participants(*, miners: int, validators: int) -> list[Participant]:
    people = [Participant("owner", "owner", 1_000)]
    for index in range(validators):
        stake_tao = 1_000 + 97 * index  # distinct stakes
        people.append(Participant(f"validator-{index}", "validator", stake_tao + 10, stake_tao))
    for index in range(miners):
        hidden = ARCHITECTURES[index % len(ARCHITECTURES)]
        people.append(Participant(f"miner-{index}", "miner", 5, hidden_sizes=hidden))
    return people


def _keypair(label: str) -> Any:
    from taoflow.ledger.keys import Keypair

    return Keypair.from_private_bytes(hashlib.sha256(f"taoflow-bench/{label}".encode()).digest())


def genesis(settings: Settings, *, miners: int, validators: int) -> int:
    """Store the miners' artifacts and commit the signed genesis batch; returns its tx count."""
    import torch

    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.ledger.config import SubnetConfig
    from taoflow.ledger.registration import RegistrationPolicy
    from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json
    from taoflow.ledger.store import Ledger
    from taoflow.ledger.submissions import submission_binding
    from taoflow.network import LOCK_COST_RAO, DemoKeys, _Signer, subnet_config
    from taoflow.tasks import artifact_store
    from taoflow.tasks.models import ModelConfig, build_model, submission_bytes

    people = participants(miners=miners, validators=validators)
    keys = {
        p.name: DemoKeys(coldkey=_keypair(f"{p.name}/cold"), hotkey=_keypair(f"{p.name}/hot"))
        for p in people
    }
    cold = {name: k.coldkey.public_hex for name, k in keys.items()}
    hot = {name: k.hotkey.public_hex for name, k in keys.items()}
    eval_set = load_evaluation_set(SUBNET)
    config = subnet_config(
        eval_set,
        uids_max=miners + validators,
        registration_cost_increase_ppm=0,  # flat cost: every participant's balance suffices
    )
    signer = _Signer(keys, network_id="")  # no network entry: a benchmark ledger
    txs: list[Tx] = [
        Tx(
            f"genesis/mint/{p.name}",
            Kind.GENESIS_MINT,
            coldkey=cold[p.name],
            amount_rao=p.balance_tao * RAO_PER_TAO,
        )
        for p in people
    ]
    txs.append(
        signer(
            Tx(
                f"genesis/subnet/{SUBNET}",
                Kind.SUBNET_CREATE,
                subnet=SUBNET,
                coldkey=cold["owner"],
                hotkey=hot["owner"],
                amount_rao=LOCK_COST_RAO,
                payload=canonical_json(config),
            )
        )
    )
    cost_rao = RegistrationPolicy.from_config(SubnetConfig.from_payload(config)).initial_cost_rao
    for p in people:
        if p.role == "owner":
            continue
        txs.append(
            signer(
                Tx(
                    f"genesis/register/{SUBNET}/{p.name}",
                    Kind.REGISTER,
                    subnet=SUBNET,
                    coldkey=cold[p.name],
                    hotkey=hot[p.name],
                    amount_rao=cost_rao,
                    payload=canonical_json({"role": p.role}),
                )
            )
        )
    for p in people:
        if p.stake_tao:
            txs.append(
                signer(
                    Tx(
                        f"genesis/stake/{p.name}",
                        Kind.ADD_STAKE,
                        coldkey=cold[p.name],
                        hotkey=hot[p.name],
                        amount_rao=p.stake_tao * RAO_PER_TAO,
                    )
                )
            )
    for index, p in enumerate(person for person in people if person.role == "miner"):
        torch.manual_seed(index)
        model_config = ModelConfig("mlp", eval_set.input_dim, p.hidden_sizes, eval_set.num_classes)
        model_bytes, config_bytes = submission_bytes(build_model(model_config), model_config)
        stored = artifact_store.store(
            settings.artifacts_dir, model_bytes=model_bytes, config_bytes=config_bytes
        )
        payload = {
            "digest": stored.digest,
            "uri": stored.uri,
            "binding": submission_binding(digest=stored.digest, hotkey=hot[p.name]),
        }
        txs.append(
            signer(
                Tx(
                    f"genesis/submit/{SUBNET}/{p.name}",
                    Kind.SUBMISSION_COMMIT,
                    subnet=SUBNET,
                    coldkey=cold[p.name],
                    hotkey=hot[p.name],
                    payload=canonical_json(payload),
                )
            )
        )
    Ledger.open(settings.ledger_dir).commit(txs)
    return len(txs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def prefect_server(settings: Settings) -> Iterator[str]:
    """A Prefect server for ``settings``' home; yields its API URL; stops it afterwards."""
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log_path = settings.home / "prefect-server.log"
    env = {**os.environ, "PREFECT_HOME": str(settings.prefect_home)}
    env.pop("PREFECT_API_URL", None)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                *PREFECT_SERVER_COMMAND,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--analytics-off",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped below by that group's id
        )
    try:
        deadline_s = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"Prefect server exited; see {log_path}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{api_url}/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline_s:
                raise RuntimeError(f"Prefect server not healthy after {SERVER_START_TIMEOUT_S} s")
            time.sleep(0.5)
        yield api_url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def best_of(repeat: int, run: Callable[[], _T]) -> tuple[float, _T]:
    """Minimum wall seconds over ``repeat`` runs, and the last run's value."""
    times_s: list[float] = []
    value: Any = None
    for _ in range(repeat):
        started_s = time.perf_counter()
        value = run()
        times_s.append(time.perf_counter() - started_s)
    return min(times_s), value


def compare_evaluation(settings: Settings, *, client: Any, repeat: int) -> list[str]:
    """Batched vs one-model-at-a-time evaluation of the network's models; report lines."""
    import numpy as np
    import torch

    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.ledger.store import Ledger
    from taoflow.tasks.evaluate.batched import evaluate_group
    from taoflow.tasks.evaluate.fanout import evaluate_all
    from taoflow.tasks.evaluate.runner import EvalResult, evaluate_job
    from taoflow.tasks.evaluate.stage import family_limits, plan_jobs, validator_positions
    from taoflow.tasks.gather import gather_context

    ledger = Ledger.open(settings.ledger_dir)
    ctx = gather_context(ledger, subnet=SUBNET)
    eval_set = load_evaluation_set(SUBNET)
    all_features, all_labels = eval_set.arrays("test")
    epoch_rows, positions = validator_positions(ctx, population=len(all_labels))
    features, labels = all_features[epoch_rows], all_labels[epoch_rows]
    limits = family_limits(ctx.config, eval_set=eval_set)
    jobs, _ = plan_jobs(ctx, artifacts_root=settings.artifacts_dir)

    def batched_dask() -> list[EvalResult]:
        return evaluate_all(
            client, jobs, features=features, labels=labels, limits=limits, timeout_s=EVAL_TIMEOUT_S
        )

    def one_per_task_dask() -> list[EvalResult]:
        scattered = client.scatter([features, labels], broadcast=True, hash=False)
        try:
            futures = client.map(
                evaluate_job,
                jobs,
                features=scattered[0],
                labels=scattered[1],
                limits=limits,
                pure=False,
            )
            results: list[EvalResult] = client.gather(futures)
            return sorted(results, key=lambda result: result.uid)
        finally:
            client.cancel(scattered)

    def batched_local() -> list[EvalResult]:
        return evaluate_group(jobs, features=features, labels=labels, limits=limits)

    def one_at_a_time_local() -> list[EvalResult]:
        return [evaluate_job(j, features=features, labels=labels, limits=limits) for j in jobs]

    batched_s, batched = best_of(repeat, batched_dask)
    single_s, single = best_of(repeat, one_per_task_dask)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like a Dask worker process (its nanny pins one thread)
    try:
        local_batched_s, local_batched = best_of(repeat, batched_local)
        local_single_s, local_single = best_of(repeat, one_at_a_time_local)
    finally:
        torch.set_num_threads(threads)
    identical = batched == single == sorted(local_batched, key=lambda r: r.uid) == local_single
    n_models, n_validators = len(jobs), len(positions)
    mean_accuracy = float(np.mean([r.score for r in batched])) if batched else 0.0
    return [
        f"evaluation of {n_models} models on the epoch sample ({len(labels)} rows), "
        f"best of {repeat}:",
        f"  Dask, batched chunks (evaluate_all)      {batched_s * 1e3:8.1f} ms",
        f"  Dask, one model per task (client.map)    {single_s * 1e3:8.1f} ms",
        f"  speed-up batched vs one-at-a-time (Dask) {single_s / batched_s:8.2f} x",
        f"  in-process (1 thread), evaluate_group    {local_batched_s * 1e3:8.1f} ms",
        f"  in-process (1 thread), evaluate_job loop {local_single_s * 1e3:8.1f} ms",
        f"  speed-up batched vs one-at-a-time (1 cpu){local_single_s / local_batched_s:8.2f} x",
        f"  previous stage design (one evaluation per validator x model) ~ {n_validators} x "
        f"one-at-a-time ~ {n_validators * single_s:.1f} s (extrapolated, not run)",
        f"  identical results across all four paths: {'yes' if identical else 'NO'}; "
        f"mean accuracy {mean_accuracy:.3f}",
    ]


def cost_breakdown(settings: Settings, *, client: Any) -> list[str]:
    """Two suspected costs, measured on this network's next epoch inputs (report lines).

    * Prefect walks every task's parameters (``visit_collection``: once to record task inputs,
      once to resolve futures) -- the flow passes ``ctx`` to 5 tasks, the evaluation outcome to 2
      and the consensus outcome to 1;
    * ``Ledger.open`` + ``state()`` replays every committed batch (``gather`` and ``emit``).
    """
    from prefect.utilities.collections import visit_collection

    from taoflow.ledger.store import Ledger
    from taoflow.tasks import shells
    from taoflow.tasks.evaluate.stage import evaluate_epoch
    from taoflow.tasks.gather import gather_context

    started_s = time.perf_counter()
    ledger = Ledger.open(settings.ledger_dir)
    ledger.state()
    replay_s = time.perf_counter() - started_s
    ctx = gather_context(ledger, subnet=SUBNET)
    evaluation = evaluate_epoch(ctx, client=client, artifacts_root=settings.artifacts_dir)
    outcome = shells.consensus.fn(ctx, evaluation)

    def walk(value: object) -> tuple[int, float]:
        """Nodes Prefect visits in ``value`` and the best of 3 walk times."""
        nodes = [0]

        def count(_: object) -> None:
            nodes[0] += 1

        seconds, _ = best_of(3, lambda: visit_collection(value, count))
        return nodes[0] // 3, seconds

    lines = ["cost breakdown on the next epoch's inputs:"]
    per_epoch_s = 0.0
    for name, value, tasks in (
        ("ctx (EpochContext)", ctx, 5),
        ("evaluation (EvaluationOutcome)", evaluation, 2),
        ("consensus (ConsensusOutcome)", outcome, 1),
    ):
        nodes, seconds = walk(value)
        per_epoch_s += 2 * tasks * seconds
        lines.append(
            f"  Prefect parameter walk of {name:<32} {nodes:7d} nodes {seconds * 1e3:7.1f} ms"
            f" x {tasks} task(s) x 2"
        )
    lines.append(
        f"  => ~{per_epoch_s:.2f} s per epoch walking task parameters (estimate: one counting "
        "walk per traversal, ~2 traversals per task)"
    )
    lines.append(
        f"  Ledger.open + state() replay of {len(ledger.records())} batches: {replay_s:.3f} s "
        "(done by gather and again by emit)"
    )
    return lines


def epoch_report(result: Any, wall_s: float) -> list[str]:
    compute_s = dict(result.stage_compute_s)
    total_s = sum(compute_s.values())
    overhead = 1.0 - total_s / wall_s
    wall_ok, overhead_ok = wall_s < TARGET_WALL_S, overhead <= TARGET_OVERHEAD_SHARE
    lines = [f"timed epoch {result.epoch}: wall {wall_s:.2f} s"]
    lines += [
        f"  {stage:<10} {seconds:7.3f} s  {seconds / wall_s:6.1%}"
        for stage, seconds in compute_s.items()
    ]
    lines += [
        f"  {'stages':<10} {total_s:7.3f} s  {total_s / wall_s:6.1%}",
        f"  overhead share 1 - stages/wall = {overhead:.1%}",
        f"  target wall < {TARGET_WALL_S:g} s: {'PASS' if wall_ok else 'FAIL'}",
        f"  target overhead <= {TARGET_OVERHEAD_SHARE:.0%}: {'PASS' if overhead_ok else 'FAIL'}",
    ]
    if result.mlflow_error:
        lines.append(f"  MLflow error: {result.mlflow_error}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--miners", type=int, default=MINERS_DEFAULT)
    parser.add_argument("--validators", type=int, default=VALIDATORS_DEFAULT)
    parser.add_argument("--workers", type=int, default=DASK_WORKERS_DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument("--profile", action="store_true", help="cProfile a third epoch")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="taoflow-bench-"))
    settings = Settings.load(home)
    settings.apply_environment()
    print(f"home {home}; {os.cpu_count()} cores; python {sys.version.split()[0]}")
    try:
        started_s = time.perf_counter()
        n_txs = genesis(settings, miners=args.miners, validators=args.validators)
        print(
            f"genesis: {args.miners} miners, {args.validators} validators, {n_txs} transactions "
            f"({time.perf_counter() - started_s:.1f} s)"
        )
        started_s = time.perf_counter()
        with prefect_server(settings) as api_url:
            os.environ["PREFECT_API_URL"] = api_url
            print(f"Prefect server {api_url} ({time.perf_counter() - started_s:.1f} s to healthy)")
            import distributed

            from taoflow.flows.epoch import epoch_flow

            with (
                distributed.LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                ) as cluster,
                distributed.Client(cluster) as client,
            ):

                def one_epoch() -> Any:
                    return epoch_flow(
                        subnet=SUBNET, home=str(home), dask_address=cluster.scheduler_address
                    )

                warm_s, warm = best_of(1, one_epoch)
                print(f"warm-up epoch {warm.epoch}: wall {warm_s:.2f} s")
                wall_s, result = best_of(1, one_epoch)
                for line in epoch_report(result, wall_s):
                    print(line)
                for line in compare_evaluation(settings, client=client, repeat=args.repeat):
                    print(line)
                for line in cost_breakdown(settings, client=client):
                    print(line)
                if args.profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    one_epoch()
                    profiler.disable()
                    stream = io.StringIO()
                    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(45)
                    print(stream.getvalue())
        print("Dask cluster and Prefect server stopped")
    finally:
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
