"""Near-duplicate submissions: a later model that predicts like an earlier one of another hotkey.

The exact-copy defences stay as they are: a commit binds its digest to the committing hotkey
(``ledger.submissions``), and the SN9 win rule (``tasks.weights``) gives the earlier commit the
ε advantage and every tie.  This check is the weaker, broader one: after the evaluate stage has
each model's predicted label on every row of the epoch sample, a submission is rejected for the
epoch when an EARLIER submission of ANOTHER hotkey (earlier = smaller commit block, ties by uid)

1. predicts the same label on at least ``agreement_ppm`` / 10⁶ of the compared rows (the subnet
   setting ``near_duplicate_agreement_ppm``, default 980,000 = 98 %; 0 turns the check off), and
2. is shown to be the same model by at least one piece of evidence:

   * the same artifact digest;
   * weights within ``WEIGHTS_RELATIVE_TOLERANCE`` after a permutation-invariant comparison:
     only between models with the same tensor names and shapes, each tensor reduced to its
     sorted absolute values (invariant to permuting hidden units and flipping signs; at most
     ``SIGNATURE_POINTS`` evenly spaced order statistics of them); the distance is the largest
     over tensors of ``‖a − b‖ / max(‖a‖, ‖b‖)``;
   * the same mistakes: on the rows where either model is wrong (at least
     ``MISTAKE_ROWS_MIN`` of them), the same label on at least ``agreement_ppm`` of them -- this
     catches a copy in another architecture (e.g. the same network padded with dead units).

Why agreement alone is not enough: two independently trained good models agree on most rows
because both are right there (two 99 %-accurate models agree on ≥ 98 % of rows by necessity);
measured on the digits set, MLPs trained with different seeds agree on 97-99 % of rows, while
their weight distance is ≥ 0.2 and they share under half of their mistakes.  A copy with noise
of 1e-4 added to every weight agrees on 100 % of rows at a weight distance of ~5e-4.  Hence the
tolerance 1e-2: well above what noise of that size does, well below what independent training
gives (also for freshly initialised models: the smallest tensors differ by > 0.1).

The earlier model keeps its score; the later one gets ``error`` = :meth:`NearDuplicate.reason`
(one line, code ``near_duplicate:``), scores 0 for every hosted validator and gets weight 0, like
any other rejected evaluation.  Every model is compared with every earlier one (flagged or not),
and the reason names the earliest match.

Invariants: the result depends only on the submissions (commit blocks, uids, hotkeys, digests,
predictions, correctness) and the stored artifacts -- so on the ledger and the artifact store,
never on the order of the inputs or the number of workers; a model is never flagged because of a
later one or one of its own hotkey; integer thresholds (``count · 10⁶ ≥ ppm · rows``), so no
rounding decides a flag.  Bounded: at most ``NEAR_DUPLICATE_MODELS_MAX`` models (the most
accurate ones, ties by commit order) and ``NEAR_DUPLICATE_ROWS_MAX`` rows (evenly strided over
the sample) are compared pairwise, in blocks of at most ``PAIR_CELLS_MAX`` label comparisons;
weights are read only for pairs that already pass the agreement test, each artifact at most once,
and compared for at most ``WEIGHT_PAIRS_MAX`` pairs (in commit order; later pairs rely on the
other evidence).  An artifact whose weights cannot be read again simply gives no weight evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from taoflow.tasks.evaluate.runner import (
    EvalJob,
    EvalResult,
    correct_vector,
    prediction_vector,
    read_capped,
)
from taoflow.tasks.gather import EpochContext
from taoflow.tasks.models.artifacts import load_submission_with_config
from taoflow.tasks.models.families import CONFIG_BYTES_MAX, FamilyLimits

PPM: Final = 1_000_000
NEAR_DUPLICATE_MODELS_MAX: Final = 1024
"""Models compared pairwise per epoch (the most accurate ones when there are more)."""
NEAR_DUPLICATE_ROWS_MAX: Final = 2048
"""Sample rows compared per pair (evenly strided over the epoch sample when it is larger)."""
PAIR_CELLS_MAX: Final = 1 << 24
"""Label comparisons (models × models × rows) held in memory at once."""
MISTAKE_ROWS_MIN: Final = 8
"""Rows either model gets wrong needed before shared mistakes count as evidence."""
WEIGHTS_RELATIVE_TOLERANCE: Final = 1e-2
"""Largest per-tensor relative distance of sorted absolute weights that counts as the same."""
SIGNATURE_POINTS: Final = 256
"""Order statistics kept per tensor, so one weight comparison costs O(tensors) whatever the size."""
WEIGHT_PAIRS_MAX: Final = 1 << 16
"""Weight comparisons per epoch; later candidate pairs are judged without weight evidence."""


@dataclass(frozen=True)
class Submission:
    """One successfully evaluated model: who committed it, when, and what it predicted."""

    uid: int
    hotkey: str
    commit_block: int
    digest: str
    predictions: np.ndarray
    """Predicted label per row of the epoch sample (1-D integers)."""
    correct: np.ndarray
    """Whether each prediction equals the row's label (1-D bool, same length)."""


@dataclass(frozen=True)
class WeightSignature:
    """A model's weights up to permutation: tensor names and shapes, and per tensor its sorted
    absolute values (at most ``SIGNATURE_POINTS`` evenly spaced order statistics), all tensors'
    concatenated in ``points`` from the offsets ``starts``, with each segment's norm."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    points: np.ndarray
    starts: np.ndarray
    norms: np.ndarray


@dataclass(frozen=True)
class NearDuplicate:
    """Why ``uid`` is rejected: it predicts like the earlier ``original_uid``."""

    uid: int
    original_uid: int
    rows: int
    agreed_rows: int
    same_artifact: bool
    weights_distance: float | None
    """Permutation-invariant weight distance when the architectures match, else ``None``."""
    mistake_rows: int
    mistakes_agreed: int

    def reason(self) -> str:
        """One line for the epoch's ``error`` column and ``taoflow submissions``."""
        percent = math.floor(self.agreed_rows * 1000 / self.rows) / 10
        parts = [f"agrees on {percent:.1f}% of the {self.rows}-row sample"]
        if self.same_artifact:
            parts.append("the same artifact")
        elif self.weights_distance is not None and self.weights_close:
            parts.append(f"weights within {self.weights_distance:.1e}")
        else:
            parts.append(
                f"the same label on {self.mistakes_agreed} of the {self.mistake_rows} rows "
                "either gets wrong"
            )
        return f"near_duplicate: of uid {self.original_uid} ({', '.join(parts)})"

    @property
    def weights_close(self) -> bool:
        distance = self.weights_distance
        return distance is not None and distance <= WEIGHTS_RELATIVE_TOLERANCE


def _order_statistics(tensor: np.ndarray) -> np.ndarray:
    """Sorted ``|tensor|``, thinned to ``SIGNATURE_POINTS`` evenly spaced entries (ends kept)."""
    values = np.sort(np.abs(np.asarray(tensor, dtype=np.float64).ravel()))
    if values.size <= SIGNATURE_POINTS:
        return values
    picks = np.arange(SIGNATURE_POINTS, dtype=np.int64) * (values.size - 1)
    return values[picks // (SIGNATURE_POINTS - 1)]


def weight_signature(tensors: Mapping[str, np.ndarray]) -> WeightSignature:
    """The permutation-invariant signature of named tensors (sorted by name; empty ones are
    kept in ``shapes`` only)."""
    names = sorted(tensors)
    segments = [_order_statistics(tensors[name]) for name in names]
    segments = [segment for segment in segments if segment.size] or [np.zeros(1)]
    sizes = np.array([segment.size for segment in segments], dtype=np.int64)
    points = np.concatenate(segments)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return WeightSignature(
        shapes=tuple((name, tuple(int(d) for d in tensors[name].shape)) for name in names),
        points=points,
        starts=starts,
        norms=np.sqrt(np.add.reduceat(points * points, starts)),
    )


def weights_distance(first: WeightSignature, second: WeightSignature) -> float | None:
    """Largest per-tensor ``‖a − b‖ / max(‖a‖, ‖b‖)`` (0 for two zero tensors); ``None`` when
    the tensor names or shapes differ (different architectures are not compared)."""
    if first.shapes != second.shapes:
        return None
    difference = first.points - second.points
    gaps = np.sqrt(np.add.reduceat(difference * difference, first.starts))
    scale = np.maximum(first.norms, second.norms)
    ratios = np.divide(gaps, scale, out=np.zeros_like(gaps), where=scale > 0.0)
    return float(ratios.max())


def _agreement_counts(labels: np.ndarray) -> np.ndarray:
    """``counts[i, j]`` = rows on which models ``i`` and ``j < i`` predict the same label."""
    models, rows = labels.shape
    counts = np.zeros((models, models), dtype=np.int64)
    step = max(1, PAIR_CELLS_MAX // max(1, models * rows))
    for start in range(0, models, step):
        stop = min(start + step, models)
        equal = labels[start:stop, None, :] == labels[None, :stop, :]
        counts[start:stop, :stop] = equal.sum(axis=2)
    return counts


def _compared(submissions: Sequence[Submission]) -> list[Submission]:
    """The submissions compared, in commit order: all, or the most accurate ones at the cap."""
    ordered = sorted(submissions, key=lambda s: (s.commit_block, s.uid))
    if len(ordered) <= NEAR_DUPLICATE_MODELS_MAX:
        return ordered
    ranked = sorted(range(len(ordered)), key=lambda i: (-int(ordered[i].correct.sum()), i))
    return [ordered[i] for i in sorted(ranked[:NEAR_DUPLICATE_MODELS_MAX])]


def _check(submissions: Sequence[Submission], *, agreement_ppm: int) -> None:
    if not 0 <= agreement_ppm <= PPM:
        raise ValueError(f"agreement_ppm must be in [0, {PPM:,}], got {agreement_ppm}")
    uids = [s.uid for s in submissions]
    if len(set(uids)) != len(uids):
        raise ValueError("duplicate uids in submissions")
    shapes = {s.predictions.shape for s in submissions} | {s.correct.shape for s in submissions}
    well_typed = all(
        s.predictions.dtype.kind in "iu" and s.correct.dtype == np.bool_ for s in submissions
    )
    if len(shapes) > 1 or any(len(shape) != 1 for shape in shapes) or not well_typed:
        raise ValueError(
            "every submission needs 1-D integer predictions and bool correctness of one length"
        )


@dataclass(frozen=True)
class _PairTables:
    """Pairwise counts over the compared rows (row = later model, column = earlier one)."""

    rows: int
    agreed: np.ndarray
    both_right: np.ndarray
    candidate: np.ndarray
    """Earlier, another hotkey, and agreement ≥ the threshold."""
    cheap_evidence: np.ndarray
    """The same artifact digest, or the same mistakes."""


def _pair_tables(compared: Sequence[Submission], *, agreement_ppm: int) -> _PairTables:
    total_rows = compared[0].predictions.size
    rows = min(total_rows, NEAR_DUPLICATE_ROWS_MAX)
    picks = np.arange(rows, dtype=np.int64) * total_rows // rows
    labels = np.stack([s.predictions[picks] for s in compared]).astype(np.int64)
    correct = np.stack([s.correct[picks] for s in compared]).astype(np.float64)
    agreed = _agreement_counts(labels)
    both_right = np.rint(correct @ correct.T).astype(np.int64)  # exact: integers < 2**53
    hotkeys = np.unique([s.hotkey for s in compared], return_inverse=True)[1]
    digests = np.unique([s.digest for s in compared], return_inverse=True)[1]
    has_digest = np.array([bool(s.digest) for s in compared])
    earlier = np.tril(np.ones((len(compared), len(compared)), dtype=np.bool_), k=-1)
    candidate = (
        earlier & (hotkeys[:, None] != hotkeys[None, :]) & (agreed * PPM >= agreement_ppm * rows)
    )
    mistake_rows = rows - both_right
    same_mistakes = (mistake_rows >= MISTAKE_ROWS_MIN) & (
        (agreed - both_right) * PPM >= agreement_ppm * mistake_rows
    )
    same_artifact = (digests[:, None] == digests[None, :]) & has_digest[:, None]
    return _PairTables(rows, agreed, both_right, candidate, same_artifact | same_mistakes)


def _distances(
    later: WeightSignature | None, earlier: Sequence[WeightSignature | None]
) -> np.ndarray:
    """:func:`weights_distance` from ``later`` to each of ``earlier``, vectorised; NaN where
    the weights are missing or the architectures differ."""
    out = np.full(len(earlier), np.nan)
    if later is None:
        return out
    same = [
        i for i, other in enumerate(earlier) if other is not None and other.shapes == later.shapes
    ]
    if not same:
        return out
    others = [earlier[i] for i in same]
    points = np.stack([other.points for other in others if other is not None])
    norms = np.stack([other.norms for other in others if other is not None])
    difference = points - later.points
    gaps = np.sqrt(np.add.reduceat(difference * difference, later.starts, axis=1))
    scale = np.maximum(norms, later.norms)
    ratios = np.divide(gaps, scale, out=np.zeros_like(gaps), where=scale > 0.0)
    out[same] = ratios.max(axis=1)
    return out


def find_near_duplicates(
    submissions: Sequence[Submission],
    *,
    agreement_ppm: int,
    signature: Callable[[int], WeightSignature | None],
) -> dict[int, NearDuplicate]:
    """Later submissions that duplicate an earlier one of another hotkey, by uid.

    ``signature(uid)`` gives a model's :class:`WeightSignature` (``None`` when its weights
    cannot be read); it is called only for pairs that pass the agreement test, once per uid.
    ``agreement_ppm`` 0 disables the check.  Raises ``ValueError`` on malformed input.
    """
    _check(submissions, agreement_ppm=agreement_ppm)
    compared = _compared(submissions)
    if agreement_ppm == 0 or len(compared) < 2 or compared[0].predictions.size == 0:
        return {}
    tables = _pair_tables(compared, agreement_ppm=agreement_ppm)
    signatures: dict[int, WeightSignature | None] = {}

    def signature_of(uid: int) -> WeightSignature | None:
        if uid not in signatures:
            signatures[uid] = signature(uid)
        return signatures[uid]

    found: dict[int, NearDuplicate] = {}
    weighed = 0
    for later, submission in enumerate(compared):
        options = np.flatnonzero(tables.candidate[later, :later])
        if options.size == 0:
            continue
        cheap = tables.cheap_evidence[later, options]
        hits = np.flatnonzero(cheap)
        # Weights matter only up to the first pair that has other evidence (the earliest wins).
        options = options[: hits[0] + 1] if hits.size else options
        weigh = options[: max(0, WEIGHT_PAIRS_MAX - weighed)]
        distances = np.full(options.size, np.nan)
        if weigh.size:
            later_signature = signature_of(submission.uid)
            earlier_signatures = [signature_of(compared[j].uid) for j in weigh.tolist()]
            distances[: weigh.size] = _distances(later_signature, earlier_signatures)
            weighed += int(np.count_nonzero(~np.isnan(distances)))
        evidence = cheap[: options.size] | (distances <= WEIGHTS_RELATIVE_TOLERANCE)
        first = np.flatnonzero(evidence)
        if first.size:
            found[submission.uid] = _finding(
                tables,
                compared,
                later=later,
                earlier=int(options[first[0]]),
                distance=float(distances[first[0]]),
            )
    return found


def _finding(
    tables: _PairTables,
    compared: Sequence[Submission],
    *,
    later: int,
    earlier: int,
    distance: float,
) -> NearDuplicate:
    submission, original = compared[later], compared[earlier]
    agreed = int(tables.agreed[later, earlier])
    both_right = int(tables.both_right[later, earlier])
    return NearDuplicate(
        uid=submission.uid,
        original_uid=original.uid,
        rows=tables.rows,
        agreed_rows=agreed,
        same_artifact=bool(original.digest) and original.digest == submission.digest,
        weights_distance=None if math.isnan(distance) else distance,
        mistake_rows=tables.rows - both_right,
        mistakes_agreed=agreed - both_right,
    )


def stored_signature(
    *, model_path: Path, config_path: Path, limits: FamilyLimits
) -> WeightSignature | None:
    """The weight signature of a stored artifact, read and validated as evaluation reads it
    (capped reads, no unpickling); ``None`` when it cannot be read or loaded."""
    try:
        model_bytes = read_capped(str(model_path), bytes_max=limits.bytes_max, what="model")
        config_bytes = read_capped(str(config_path), bytes_max=CONFIG_BYTES_MAX, what="config")
        model, _ = load_submission_with_config(
            model_bytes=model_bytes, config_bytes=config_bytes, limits=limits
        )
    except Exception:  # a hostile artifact only loses its weight evidence
        return None
    return weight_signature(
        {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    )


def near_duplicate_errors(
    ctx: EpochContext,
    results: Sequence[EvalResult],
    *,
    jobs: Sequence[EvalJob],
    limits: FamilyLimits,
) -> dict[int, str]:
    """The evaluate stage's rejections: uid → :meth:`NearDuplicate.reason`.

    ``results`` are the epoch's successful evaluations (on the whole epoch sample);
    ``jobs`` name each uid's stored files (weights are read only for candidate pairs).  A
    neuron without a commit block counts as committed at the epoch's block (then the lower uid
    is earlier); a result without predictions takes no part.
    """
    neurons = {neuron.uid: neuron for neuron in ctx.neurons}
    submissions = []
    for result in results:
        predictions = prediction_vector(result)
        neuron = neurons.get(result.uid)
        if predictions is None or neuron is None:
            continue
        block = neuron.artifact_block if neuron.artifact_block is not None else ctx.block
        submissions.append(
            Submission(
                uid=result.uid,
                hotkey=neuron.hotkey,
                commit_block=block,
                digest=neuron.artifact_digest or "",
                predictions=predictions,
                correct=correct_vector(result),
            )
        )

    paths = {job.uid: (Path(job.model_path), Path(job.config_path)) for job in jobs}

    def signature(uid: int) -> WeightSignature | None:
        if uid not in paths:
            return None
        model_path, config_path = paths[uid]
        return stored_signature(model_path=model_path, config_path=config_path, limits=limits)

    found = find_near_duplicates(
        submissions, agreement_ppm=ctx.config.near_duplicate_agreement_ppm, signature=signature
    )
    return {uid: finding.reason() for uid, finding in sorted(found.items())}
