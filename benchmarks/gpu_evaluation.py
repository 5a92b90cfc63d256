"""GPU benchmark: 256 MLPs (64-256-256-10) on 1,797 rows -- per-model loop vs batched fp32/bf16.

Usage::

    python benchmarks/gpu_evaluation.py [--models 256] [--rows 1797] [--repeat 20]

Imports only torch, numpy and the standard library (never prefect, dask, duckdb or mlflow), so it
runs on a bare GPU box.  Without CUDA it prints that it needs a GPU and exits 0.

What it measures on ``cuda`` (CUDA events, best of ``--repeat`` after warm-up, TF32 off):

(a) a plain per-model loop: ``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)`` per model,
    forward + argmax (launch-bound: ~5 kernels per model);
(b) batched fp32: the weights stacked to ``[models, fan_in, fan_out]`` and one ``torch.baddbmm``
    per layer over the shared (broadcast) inputs, then argmax;
(c) batched bf16: the same with bf16 weights/inputs (fp32 logits for the argmax).

Checks and reports: per-model accuracy of (b) equals (a); whether the ranking of models by
accuracy (ties broken by model index) under bf16 equals fp32's, and how many (model, row)
predictions differ; the card's ceilings (a large fp32 and bf16 ``matmul`` in TFLOP/s and a
device-to-device copy in GB/s); achieved FLOP/s and bandwidth of each path as a share of those
ceilings; the speed-up vs the loop (target >= 15x for bf16) and the memory-bandwidth floor
(bytes of weights + inputs + activations written and read once / measured copy bandwidth;
target: bf16 within 2x of it).  Inputs are ``randn`` and labels ``randint`` from fixed seeds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from typing import Final

import numpy as np
import torch
from torch import nn

INPUT_DIM: Final = 64
HIDDEN_SIZES: Final = (256, 256)
NUM_CLASSES: Final = 10
MODELS_DEFAULT: Final = 256
ROWS_DEFAULT: Final = 1797
REPEAT_DEFAULT: Final = 20
CEILING_SIZE: Final = 8192
COPY_BYTES: Final = 1 << 30
TARGET_SPEEDUP: Final = 15.0
TARGET_FLOOR_FACTOR: Final = 2.0

Stacked = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer: weights ``[models, fan_in, fan_out]`` and biases ``[models, 1, fan_out]``."""


def cuda_time_s(run: Callable[[], object], *, repeat: int, warmup: int = 3) -> float:
    """Best seconds of ``run`` on the current CUDA stream (CUDA events)."""
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    best_s = float("inf")
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        stop.record()
        stop.synchronize()
        best_s = min(best_s, start.elapsed_time(stop) / 1e3)
    return best_s


def dims() -> tuple[int, ...]:
    return (INPUT_DIM, *HIDDEN_SIZES, NUM_CLASSES)


def build_models(count: int, device: torch.device) -> list[nn.Sequential]:
    """``count`` MLPs with PyTorch's default initialisation, seeded by index."""
    models: list[nn.Sequential] = []
    sizes = dims()
    for index in range(count):
        torch.manual_seed(index)
        layers: list[nn.Module] = []
        for position, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(fan_in, fan_out))
            if position < len(sizes) - 2:
                layers.append(nn.ReLU())
        models.append(nn.Sequential(*layers).to(device).eval())
    return models


def stack_weights(models: list[nn.Sequential], dtype: torch.dtype) -> Stacked:
    linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
    stacked: Stacked = []
    for layer in range(len(linears[0])):
        weight = torch.stack([ls[layer].weight.detach().t() for ls in linears]).contiguous()
        bias = torch.stack([ls[layer].bias.detach() for ls in linears]).unsqueeze(1)
        stacked.append((weight.to(dtype), bias.to(dtype).contiguous()))
    return stacked


def batched_logits(stacked: Stacked, inputs: torch.Tensor) -> torch.Tensor:
    """Logits ``[models, rows, classes]``: one ``baddbmm`` per layer, inputs broadcast."""
    models = stacked[0][0].shape[0]
    hidden = inputs.unsqueeze(0).expand(models, -1, -1)
    for index, (weight, bias) in enumerate(stacked):
        hidden = torch.baddbmm(bias, hidden, weight)
        if index < len(stacked) - 1:
            hidden = torch.relu_(hidden)
    return hidden


def measure_ceilings(device: torch.device) -> tuple[float, float, float]:
    """This card's fp32 and bf16 matmul FLOP/s and device-to-device copy bytes/s."""
    a32 = torch.randn(CEILING_SIZE, CEILING_SIZE, device=device)
    b32 = torch.randn(CEILING_SIZE, CEILING_SIZE, device=device)
    a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
    matmul_flop = 2 * CEILING_SIZE**3
    fp32_peak = matmul_flop / cuda_time_s(lambda: a32 @ b32, repeat=10)
    bf16_peak = matmul_flop / cuda_time_s(lambda: a16 @ b16, repeat=10)
    source = torch.empty(COPY_BYTES, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    copy_bw = 2 * COPY_BYTES / cuda_time_s(lambda: target.copy_(source), repeat=10)
    return fp32_peak, bf16_peak, copy_bw


def ranking(accuracy: np.ndarray) -> np.ndarray:
    """Model indices by descending accuracy, ties by ascending index."""
    return np.lexsort((np.arange(accuracy.shape[0]), -accuracy))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=MODELS_DEFAULT)
    parser.add_argument("--rows", type=int, default=ROWS_DEFAULT)
    parser.add_argument("--repeat", type=int, default=REPEAT_DEFAULT)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_evaluation: needs a CUDA GPU; none available here -- skipped")
        return 0

    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(
        f"{torch.cuda.get_device_name(device)}; torch {torch.__version__}; python "
        f"{sys.version.split()[0]}; {args.models} MLPs {'-'.join(map(str, dims()))} on "
        f"{args.rows} rows; best of {args.repeat}"
    )
    generator = torch.Generator().manual_seed(1234)
    inputs = torch.randn(args.rows, INPUT_DIM, generator=generator).to(device)
    labels = torch.randint(0, NUM_CLASSES, (args.rows,), generator=generator).to(device)
    models = build_models(args.models, device)
    fp32 = stack_weights(models, torch.float32)
    bf16 = stack_weights(models, torch.bfloat16)
    inputs_bf16 = inputs.to(torch.bfloat16)

    def loop() -> torch.Tensor:
        return torch.stack([model(inputs).argmax(dim=1) for model in models])

    def batched_fp32() -> torch.Tensor:
        return batched_logits(fp32, inputs).argmax(dim=2)

    def batched_bf16() -> torch.Tensor:
        return batched_logits(bf16, inputs_bf16).float().argmax(dim=2)

    fp32_peak, bf16_peak, copy_bw = measure_ceilings(device)

    with torch.inference_mode():
        loop_s = cuda_time_s(loop, repeat=args.repeat)
        fp32_s = cuda_time_s(batched_fp32, repeat=args.repeat)
        bf16_s = cuda_time_s(batched_bf16, repeat=args.repeat)
        loop_pred, fp32_pred, bf16_pred = loop(), batched_fp32(), batched_bf16()

    def accuracy(predictions: torch.Tensor) -> np.ndarray:
        correct = (predictions == labels.unsqueeze(0)).sum(dim=1)
        return np.asarray(correct.cpu().numpy(), dtype=np.int64)

    acc_loop, acc_fp32, acc_bf16 = accuracy(loop_pred), accuracy(fp32_pred), accuracy(bf16_pred)
    fp32_matches_loop = bool(np.array_equal(acc_loop, acc_fp32))
    rank_equal = bool(np.array_equal(ranking(acc_fp32), ranking(acc_bf16)))
    flipped = int((fp32_pred != bf16_pred).sum())
    scores_equal = bool(np.array_equal(acc_fp32, acc_bf16))

    sizes = dims()
    macs = sum(a * b for a, b in itertools.pairwise(sizes))
    flop = 2 * args.models * args.rows * macs
    params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    activations = args.models * args.rows * sum(sizes[1:])

    def traffic(element_bytes: int) -> int:
        """Weights + inputs read once, activations written once and read once."""
        return element_bytes * (args.models * params + args.rows * INPUT_DIM + 2 * activations)

    print("")
    print(
        f"ceilings: fp32 matmul {fp32_peak / 1e12:.1f} TFLOP/s, bf16 matmul "
        f"{bf16_peak / 1e12:.1f} TFLOP/s, device copy {copy_bw / 1e9:.0f} GB/s"
    )
    print("path            time     vs loop   TFLOP/s  of peak    GB/s  of copy  floor  x floor")
    rows_out = (
        ("per-model loop", loop_s, 4, fp32_peak),
        ("batched fp32", fp32_s, 4, fp32_peak),
        ("batched bf16", bf16_s, 2, bf16_peak),
    )
    for name, seconds, element_bytes, peak in rows_out:
        moved = traffic(element_bytes)
        floor_s = moved / copy_bw
        print(
            f"{name:<14} {seconds * 1e3:7.3f} ms {loop_s / seconds:7.1f} x "
            f"{flop / seconds / 1e12:8.2f} {flop / seconds / peak:8.1%} "
            f"{moved / seconds / 1e9:7.0f} {moved / seconds / copy_bw:8.1%} "
            f"{floor_s * 1e3:5.3f} ms {seconds / floor_s:6.1f} x"
        )
    bf16_floor_s = traffic(2) / copy_bw
    print("")
    print(
        f"fp32 batched accuracies equal the loop's: {'yes' if fp32_matches_loop else 'NO'}; "
        f"bf16 vs fp32: {flipped} of {args.models * args.rows} predictions differ, "
        f"scores identical: {'yes' if scores_equal else 'no'}"
    )
    verdicts = (
        (f"bf16 >= {TARGET_SPEEDUP:g} x the loop", loop_s / bf16_s >= TARGET_SPEEDUP),
        ("bf16 ranking of models by accuracy == fp32 ranking", rank_equal),
        (
            f"bf16 within {TARGET_FLOOR_FACTOR:g} x the memory-bandwidth floor",
            bf16_s <= TARGET_FLOOR_FACTOR * bf16_floor_s,
        ),
    )
    for name, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
