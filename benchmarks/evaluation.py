"""Benchmark: evaluating 256 same-architecture models on the epoch sample (CPU + Dask).

Usage::

    python benchmarks/evaluation.py [--models 256] [--repeat 3] [--skip-dask]

Everything is measured in the same run, in a temporary artifact store (removed afterwards):

* 256 random MLPs of one architecture (64-256-256-10, ``torch.manual_seed(index)``) stored as
  real artifacts (:func:`tasks.artifact_store.store` of :func:`tasks.models.submission_bytes`);
* the sample is all 1,797 rows of ``digits``: the train and test splits of
  ``evaluation_sets.load_evaluation_set("digits")`` concatenated;
* in-process timings use ONE torch thread, like a Dask worker (its nanny pins BLAS to one
  thread); every number is the best of ``--repeat`` after one warm-up:

  (a) a plain per-model PyTorch loop on preloaded models (``model(x).argmax(1)``);
  (b) the product's batched pass (``tasks.evaluate.batched``): pure compute on preloaded models
      (the private ``_evaluate_stack`` per stack of ``GROUP_MODELS_MAX``, exactly what
      ``evaluate_group`` runs after loading) and ``evaluate_group`` end to end (with loading);
      the loading alone (``load_job`` for every job) is reported too;
  (c) the CPU's matmul ceiling: the best GFLOP/s of a large square ``torch.matmul`` with the
      same thread count, and the achieved GFLOP/s of (a) and (b) as a share of it;
  (d) ``tasks.evaluate.fanout.evaluate_all`` on a Dask ``LocalCluster`` with 1 and with 2
      workers (processes, one thread each, 127.0.0.1): efficiency ``t1 / (2 * t2)``.

Targets (PASS/FAIL): the batched pure compute is never slower than the loop on CPU (the
comparison uses a 5 % noise allowance, printed), and the Dask efficiency is >= 80 %.  The script
prints the CPU strategy the measurements support; it changes no product code.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SUBNET: Final = "digits"
HIDDEN_SIZES: Final = (256, 256)
MODELS_DEFAULT: Final = 256
REPEAT_DEFAULT: Final = 3
EVAL_TIMEOUT_S: Final = 300.0
MATMUL_SIZE: Final = 1024
TARGET_DASK_EFFICIENCY: Final = 0.80
NOISE_ALLOWANCE: Final = 0.05
"""Batched counts as "not slower" while ``batched <= loop * (1 + NOISE_ALLOWANCE)``."""
_T = TypeVar("_T")


def best_of(repeat: int, run: Callable[[], _T], *, warmup: int = 1) -> tuple[float, _T]:
    """Minimum wall seconds over ``repeat`` runs after ``warmup`` untimed ones; last value."""
    value: Any = None
    for _ in range(warmup):
        value = run()
    times_s: list[float] = []
    for _ in range(repeat):
        started_s = time.perf_counter()
        value = run()
        times_s.append(time.perf_counter() - started_s)
    return min(times_s), value


def mlp_flops(*, input_dim: int, hidden: tuple[int, ...], classes: int, rows: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of one MLP forward pass over ``rows`` rows."""
    dims = (input_dim, *hidden, classes)
    return 2 * rows * sum(a * b for a, b in itertools.pairwise(dims))


def matmul_ceiling_gflops(*, size: int = MATMUL_SIZE, repeat: int = 5) -> float:
    """Best GFLOP/s of a ``size`` x ``size`` float32 ``torch.matmul`` (current thread count)."""
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(size, size, generator=generator)
    right = torch.randn(size, size, generator=generator)
    seconds, _ = best_of(repeat, lambda: torch.matmul(left, right))
    return 2 * size**3 / seconds / 1e9


def store_models(root: Path, *, count: int, input_dim: int, num_classes: int) -> list[Any]:
    """``count`` random MLPs (one architecture) in a real artifact store; their EvalJobs."""
    from taoflow.tasks import artifact_store
    from taoflow.tasks.evaluate.runner import EvalJob
    from taoflow.tasks.models import ModelConfig, build_model, submission_bytes

    config = ModelConfig("mlp", input_dim, HIDDEN_SIZES, num_classes)
    jobs = []
    for index in range(count):
        torch.manual_seed(index)
        model_bytes, config_bytes = submission_bytes(build_model(config), config)
        stored = artifact_store.store(root, model_bytes=model_bytes, config_bytes=config_bytes)
        jobs.append(
            EvalJob(
                uid=index, model_path=str(stored.model_path), config_path=str(stored.config_path)
            )
        )
    return jobs


def dask_time(
    jobs: list[Any],
    *,
    workers: int,
    features: np.ndarray,
    labels: np.ndarray,
    limits: Any,
    repeat: int,
) -> tuple[float, list[Any]]:
    """Best ``evaluate_all`` wall time on a fresh ``LocalCluster`` of ``workers`` processes."""
    import distributed

    from taoflow.tasks.evaluate.fanout import evaluate_all

    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        return best_of(
            repeat,
            lambda: evaluate_all(
                client,
                jobs,
                features=features,
                labels=labels,
                limits=limits,
                timeout_s=EVAL_TIMEOUT_S,
            ),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=MODELS_DEFAULT)
    parser.add_argument("--repeat", type=int, default=REPEAT_DEFAULT)
    parser.add_argument("--skip-dask", action="store_true", help="in-process timings only")
    args = parser.parse_args(argv)

    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.tasks.evaluate.batched import GROUP_MODELS_MAX, _evaluate_stack, evaluate_group
    from taoflow.tasks.evaluate.runner import EvalResult, LoadedModel, full_precision, load_job
    from taoflow.tasks.models import FamilyLimits

    eval_set = load_evaluation_set(SUBNET)
    train_x, train_y = eval_set.arrays("train")
    test_x, test_y = eval_set.arrays("test")
    features = np.ascontiguousarray(np.concatenate([train_x, test_x]), dtype=np.float32)
    labels = np.ascontiguousarray(np.concatenate([train_y, test_y]))
    rows, input_dim, classes = features.shape[0], eval_set.input_dim, eval_set.num_classes
    limits = FamilyLimits(
        params_max=1_000_000,
        bytes_max=4 * 1024 * 1024,
        layers_max=len(HIDDEN_SIZES) + 1,
        input_dim=input_dim,
        num_classes=classes,
    )
    flops_per_model = mlp_flops(
        input_dim=input_dim, hidden=HIDDEN_SIZES, classes=classes, rows=rows
    )
    total_gflop = flops_per_model * args.models / 1e9
    arch = "-".join(str(d) for d in (input_dim, *HIDDEN_SIZES, classes))
    print(
        f"{os.cpu_count()} cores; python {sys.version.split()[0]}; torch {torch.__version__}; "
        f"{args.models} MLPs {arch} on {rows} rows ({SUBNET} train+test); "
        f"{total_gflop:.1f} GFLOP per pass; best of {args.repeat} after 1 warm-up"
    )

    root = Path(tempfile.mkdtemp(prefix="taoflow-evalbench-"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like a Dask worker process
    try:
        started_s = time.perf_counter()
        jobs = store_models(root, count=args.models, input_dim=input_dim, num_classes=classes)
        print(f"stored {len(jobs)} artifacts in {time.perf_counter() - started_s:.1f} s")

        def load_all() -> list[LoadedModel]:
            loaded: list[LoadedModel] = []
            for job in jobs:
                one = load_job(job, feature_dtype=features.dtype, limits=limits, n_samples=rows)
                if isinstance(one, EvalResult):
                    raise RuntimeError(f"uid {job.uid} failed to load: {one.error}")
                loaded.append(one)
            return loaded

        load_s, loaded = best_of(args.repeat, load_all)
        models = [one.model.eval() for one in loaded]
        inputs = torch.from_numpy(features)

        def plain_loop() -> list[float]:
            scores: list[float] = []
            with torch.inference_mode():
                target = torch.from_numpy(labels)
                for model in models:
                    predictions = model(inputs).argmax(dim=1)
                    scores.append(float((predictions == target).sum()) / rows)
            return scores

        def batched_compute() -> list[EvalResult]:
            results: list[EvalResult] = []
            with full_precision(torch.device("cpu")):
                for start in range(0, len(loaded), GROUP_MODELS_MAX):
                    results += _evaluate_stack(
                        loaded[start : start + GROUP_MODELS_MAX],
                        features=features,
                        labels=labels,
                        limits=limits,
                        batch_size=1024,
                        device=torch.device("cpu"),
                    )
            return results

        def batched_with_loading() -> list[EvalResult]:
            return evaluate_group(jobs, features=features, labels=labels, limits=limits)

        ceiling = matmul_ceiling_gflops()
        loop_s, loop_scores = best_of(args.repeat, plain_loop)
        batch_s, batch_results = best_of(args.repeat, batched_compute)
        group_s, group_results = best_of(args.repeat, batched_with_loading)
    finally:
        torch.set_num_threads(threads)

    identical = [r.score for r in batch_results] == [
        r.score for r in group_results
    ] == loop_scores and batch_results == group_results
    loop_gflops, batch_gflops = total_gflop / loop_s, total_gflop / batch_s
    batched_ok = batch_s <= loop_s * (1 + NOISE_ALLOWANCE)
    lines = [
        "",
        "in-process, 1 torch thread                          time      GFLOP/s  of ceiling",
        f"  (c) matmul ceiling {MATMUL_SIZE}x{MATMUL_SIZE} fp32"
        f"                          {ceiling:8.1f}      100.0%",
        f"  (a) plain loop, preloaded (forward+argmax)  {loop_s * 1e3:8.1f} ms "
        f"{loop_gflops:8.1f}  {loop_gflops / ceiling:9.1%}",
        f"  (b) batched, preloaded (_evaluate_stack)    {batch_s * 1e3:8.1f} ms "
        f"{batch_gflops:8.1f}  {batch_gflops / ceiling:9.1%}",
        f"  (b) evaluate_group, with loading            {group_s * 1e3:8.1f} ms "
        f"{total_gflop / group_s:8.1f}  {total_gflop / group_s / ceiling:9.1%}",
        f"      loading alone (load_job x {len(jobs)})          {load_s * 1e3:8.1f} ms",
        f"      plain loop + loading (sum)              {(loop_s + load_s) * 1e3:8.1f} ms",
        f"  ratio loop / batched (compute)     {loop_s / batch_s:6.2f} x",
        f"  ratio loop+load / evaluate_group   {(loop_s + load_s) / group_s:6.2f} x",
        f"  identical scores loop / batched / evaluate_group: {'yes' if identical else 'NO'}; "
        f"mean accuracy {float(np.mean(loop_scores)):.3f}",
    ]
    for line in lines:
        print(line)

    verdicts = [
        (
            f"batched never slower than the loop on CPU (<= loop x {1 + NOISE_ALLOWANCE:.2f})",
            batched_ok,
        )
    ]
    if not args.skip_dask:
        t1, r1 = dask_time(
            jobs, workers=1, features=features, labels=labels, limits=limits, repeat=args.repeat
        )
        t2, r2 = dask_time(
            jobs, workers=2, features=features, labels=labels, limits=limits, repeat=args.repeat
        )
        efficiency = t1 / (2 * t2)
        same = r1 == r2 and [r.score for r in r1] == loop_scores
        for line in (
            "",
            "Dask evaluate_all (LocalCluster, processes, 1 thread/worker, 127.0.0.1)",
            f"  1 worker   {t1 * 1e3:8.1f} ms",
            f"  2 workers  {t2 * 1e3:8.1f} ms   speed-up {t1 / t2:5.2f} x",
            f"  scaling efficiency t1 / (2 t2) = {efficiency:.1%}",
            f"  identical results 1 vs 2 workers (and vs the loop): {'yes' if same else 'NO'}",
        ):
            print(line)
        verdicts.append(
            (
                f"Dask efficiency >= {TARGET_DASK_EFFICIENCY:.0%}",
                efficiency >= TARGET_DASK_EFFICIENCY,
            )
        )
    shutil.rmtree(root, ignore_errors=True)

    print("")
    print("targets")
    for name, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print("")
    if batched_ok:
        print(
            f"CPU strategy: batched (vmapped stacks) -- {loop_s / batch_s:.2f} x the loop's "
            f"speed, {batch_gflops / ceiling:.0%} of the measured matmul ceiling."
        )
    else:
        print(
            f"CPU strategy: per-model loop -- batched is {batch_s / loop_s:.2f} x slower than "
            "the loop on this CPU; recommendation: the runner should pick the per-model loop "
            "on CPU and keep batching for GPUs (no product code changed here)."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
