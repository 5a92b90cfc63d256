"""Benchmark: the hosted validators' win policies, ``epsilon`` and ``bootstrap``, side by side.

Usage::

    python benchmarks/win_policy.py [--trials K] [--rows 200,1000] [--epochs E] [--seed S]

Synthetic per-row correctness, seeded (``numpy.random.Generator``), the same draws for both
policies. A field of ``FIELD_ACCURACIES`` models (true accuracies; the best, 0.90, is the
incumbent and was committed first) was committed long ago (blocks 0–70, ε already partly
decayed); every epoch each validator scores fresh rows (``--rows`` per validator, the demo uses
200). A model's correctness on a row is drawn against a per-row difficulty it shares with the
other models on ``SHARED_ROW_SHARE`` of the rows (models tend to fail on the same hard rows),
against its own draw otherwise; its marginal accuracy is its true accuracy either way.

Two scenarios, each over ``--trials`` independent trials of ``--epochs`` epochs:

* **Copying gain**: another hotkey re-submits the incumbent at block ``NEWCOMER_BLOCK``,
  perturbed so that its prediction changes on ``changed`` of the rows (half right → wrong, half
  wrong → right: the same expected accuracy). Printed: the copy's share of the validator's
  weight, the incumbent's, and the share of epochs in which the copy holds the top weight.
* **Time to reward a real improvement**: a new model of accuracy 0.90 + Δ arrives at block
  ``NEWCOMER_BLOCK``. Printed: the first epoch in which it holds the top weight alone (median over
  trials; "never" when the median trial did not within ``--epochs``) with the rows a validator
  scored until then, and the share of epochs in which it holds the top weight alone.

Policies: the network's default (temperature 0.1, ε 0.005 decaying over 7,200 blocks) and the same
with ``win_policy: "bootstrap"`` (confidence 0.95, 1,000 resamples).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script: make the repository root importable
    sys.path.insert(0, str(_ROOT))

from taoflow.tasks.weights import (  # noqa: E402
    U16_MAX,
    ValidatorPolicy,
    ValidatorRows,
    bootstrap_seed,
    scores_to_weights,
)

SEED_DEFAULT: Final = 20_260_612
TRIALS_DEFAULT: Final = 20
TRIALS_MAX: Final = 1_000
EPOCHS_DEFAULT: Final = 15
EPOCHS_MAX: Final = 1_000
ROWS_DEFAULT: Final = (200, 1_000)
ROWS_MAX: Final = 100_000
FIELD_ACCURACIES: Final = (0.80, 0.82, 0.84, 0.85, 0.86, 0.87, 0.88, 0.90)
INCUMBENT: Final = len(FIELD_ACCURACIES) - 1
NEWCOMER: Final = len(FIELD_ACCURACIES)
FIELD_BLOCK_STEP: Final = 10
NEWCOMER_BLOCK: Final = 3_000
TEMPO_BLOCKS: Final = 100
SHARED_ROW_SHARE: Final = 0.7
COPY_CHANGES: Final = (0.005, 0.05)
IMPROVEMENTS: Final = (0.01, 0.02, 0.05)
EPSILON: Final = ValidatorPolicy(temperature=0.1, epsilon=0.005, epsilon_decay_blocks=7_200)
BOOTSTRAP: Final = dataclasses.replace(
    EPSILON, win_policy="bootstrap", bootstrap_confidence=0.95, bootstrap_resamples=1_000
)
POLICIES: Final = (("epsilon", EPSILON), ("bootstrap", BOOTSTRAP))


@dataclass(frozen=True)
class Setting:
    """One scenario run: validator rows per epoch, trials, epochs and the seed."""

    rows: int
    trials: int
    epochs: int
    seed: int


@dataclass(frozen=True)
class EpochResult:
    """The newcomer's weight in one epoch under one policy."""

    newcomer_share: float
    incumbent_share: float
    newcomer_on_top: bool
    newcomer_alone_on_top: bool


def draw_correct(rng: np.random.Generator, accuracies: np.ndarray, *, rows: int) -> np.ndarray:
    """Each model's correctness on ``rows`` fresh rows (bool, models × rows)."""
    shared = rng.random(rows)
    own = rng.random((len(accuracies), rows))
    uses_shared = rng.random((len(accuracies), rows)) < SHARED_ROW_SHARE
    return np.where(uses_shared, shared[None, :], own) < accuracies[:, None]


def perturbed(
    rng: np.random.Generator, correct: np.ndarray, *, accuracy: float, changed: float
) -> np.ndarray:
    """``correct`` with predictions changed on ``changed`` of the rows, accuracy kept."""
    flip = rng.random(correct.size)
    right_to_wrong = correct & (flip < changed / 2 / accuracy)
    wrong_to_right = ~correct & (flip < changed / 2 / (1.0 - accuracy))
    return correct ^ (right_to_wrong | wrong_to_right)


def epoch_weights(
    correct: np.ndarray, *, policy: ValidatorPolicy, epoch: int, seed_text: str
) -> dict[int, int]:
    """One validator's weights for one epoch's correctness matrix (uid = row of ``correct``)."""
    uids = range(correct.shape[0])
    blocks = {uid: (INCUMBENT - uid) * FIELD_BLOCK_STEP for uid in uids if uid < NEWCOMER}
    blocks.update({uid: NEWCOMER_BLOCK for uid in uids if uid >= NEWCOMER})
    return scores_to_weights(
        {uid: float(correct[uid].mean()) for uid in uids},
        commit_blocks=blocks,
        current_block=NEWCOMER_BLOCK + (epoch + 1) * TEMPO_BLOCKS,
        policy=policy,
        rows=ValidatorRows(
            correct={uid: correct[uid] for uid in uids},
            seed=bootstrap_seed(seed_hex=seed_text, hotkey=f"epoch-{epoch}"),
        ),
    )


def summarise(weights: dict[int, int]) -> EpochResult:
    total = sum(weights.values())
    others = [w for uid, w in weights.items() if uid != NEWCOMER]
    return EpochResult(
        newcomer_share=weights[NEWCOMER] / total,
        incumbent_share=weights[INCUMBENT] / total,
        newcomer_on_top=weights[NEWCOMER] == U16_MAX,
        newcomer_alone_on_top=weights[NEWCOMER] == U16_MAX and max(others) < U16_MAX,
    )


def run_trials(
    setting: Setting, *, copy_changed: float | None, improvement: float | None
) -> dict[str, list[list[EpochResult]]]:
    """Policy name → per trial, per epoch results; the newcomer is a copy or an improvement."""
    field = np.array(FIELD_ACCURACIES)
    best = FIELD_ACCURACIES[INCUMBENT]
    newcomer = best + (improvement or 0.0)
    results: dict[str, list[list[EpochResult]]] = {name: [] for name, _ in POLICIES}
    for trial in range(setting.trials):  # bounded: trials ≤ TRIALS_MAX
        rng = np.random.default_rng([setting.seed, setting.rows, trial, int(1e6 * newcomer)])
        per_policy: dict[str, list[EpochResult]] = {name: [] for name, _ in POLICIES}
        for epoch in range(setting.epochs):  # bounded: epochs ≤ EPOCHS_MAX
            if copy_changed is not None:
                correct = draw_correct(rng, field, rows=setting.rows)
                copy = perturbed(rng, correct[INCUMBENT], accuracy=best, changed=copy_changed)
                correct = np.vstack([correct, copy[None, :]])
            else:
                correct = draw_correct(rng, np.append(field, newcomer), rows=setting.rows)
            for name, policy in POLICIES:
                weights = epoch_weights(
                    correct, policy=policy, epoch=epoch, seed_text=f"{setting.seed}:{trial}"
                )
                per_policy[name].append(summarise(weights))
        for name, epochs in per_policy.items():
            results[name].append(epochs)
    return results


def first_top_epoch(epochs: Sequence[EpochResult]) -> int | None:
    """1-based epoch in which the newcomer first holds the top weight alone."""
    for index, result in enumerate(epochs):
        if result.newcomer_alone_on_top:
            return index + 1
    return None


def copy_rows(setting: Setting) -> list[str]:
    lines = []
    for changed in COPY_CHANGES:
        results = run_trials(setting, copy_changed=changed, improvement=None)
        for name, _ in POLICIES:
            flat = [r for trial in results[name] for r in trial]
            lines.append(
                f"| {setting.rows:,} | {name} | {changed:.1%} "
                f"| {statistics.fmean(r.newcomer_share for r in flat):.1%} "
                f"| {statistics.fmean(r.incumbent_share for r in flat):.1%} "
                f"| {statistics.fmean(r.newcomer_on_top for r in flat):.0%} |"
            )
    return lines


def improvement_rows(setting: Setting) -> list[str]:
    lines = []
    for delta in IMPROVEMENTS:
        results = run_trials(setting, copy_changed=None, improvement=delta)
        for name, _ in POLICIES:
            firsts = [first_top_epoch(trial) for trial in results[name]]
            # never → after the horizon, so the median is an honest lower bound
            ordered = sorted(setting.epochs + 1 if f is None else f for f in firsts)
            median = ordered[len(ordered) // 2]
            first = (
                f"never in {setting.epochs}"
                if median > setting.epochs
                else f"{median} ({median * setting.rows:,} rows)"
            )
            flat = [r for trial in results[name] for r in trial]
            alone = statistics.fmean(r.newcomer_alone_on_top for r in flat)
            lines.append(f"| {setting.rows:,} | {name} | +{delta:.0%} | {first} | {alone:.0%} |")
    return lines


def report(rows_list: Sequence[int], *, trials: int, epochs: int, seed: int) -> str:
    """Both tables as markdown."""
    settings = [Setting(rows=rows, trials=trials, epochs=epochs, seed=seed) for rows in rows_list]
    head = (
        f"{len(FIELD_ACCURACIES)} models (accuracy {FIELD_ACCURACIES[0]:.2f}–"
        f"{FIELD_ACCURACIES[INCUMBENT]:.2f}), {trials} trials × {epochs} epochs, seed {seed}"
    )
    copying = [
        "Copying gain: the incumbent (0.90) re-submitted by another hotkey",
        "",
        "| rows/validator | policy | predictions changed | copy's weight | incumbent's weight "
        "| epochs copy on top |",
        "|---:|---|---:|---:|---:|---:|",
        *(line for setting in settings for line in copy_rows(setting)),
    ]
    reward = [
        "Time to reward a real improvement over the incumbent (0.90)",
        "",
        "| rows/validator | policy | improvement | first epoch alone on top (median) "
        "| epochs alone on top |",
        "|---:|---|---:|---:|---:|",
        *(line for setting in settings for line in improvement_rows(setting)),
    ]
    return "\n".join([head, "", *copying, "", *reward])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=TRIALS_DEFAULT)
    parser.add_argument("--epochs", type=int, default=EPOCHS_DEFAULT)
    parser.add_argument("--rows", default=",".join(str(r) for r in ROWS_DEFAULT))
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    args = parser.parse_args(argv)
    try:
        rows_list = [int(part) for part in args.rows.split(",")]
    except ValueError:
        parser.error("--rows must be comma-separated integers")
    if not 1 <= args.trials <= TRIALS_MAX or not 1 <= args.epochs <= EPOCHS_MAX:
        parser.error(f"--trials must be in [1, {TRIALS_MAX}], --epochs in [1, {EPOCHS_MAX}]")
    if not all(10 <= rows <= ROWS_MAX for rows in rows_list):
        parser.error(f"--rows values must be in [10, {ROWS_MAX:,}]")
    started_s = time.perf_counter()
    print(report(rows_list, trials=args.trials, epochs=args.epochs, seed=args.seed))
    print(f"\n({time.perf_counter() - started_s:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
