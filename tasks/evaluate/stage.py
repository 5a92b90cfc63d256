"""Stage 2 — evaluate: each submitted model once on the epoch's sample; scores per hosted validator.

The epoch's sample is drawn from the held-out split with the epoch seed (derived from the ledger
head, the subnet and the epoch); each hosted validator scores its own subsample of it, seeded by
the epoch seed and its hotkey (positions within the epoch sample, :func:`validator_positions`).
Every eligible model is evaluated ONCE on the whole epoch sample (``tasks.evaluate.fanout``: Dask
fan-out of batched, same-architecture passes) and returns its per-row correctness; a validator's
score for a model is the model's accuracy on that validator's rows -- exactly what evaluating the
model on those rows alone gives, because each row's prediction depends on that row only.  This
replaces one evaluation per (validator, model) pair with one per model.

Invariants: results depend only on the ledger (seed, submissions) and the stored artifacts, not on
the number of workers; a model that fails scores 0 with its reason for every hosted validator and
never stops the epoch; a neuron without a stored artifact is not scored, one whose artifact is
missing from the store scores 0 with its reason; with no hosted validator nothing is evaluated.
A later submission that predicts like an earlier one of another hotkey (and is shown to be the
same model) scores 0 with a ``near_duplicate:`` reason (``tasks.evaluate.near_duplicates``).
A remote artifact is fetched only as the ``FetchPolicy`` allows (configured stores, bounded in
time and size: ``tasks.remote_store``); a refused or late one scores 0 with that reason. The Dask
stage is bounded by ``evaluation_deadline_s``; a failed cluster is one ``EvaluationFailed`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import distributed
import numpy as np

from taoflow.evaluation_sets import EvaluationSet, load_evaluation_set
from taoflow.ledger.config import SubnetConfig
from taoflow.tasks.artifact_store import locate
from taoflow.tasks.evaluate.fanout import evaluate_all
from taoflow.tasks.evaluate.near_duplicates import near_duplicate_errors
from taoflow.tasks.evaluate.runner import EvalJob, correct_vector, one_line
from taoflow.tasks.evaluate.sampling import derive_seed, sample_indices
from taoflow.tasks.gather import EpochContext
from taoflow.tasks.models.families import FamilyLimits, families_for
from taoflow.tasks.remote_store import FetchPolicy, FetchRequest, fetch_many, is_remote_uri
from taoflow.tasks.weights import EpochCorrectness

EVAL_TIMEOUT_S_DEFAULT = 60.0


class EvaluationSetMismatch(RuntimeError):
    """The evaluation set on this machine is not the one the subnet committed to the ledger."""


@dataclass(frozen=True)
class EvaluationOutcome:
    """Scores per hosted validator (validator uid → miner uid → score) and failures."""

    scores: dict[int, dict[int, float]]
    errors: dict[int, str] = field(default_factory=dict)
    sample_size: int = 0
    correctness: EpochCorrectness | None = field(default=None, compare=False, repr=False)
    """Each scored model's per-row correctness on the epoch sample and every hosted validator's
    positions in it (for ``win_policy: "bootstrap"``); never written to the ledger records."""

    def mean_scores(self) -> dict[int, float]:
        """Each miner's score averaged over the hosted validators."""
        sums: dict[int, list[float]] = {}
        for row in self.scores.values():
            for uid, score in row.items():
                sums.setdefault(uid, []).append(score)
        return {uid: float(np.mean(values)) for uid, values in sorted(sums.items())}


def _required(value: int | None, name: str) -> int:
    if value is None:
        raise ValueError(f"the subnet's config has no {name}: evaluation needs it")
    return value


def family_limits(config: SubnetConfig, *, eval_set: EvaluationSet) -> FamilyLimits:
    """The subnet's model limits for its evaluation set (families from ``model_families``)."""
    families = frozenset(config.model_families or (config.model_family,)) or frozenset({"mlp"})
    return FamilyLimits(
        params_max=_required(config.params_max, "params_max"),
        bytes_max=_required(config.bytes_max, "bytes_max"),
        layers_max=_required(config.layers_max, "layers_max"),
        input_dim=eval_set.input_dim,
        num_classes=eval_set.num_classes,
        vocab_size=eval_set.vocab_size if eval_set.feature_dtype == "int64" else None,
        families=families & families_for(eval_set.feature_dtype),
    )


def plan_jobs(
    ctx: EpochContext, *, artifacts_root: Path, fetch_policy: FetchPolicy | None = None
) -> tuple[list[EvalJob], dict[int, str]]:
    """One job per neuron with a committed artifact; neurons whose artifact is missing fail.

    An artifact missing from the local store is fetched from its committed uri only if
    ``fetch_policy`` allows that uri (default: no remote store, every remote uri refused);
    fetches run in parallel under the policy's per-model deadline (``tasks.remote_store``).
    """
    policy = fetch_policy if fetch_policy is not None else FetchPolicy()
    errors: dict[int, str] = {}
    requests: list[FetchRequest] = []
    for neuron in ctx.neurons:
        if neuron.artifact_digest is None:
            continue
        stored = locate(artifacts_root, neuron.artifact_digest)
        if not stored.model_path.exists() and is_remote_uri(neuron.artifact_uri):
            requests.append(
                FetchRequest(neuron.uid, str(neuron.artifact_uri), neuron.artifact_digest)
            )
    for outcome in fetch_many(requests, policy=policy, cache_root=artifacts_root):
        if outcome.error is not None:
            errors[outcome.uid] = one_line(f"unreadable: {outcome.error}")
    jobs: list[EvalJob] = []
    for neuron in ctx.neurons:
        if neuron.artifact_digest is None or neuron.uid in errors:
            continue
        stored = locate(artifacts_root, neuron.artifact_digest)
        if not stored.model_path.exists():
            errors[neuron.uid] = f"artifact {neuron.artifact_digest[:12]} is not in the store"
            continue
        jobs.append(EvalJob(neuron.uid, str(stored.model_path), str(stored.config_path)))
    return jobs, errors


def validator_positions(
    ctx: EpochContext, *, population: int
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The epoch sample (row indices of the held-out split) and, per hosted validator, the
    positions within it that the validator scores this epoch."""
    epoch_size = min(_required(ctx.config.sample_size, "sample_size"), population)
    epoch_rows = sample_indices(
        seed=bytes.fromhex(ctx.seed_hex), population=population, sample_size=epoch_size
    )
    sub_size = min(_required(ctx.config.validator_sample_size, "validator_sample_size"), epoch_size)
    positions = {}
    for neuron in ctx.neurons:
        if not ctx.is_hosted_validator(neuron.uid):
            continue
        positions[neuron.uid] = sample_indices(
            seed=derive_seed(ctx.seed_hex, neuron.hotkey),
            population=epoch_size,
            sample_size=sub_size,
        )
    return epoch_rows, positions


def validator_samples(ctx: EpochContext, *, population: int) -> dict[int, np.ndarray]:
    """Row indices of the held-out split each hosted validator scores this epoch."""
    epoch_rows, positions = validator_positions(ctx, population=population)
    return {uid: epoch_rows[picks] for uid, picks in positions.items()}


def evaluate_epoch(
    ctx: EpochContext,
    *,
    client: distributed.Client,
    artifacts_root: Path,
    timeout_s: float = EVAL_TIMEOUT_S_DEFAULT,
    fetch_policy: FetchPolicy | None = None,
) -> EvaluationOutcome:
    """Evaluate every submission once; score it for every hosted validator on its subsample.

    Remote artifacts are fetched under ``fetch_policy`` (see :func:`plan_jobs`); the Dask stage
    is bounded by :func:`tasks.evaluate.fanout.evaluation_deadline_s` and raises
    :class:`tasks.evaluate.fanout.EvaluationFailed` when the cluster itself fails.
    """
    eval_set = load_evaluation_set(ctx.config.evaluation_set)
    features, labels = eval_set.arrays("test")
    if ctx.config.evaluation_set_hash not in ("", eval_set.content_hash):
        raise EvaluationSetMismatch(
            f"evaluation set {eval_set.name!r} hashes to {eval_set.content_hash[:16]}…, but the "
            f"subnet committed {ctx.config.evaluation_set_hash[:16]}…"
        )
    limits = family_limits(ctx.config, eval_set=eval_set)
    jobs, errors = plan_jobs(ctx, artifacts_root=artifacts_root, fetch_policy=fetch_policy)
    epoch_rows, positions = validator_positions(ctx, population=len(labels))
    if not positions:
        return EvaluationOutcome(scores={}, errors=errors, sample_size=0)
    sample_size = len(next(iter(positions.values())))
    if jobs and sample_size == 0:
        raise ValueError("validator_sample_size must be >= 1 to score submissions")
    results = (
        evaluate_all(
            client,
            jobs,
            features=features[epoch_rows],
            labels=labels[epoch_rows],
            limits=limits,
            timeout_s=timeout_s,
        )
        if jobs
        else []
    )
    scored = [result for result in results if result.error is None]
    errors.update((result.uid, result.error) for result in results if result.error is not None)
    rejected = near_duplicate_errors(ctx, scored, jobs=jobs, limits=limits)
    errors.update(rejected)  # a later near copy of another hotkey's model scores 0
    scored = [result for result in scored if result.uid not in rejected]
    # One row per scored model: its correctness on every row of the epoch sample.
    correct = (
        np.stack([correct_vector(result) for result in scored])
        if scored
        else np.zeros((0, len(epoch_rows)), dtype=np.bool_)
    )
    scores: dict[int, dict[int, float]] = {}
    for validator_uid, picks in positions.items():
        row_scores = {uid: 0.0 for uid in errors}
        counts = correct[:, picks].sum(axis=1).tolist()
        # int / int, as when the model was evaluated on these rows alone (``tasks.evaluate.
        # runner.subset_accuracy``): accuracy on this validator's rows.
        row_scores.update(
            (result.uid, int(count) / int(picks.size))
            for result, count in zip(scored, counts, strict=True)
        )
        scores[validator_uid] = dict(sorted(row_scores.items()))
    correctness = EpochCorrectness(
        uids=tuple(result.uid for result in scored), correct=correct, positions=positions
    )
    return EvaluationOutcome(
        scores=scores, errors=errors, sample_size=sample_size, correctness=correctness
    )
