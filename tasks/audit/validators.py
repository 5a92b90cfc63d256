"""Validator audit: how far each validator's weights are from the reference, copiers, laggards.

``audit_validators`` walks the committed epochs ``first..last`` of a subnet once
(``tasks.audit.history.stored_epochs``) and, for every audited validator, compares the weights
consensus read from it (the ``weights`` record) with two rankings of the epoch's miners:

- the REFERENCE ranking: the hosted evaluation's mean score of each miner in that epoch (the
  ``uids`` record's ``score``, the mean of the ``scores`` record; miners without a finite score
  are left out). Hosted validators run the reference code on the ledger's seed and sample, so
  their scores are the reference. Whether the stored scores are what the evaluation gives is
  checked by replaying it: ``reference_check`` (e.g. ``tasks.audit.replay.replay_epoch`` from
  ``evaluate``) is called on a seeded sample of at most ``REFERENCE_SAMPLE_EPOCHS`` epochs and
  any difference is reported (``AuditReport.reference_problems``);
- LAST epoch's consensus (the previous epoch's ``uids`` record's ``consensus``), which is public
  when this epoch's weights are set and is what a weight copier submits.

Statistics (per validator over the range; an epoch counts where both correlations are defined):

- ``mean_rank_corr``: mean Spearman correlation (ties averaged, ``stats.spearman``) between the
  validator's weights and the reference scores.
- ``copy_score``: mean over epochs of d_e = ρ(weights_e, consensus_{e−1}) − ρ(weights_e,
  scores_e). An honest validator's weights follow this epoch's scores at least as well as last
  epoch's consensus (d ≈ 0 or below); a copier's follow the consensus (d > 0).
- ``copy_p_value``: one-sided sign test of "d_e > 0 more often than chance" (Binomial(n, ½),
  n = epochs with d_e ≠ 0). A validator is flagged ``copier`` when ``copy_score ≥
  COPY_SCORE_MIN`` AND ``copy_p_value ≤ COPY_P_VALUE_MAX``: its weights track last epoch's
  consensus better than this epoch's scores, by a margin, in significantly many epochs. The sign
  test needs at least 5 informative epochs to reach p ≤ 0.05 (½⁵ = 0.031), so shorter ranges
  never flag a copier.
- ``max_lag_blocks``: the largest (epoch block − commit block) of the weights consensus used
  (external validators: the revealed weights' commit block, ``EpochContext.external_weights``;
  hosted validators set weights in the epoch's own block: 0). ``stale_epochs``: the longest run
  of consecutive epochs that re-used one commit. Flag ``laggard`` when the lag exceeds
  ``max_lag_blocks`` (default ``LAG_TEMPOS_MAX`` tempos) or the run reaches
  ``STALE_EPOCHS_MIN``; flag ``no-weights`` when a validator set no weights in the range.

Invariants: read-only; one forward pass over the range (bounded by ``EPOCHS_PER_WALK_MAX``);
validators are keyed by hotkey (a uid can change hands) and listed by their latest uid; only
external validators are audited unless ``include_hosted``; money is integer rao (the uids
record's ``emission_rao``: a validator's dividends, its delegators' part included).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from taoflow.ledger.store import Ledger
from taoflow.tasks.audit.history import StoredEpoch, read_records, stored_epochs, uid_column
from taoflow.tasks.audit.stats import spearman

COPY_SCORE_MIN: Final = 0.005
"""Least mean ρ(weights, last consensus) − ρ(weights, scores) that flags a copier."""
COPY_P_VALUE_MAX: Final = 0.05
"""Largest one-sided sign-test p-value that flags a copier."""
LAG_TEMPOS_MAX: Final = 2
"""Default laggard bound: weights committed more than this many tempos before the epoch."""
STALE_EPOCHS_MIN: Final = 3
"""Consecutive epochs on one weights commit that flag a laggard."""
REFERENCE_SAMPLE_EPOCHS: Final = 3
"""Most epochs whose evaluation ``reference_check`` re-runs."""
REFERENCE_SAMPLE_SEED: Final = 12
FLAGS: Final = ("copier", "laggard", "no-weights")
HOTKEY_CHARS_SHOWN: Final = 10

ReferenceCheck = Callable[[StoredEpoch], str | None]
"""Re-runs an epoch's reference evaluation: ``None`` if it reproduces the stored scores."""


@dataclass(frozen=True)
class ValidatorAudit:
    """One validator over the audited range."""

    uid: int
    hotkey: str
    hosted: bool
    stake_rao: int
    epochs: int
    """Epochs of the range in which it was a validator."""
    epochs_with_weights: int
    mean_rank_corr: float | None
    copy_score: float | None
    copy_epochs: int
    """Epochs in which both correlations were defined (the copier statistic's n)."""
    copy_p_value: float | None
    max_lag_blocks: int | None
    stale_epochs: int
    dividends_rao: int
    flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["flags"] = list(self.flags)
        return out


@dataclass(frozen=True)
class AuditReport:
    """The audit of ``subnet``'s epochs ``first..last``."""

    subnet: str
    first: int
    last: int
    include_hosted: bool
    max_lag_blocks: int
    validators: tuple[ValidatorAudit, ...]
    reference_checked: tuple[int, ...] = ()
    """Epochs whose reference evaluation was re-run (``reference_check``)."""
    reference_problems: Mapping[int, str] = field(default_factory=dict)

    def flagged(self, flag: str) -> list[ValidatorAudit]:
        return [v for v in self.validators if flag in v.flags]

    @property
    def reference(self) -> str:
        """How the reference ranking was established, in words."""
        if not self.reference_checked:
            return "stored hosted scores (evaluation not re-run)"
        epochs = ", ".join(str(e) for e in self.reference_checked)
        if not self.reference_problems:
            return f"stored hosted scores; evaluation re-run identically for epochs {epochs}"
        return f"stored hosted scores; evaluation re-run for epochs {epochs}: DIFFERENCES"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subnet": self.subnet,
            "epochs": [self.first, self.last],
            "include_hosted": self.include_hosted,
            "reference": self.reference,
            "reference_checked": list(self.reference_checked),
            "reference_problems": {str(e): p for e, p in sorted(self.reference_problems.items())},
            "thresholds": {
                "copy_score_min": COPY_SCORE_MIN,
                "copy_p_value_max": COPY_P_VALUE_MAX,
                "max_lag_blocks": self.max_lag_blocks,
                "stale_epochs_min": STALE_EPOCHS_MIN,
            },
            "validators": [v.to_dict() for v in self.validators],
        }


@dataclass
class _Tally:
    """What one validator accumulated over the walk (mutable while walking only)."""

    hotkey: str
    uid: int = 0
    hosted: bool = True
    stake_rao: int = 0
    epochs: int = 0
    epochs_with_weights: int = 0
    reference_corrs: list[float] = field(default_factory=list)
    copy_differences: list[float] = field(default_factory=list)
    max_lag_blocks: int | None = None
    last_commit_block: int | None = None
    run_epochs: int = 0
    stale_epochs: int = 0
    dividends_rao: int = 0


def sign_test_p_value(differences: Iterable[float]) -> float | None:
    """One-sided sign test: P(at least k of n non-zero differences > 0 | each ½); ``None``
    when every difference is zero."""
    nonzero = [d for d in differences if d != 0.0]
    n = len(nonzero)
    if n == 0:
        return None
    k = sum(1 for d in nonzero if d > 0.0)
    return math.fsum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


def _weight_matrix(stored: StoredEpoch, validators: list[int], miners: np.ndarray) -> np.ndarray:
    """Dense u16 weights [validator, miner] (indices of the lists) from the ``weights`` record."""
    dense = np.zeros((len(validators), miners.size), dtype=np.float64)
    table = stored.records.get("weights")
    if table is None or not validators or miners.size == 0:
        return dense
    row_of = np.full(stored.ctx.n + 1, -1, dtype=np.int64)
    row_of[np.asarray(validators, dtype=np.int64)] = np.arange(len(validators))
    col_of = np.full(stored.ctx.n + 1, -1, dtype=np.int64)
    col_of[miners] = np.arange(miners.size)
    v = np.clip(table.column("validator").to_numpy(), 0, stored.ctx.n)
    m = np.clip(table.column("miner").to_numpy(), 0, stored.ctx.n)
    keep = (row_of[v] >= 0) & (col_of[m] >= 0)
    dense[row_of[v[keep]], col_of[m[keep]]] = table.column("weight_u16").to_numpy()[keep]
    return dense


def _audited(stored: StoredEpoch, *, include_hosted: bool) -> list[int]:
    ctx = stored.ctx
    return [
        n.uid
        for n in ctx.neurons
        if n.role == "validator" and (include_hosted or not ctx.is_hosted_validator(n.uid))
    ]


def _lag_blocks(stored: StoredEpoch, uid: int) -> tuple[int | None, int | None]:
    """(lag in blocks, commit block) of the weights consensus used for ``uid``."""
    ctx = stored.ctx
    if ctx.is_hosted_validator(uid):
        return 0, ctx.block
    external = ctx.external_weights.get(uid)
    if external is None:
        return None, None
    return ctx.block - external[1], external[1]


def _observe(
    tally: _Tally,
    stored: StoredEpoch,
    *,
    uid: int,
    weights: np.ndarray,
    reference: np.ndarray,
    previous: np.ndarray | None,
) -> None:
    """Add one epoch of validator ``uid`` (``weights``: its row over the reference miners)."""
    neuron = stored.ctx.neurons[uid]
    tally.uid, tally.stake_rao = uid, neuron.stake_rao
    tally.hosted = stored.ctx.is_hosted_validator(uid)
    tally.epochs += 1
    emission = uid_column(stored, "emission_rao")
    tally.dividends_rao += int(emission[uid]) if uid < emission.size else 0
    lag, commit_block = _lag_blocks(stored, uid)
    has_weights = bool(np.any(weights > 0))
    if has_weights:
        tally.epochs_with_weights += 1
    if lag is not None and has_weights:
        tally.max_lag_blocks = max(lag, tally.max_lag_blocks or 0)
        same = commit_block == tally.last_commit_block and not tally.hosted
        tally.run_epochs = tally.run_epochs + 1 if same else 1
        tally.stale_epochs = max(tally.stale_epochs, tally.run_epochs if not tally.hosted else 0)
        tally.last_commit_block = commit_block
    ref_corr = spearman(weights, reference) if has_weights else None
    if ref_corr is None:
        return
    tally.reference_corrs.append(ref_corr)
    prev_corr = spearman(weights, previous) if previous is not None else None
    if prev_corr is not None:
        tally.copy_differences.append(prev_corr - ref_corr)


def _epoch(
    tallies: dict[str, _Tally],
    stored: StoredEpoch,
    *,
    previous_consensus: np.ndarray | None,
    include_hosted: bool,
) -> None:
    score = uid_column(stored, "score")
    miners = np.flatnonzero(np.isfinite(score)) if score.size else np.zeros(0, dtype=np.int64)
    validators = _audited(stored, include_hosted=include_hosted)
    dense = _weight_matrix(stored, validators, miners)
    previous = None
    if previous_consensus is not None and miners.size and previous_consensus.size > miners.max():
        previous = previous_consensus[miners]
    for index, uid in enumerate(validators):
        hotkey = stored.ctx.neurons[uid].hotkey
        tally = tallies.setdefault(hotkey, _Tally(hotkey=hotkey))
        _observe(
            tally, stored, uid=uid, weights=dense[index], reference=score[miners], previous=previous
        )


def _flags(tally: _Tally, *, max_lag_blocks: int) -> tuple[tuple[str, ...], float | None]:
    flags = []
    p_value = sign_test_p_value(tally.copy_differences)
    copy_score = float(np.mean(tally.copy_differences)) if tally.copy_differences else None
    if (
        copy_score is not None
        and p_value is not None
        and copy_score >= COPY_SCORE_MIN
        and p_value <= COPY_P_VALUE_MAX
    ):
        flags.append("copier")
    lagging = tally.max_lag_blocks is not None and tally.max_lag_blocks > max_lag_blocks
    if lagging or tally.stale_epochs >= STALE_EPOCHS_MIN:
        flags.append("laggard")
    if tally.epochs_with_weights == 0:
        flags.append("no-weights")
    return tuple(flags), p_value


def _result(tally: _Tally, *, max_lag_blocks: int) -> ValidatorAudit:
    flags, p_value = _flags(tally, max_lag_blocks=max_lag_blocks)
    corrs, diffs = tally.reference_corrs, tally.copy_differences
    return ValidatorAudit(
        uid=tally.uid,
        hotkey=tally.hotkey,
        hosted=tally.hosted,
        stake_rao=tally.stake_rao,
        epochs=tally.epochs,
        epochs_with_weights=tally.epochs_with_weights,
        mean_rank_corr=float(np.mean(corrs)) if corrs else None,
        copy_score=float(np.mean(diffs)) if diffs else None,
        copy_epochs=len(diffs),
        copy_p_value=p_value,
        max_lag_blocks=tally.max_lag_blocks,
        stale_epochs=tally.stale_epochs,
        dividends_rao=tally.dividends_rao,
        flags=flags,
    )


def reference_sample(first: int, last: int, *, epochs: int = REFERENCE_SAMPLE_EPOCHS) -> list[int]:
    """The epochs of ``first..last`` whose evaluation is re-run: a seeded sample, sorted."""
    population = range(first, last + 1)
    count = min(max(epochs, 0), len(population))
    return sorted(random.Random(REFERENCE_SAMPLE_SEED).sample(population, count))


def _consensus_before(ledger: Ledger, *, subnet: str, first: int) -> np.ndarray | None:
    if first == 0:
        return None
    records, _ = read_records(ledger, subnet=subnet, epoch=first - 1)
    uids = records.get("uids")
    if uids is None:
        return None
    return np.asarray(uids.column("consensus").to_numpy(zero_copy_only=False))


def audit_validators(
    ledger: Ledger,
    *,
    subnet: str,
    first: int,
    last: int,
    include_hosted: bool = False,
    max_lag_blocks: int | None = None,
    reference_check: ReferenceCheck | None = None,
) -> AuditReport:
    """Audit ``subnet``'s validators over epochs ``first..last`` (see the module docstring)."""
    tallies: dict[str, _Tally] = {}
    previous = _consensus_before(ledger, subnet=subnet, first=first)
    sample = set(reference_sample(first, last)) if reference_check is not None else set()
    checked: list[int] = []
    problems: dict[int, str] = {}
    lag_bound = max_lag_blocks
    for stored in stored_epochs(ledger, subnet=subnet, first=first, last=last):
        if lag_bound is None:
            lag_bound = LAG_TEMPOS_MAX * stored.ctx.tempo_blocks
        _epoch(tallies, stored, previous_consensus=previous, include_hosted=include_hosted)
        consensus = uid_column(stored, "consensus")
        previous = consensus if consensus.size else None
        if reference_check is not None and stored.epoch in sample:
            checked.append(stored.epoch)
            problem = reference_check(stored)
            if problem is not None:
                problems[stored.epoch] = problem
    bound = lag_bound if lag_bound is not None else 0
    results = sorted(
        (_result(t, max_lag_blocks=bound) for t in tallies.values()), key=lambda v: v.uid
    )
    return AuditReport(
        subnet=subnet,
        first=first,
        last=last,
        include_hosted=include_hosted,
        max_lag_blocks=bound,
        validators=tuple(results),
        reference_checked=tuple(checked),
        reference_problems=problems,
    )


def audit_table(report: AuditReport) -> pa.Table:
    """The per-validator table (one row per validator) for files and MLflow."""
    rows = [v.to_dict() for v in report.validators]
    for row in rows:
        row["flags"] = ",".join(row["flags"])
    return pa.Table.from_pylist(rows) if rows else pa.table({"uid": pa.array([], pa.int64())})


def audit_markdown(report: AuditReport) -> str:
    """The report as markdown (Prefect artifact): what was audited, thresholds, one row each."""
    from taoflow.ledger.payouts import tao_text

    who = "all validators" if report.include_hosted else "external validators"
    lines = [
        f"# {report.subnet} · audit · epochs {report.first}..{report.last} ({who})",
        "",
        f"- reference: {report.reference}",
        f"- copier: copy score ≥ {COPY_SCORE_MIN} and sign-test p ≤ {COPY_P_VALUE_MAX}",
        f"- laggard: weights older than {report.max_lag_blocks} blocks, or one commit for "
        f"≥ {STALE_EPOCHS_MIN} epochs",
        "",
        "| uid | hotkey | stake τ | rank corr | copy score | copy p | lag blocks | flags "
        "| paid τ |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]

    def number(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    for v in report.validators:
        lag = "—" if v.max_lag_blocks is None else str(v.max_lag_blocks)
        lines.append(
            f"| {v.uid} | `{v.hotkey[:HOTKEY_CHARS_SHOWN]}…`{' (hosted)' if v.hosted else ''} | "
            f"{tao_text(v.stake_rao)} | {number(v.mean_rank_corr, 3)} | "
            f"{number(v.copy_score, 4)} | {number(v.copy_p_value, 4)} | {lag} | "
            f"{', '.join(v.flags) or 'ok'} | {tao_text(v.dividends_rao)} |"
        )
    return "\n".join(lines)


def replay_reference_check(
    *, client: Any, artifacts_root: Any, fetch_policy: Any, ledger: Ledger
) -> ReferenceCheck:
    """A ``ReferenceCheck`` that replays an epoch's evaluation (``tasks.audit.replay``) and
    reports the first evaluation difference, if any (later stages are not the reference)."""
    from taoflow.tasks.audit.replay import replay_epoch

    def check(stored: StoredEpoch) -> str | None:
        report = replay_epoch(
            stored,
            from_stage="evaluate",
            client=client,
            artifacts_root=artifacts_root,
            fetch_policy=fetch_policy,
            ledger=ledger,
        )
        if report.first_difference != "evaluate":
            return None
        first = report.differences[0] if report.differences else None
        where = f": {first.record} uid {first.uid}" if first is not None else ""
        return f"evaluation differs ({report.differences_total} differences){where}"

    return check
