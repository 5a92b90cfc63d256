"""Replay: re-run one committed epoch from its stored inputs and compare, row by row.

``replay_epoch`` recomputes an epoch (``tasks.audit.history.StoredEpoch``) with the pipeline's
own stage functions and compares every result with what the ledger holds:

1. **evaluate** -- every committed artifact is read from the content-addressed store
   (``tasks.artifact_store.locate``; a missing one is fetched under ``fetch_policy`` by the
   evaluation itself) and its bytes must hash to the committed digest: an artifact that does not
   is one difference per uid (record ``artifact``) and is scored as the pipeline scores an
   unreadable model (0, with the reason), never on the bytes found. The sample is rebuilt from
   the epoch seed (``ctx.seed_hex``) and the evaluation set, whose hash must match the subnet's
   (``tasks.evaluate.stage.evaluate_epoch``). Compared: the ``scores`` record; the ``uids``
   record's ``error``, ``artifact_digest`` and ``score`` columns; the payload's ``evaluation``.
2. **consensus** -- weights re-derived from the scores (``tasks.shells.hosted_weights`` plus the
   external validators' revealed rows, as the consensus task does), then Yuma consensus
   (``tasks.consensus.stage.run_consensus``). Compared: the ``weights`` and ``bonds`` records
   and every other column of the ``uids`` record except ``emission_rao``.
3. **emit** -- integer shares (``EpochShares.from_consensus``) → the ledger's plan
   (``tasks.emit.plan_from_context``, or for a re-planned epoch the plan of the state right
   before its batch). Compared: the payload's ``shares``, ``scheduled_rao`` and
   ``unissued_rao``; each payout row (kind, uid, coldkey → hotkey, amount_rao) of the batch;
   the ``uids`` record's ``emission_rao``.

Where a replay starts (``from_stage``):
- ``evaluate`` (default): everything above, from the artifacts.
- ``consensus``: starts from the STORED ``scores`` record and the payload's evaluation errors
  and sample size (the scores are inputs, not compared); weights are re-derived from them.
- ``emit``: starts from the STORED ``uids`` record's ``incentive``, ``dividends`` and
  ``validator_emission_share`` columns (quantised as the emit stage does) and the payload's
  evaluation errors; only step 3 is compared.

Invariants:
- Nothing here writes. The report names the FIRST stage that differs and stops there (later
  stages would only repeat the consequence); differences are listed in stage order, at most
  ``DIFFERENCES_SHOWN_MAX`` of them, with the total count.
- A record that fails its hash (``StoredEpoch.record_problems``) is itself a difference: at the
  stage that finds a row of it different (listed with those rows), else, if no replayed stage
  compares it or it cannot be read, at the first replayed stage (it is an unchecked input),
  else at the last one.
- Floats are compared exactly (bit for bit; NaN equals NaN), with one documented exception: the
  evaluation's scores on CUDA, below. Consensus is bit-for-bit reproducible because the DuckDB
  epoch adds its float sums in one order (``tasks.consensus.sql.CONSENSUS_THREADS``).
- CUDA tolerance: a model's predictions on a GPU can differ from the CPU's in the last bits of
  its logits, which can flip the argmax of a row whose top two logits (nearly) tie, and the
  ledger does not record the device an epoch was evaluated on. When the replay's evaluation runs
  on CUDA (the cluster advertises a GPU) a score may differ from the stored one by at most
  ``CUDA_TOLERANCE_ROWS`` row of the validator's sample (1 / sample rows); errors, digests and
  everything after evaluation are still compared exactly, and consensus then starts from the
  STORED scores, so weights, consensus and payouts are checked bit for bit. ``tolerance_rows``
  overrides the choice (e.g. 1 on CPU to replay an epoch that was evaluated on a GPU).
- ``adjust_context`` (fault injection for tests) changes the epoch's inputs before the replay.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.epoch_records import UID_FLOAT_COLUMNS
from taoflow.ledger.payouts import EpochPlan, EpochShares
from taoflow.ledger.schema import Kind
from taoflow.ledger.store import Ledger
from taoflow.ledger.table_hash import table_sha256
from taoflow.tasks.audit.history import StoredEpoch
from taoflow.tasks.gather import EpochContext

Stage = Literal["evaluate", "consensus", "emit"]
STAGES: Final[tuple[Stage, ...]] = ("evaluate", "consensus", "emit")
DIFFERENCES_SHOWN_MAX: Final = 50
"""Differences a report keeps (the total is counted in full)."""
CUDA_TOLERANCE_ROWS: Final = 1
"""Sample rows by which a score replayed on CUDA may differ (one flipped argmax tie)."""
SIMULATED_URI_PREFIX: Final = "simulated://"
"""Submission uris of a simulated network (``tasks.simulate``): no artifact to evaluate."""
ARTIFACT_BYTES_MAX: Final = 1 << 30
"""Largest artifact file the digest check reads (a subnet's ``bytes_max`` is far below)."""
PAIR_KEYS: Final = ("validator", "miner")
UID_KEYS: Final = ("uid",)
PAYOUT_KEYS: Final = ("kind", "uid", "coldkey")
PAYOUT_COLUMNS: Final = ("kind", "uid", "coldkey", "hotkey", "amount_rao")
EVALUATE_UID_COLUMNS: Final = ("error", "artifact_digest", "score")
CONSENSUS_UID_COLUMNS: Final = ("hotkey", "stake_rao", "permit", "active", *UID_FLOAT_COLUMNS)
SHARE_LISTS: Final = (
    ("incentive", "incentive_q"),
    ("dividends", "dividends_q"),
    ("validator_share", "validator_share_q"),
)
PAYOUT_ROWS: Final = "payout rows"
EXACT: Final = (
    "cpu: bit for bit (artifacts, scores, weights, consensus vectors, bonds, shares, payouts)"
)

Value = int | float | str | bool | None


class ReplayError(ValueError):
    """A replay that cannot be run as asked (one line, for the user)."""


@dataclass(frozen=True)
class Difference:
    """One value the replay computed differently from the ledger."""

    stage: str
    record: str
    """``scores``, ``weights``, ``bonds``, ``uids``, ``payouts``, ``shares``, ``evaluation``,
    ``epoch`` (the payload's amounts) or ``artifact``."""
    column: str
    uid: int | None = None
    """The uid concerned (the miner for a matrix record)."""
    validator: int | None = None
    account: str | None = None
    """The coldkey of a payout row."""
    stored: Value = None
    replayed: Value = None

    @property
    def delta(self) -> int | float | None:
        """replayed − stored, when both are numbers."""
        a, b = self.stored, self.replayed
        if isinstance(a, bool) or isinstance(b, bool):
            return None
        if isinstance(a, int | float) and isinstance(b, int | float):
            return b - a
        return None

    def to_dict(self) -> dict[str, Any]:
        out = {k: _json_value(v) for k, v in asdict(self).items()}
        out["delta"] = _json_value(self.delta)
        return out


@dataclass(frozen=True)
class HashComparison:
    """A stored record's (or the payout rows') sha256 beside the replayed table's."""

    name: str
    stored_sha256: str
    replayed_sha256: str | None
    """``None``: this table was an input of the replay, not recomputed."""

    @property
    def identical(self) -> bool:
        return self.replayed_sha256 == self.stored_sha256


@dataclass(frozen=True)
class ReplayReport:
    """What a replay of one epoch found."""

    subnet: str
    epoch: int
    batch_no: int
    batch_hash: str
    from_stage: str
    stages: tuple[str, ...]
    """The stages replayed (up to and including the first that differs)."""
    first_difference: str | None
    """The first stage that differs; ``None`` when the epoch replays identically."""
    differences: tuple[Difference, ...]
    differences_total: int
    hashes: tuple[HashComparison, ...]
    device: str
    """Where the evaluation ran (``cpu``, ``cuda``), or ``""`` when it was not replayed."""
    tolerance: str
    seconds: float

    @property
    def identical(self) -> bool:
        return self.first_difference is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subnet": self.subnet,
            "epoch": self.epoch,
            "batch_no": self.batch_no,
            "batch_hash": self.batch_hash,
            "from_stage": self.from_stage,
            "stages": list(self.stages),
            "identical": self.identical,
            "first_difference": self.first_difference,
            "differences": [d.to_dict() for d in self.differences],
            "differences_total": self.differences_total,
            "hashes": [{**asdict(h), "identical": h.identical} for h in self.hashes],
            "device": self.device,
            "tolerance": self.tolerance,
            "seconds": round(self.seconds, 6),
        }


def _json_value(value: Value) -> Value:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# ---- comparing tables --------------------------------------------------------------------------


def _same(a: Value, b: Value, *, tolerance: float) -> bool:
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return tolerance > 0 and abs(a - b) <= tolerance
    return False


def compare_tables(
    *,
    stage: str,
    name: str,
    stored: pa.Table | None,
    replayed: pa.Table,
    keys: Sequence[str],
    columns: Sequence[str],
    tolerance: Mapping[str, float] | None = None,
) -> list[Difference]:
    """Every (row, column) of ``columns`` where ``replayed`` differs from ``stored``, rows
    matched by ``keys`` (a row on one side only is one difference, in ``columns[0]``).
    ``tolerance``: column → largest absolute float difference accepted (default exact)."""
    if stored is None:
        return []
    wanted = [*keys, *columns]
    left, right = stored.select(wanted), replayed.select(wanted)
    with contextlib.suppress(pa.ArrowException, ValueError, TypeError):
        right = right.cast(left.schema)  # nullability and metadata only: the types are equal
    if not tolerance and left.equals(right):
        return []
    stored_rows = {tuple(r[k] for k in keys): r for r in left.to_pylist()}
    replayed_rows = {tuple(r[k] for k in keys): r for r in right.to_pylist()}
    out: list[Difference] = []
    for key in sorted(stored_rows.keys() | replayed_rows.keys(), key=_sort_key):
        a, b = stored_rows.get(key), replayed_rows.get(key)
        for column in columns if a is not None and b is not None else columns[:1]:
            value_a = None if a is None else a[column]
            value_b = None if b is None else b[column]
            allowed = (tolerance or {}).get(column, 0.0)
            if a is not None and b is not None and _same(value_a, value_b, tolerance=allowed):
                continue
            out.append(
                _difference(
                    stage, name, column, dict(zip(keys, key, strict=True)), value_a, value_b
                )
            )
    return out


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(f"{v:020d}" if isinstance(v, int) else str(v) for v in key)


def _difference(
    stage: str, name: str, column: str, key: Mapping[str, Any], stored: Value, replayed: Value
) -> Difference:
    uid = key.get("miner", key.get("uid"))
    if "kind" in key:  # a payout row: the column names the kind, the owner's row has no uid
        column = f"{key['kind']}.{column}"
        uid = None if uid is None or uid < 0 else uid
    return Difference(
        stage=stage,
        record=name,
        column=column,
        uid=uid,
        validator=key.get("validator"),
        account=key.get("coldkey"),
        stored=stored,
        replayed=replayed,
    )


def _compare_values(
    stage: str, record: str, pairs: Iterable[tuple[str, int | None, Value, Value]]
) -> list[Difference]:
    """Differences of (column, uid, stored, replayed) items that are not equal."""
    return [
        Difference(stage=stage, record=record, column=c, uid=u, stored=a, replayed=b)
        for c, u, a, b in pairs
        if not _same(a, b, tolerance=0.0)
    ]


# ---- evaluate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluation:
    """The evaluation consensus starts from: scores, errors and the validators' sample size."""

    scores: dict[int, dict[int, float]]
    errors: dict[int, str]
    sample_size: int
    correctness: Any = None
    """Per-row correctness from a replayed evaluation (``EpochCorrectness``); the ledger does
    not store it, so a replay from the stored scores has none."""


@dataclass(frozen=True)
class _StageResult:
    differences: list[Difference]
    compared: frozenset[str]
    """Records this stage compared row by row."""
    hashes: tuple[HashComparison, ...] = ()


def stored_evaluation(stored: StoredEpoch) -> _Evaluation:
    """The evaluation as the ledger holds it: the ``scores`` record as stored and the payload's
    ``evaluation`` (rejected uids with why, the validators' sample size)."""
    scores: dict[int, dict[int, float]] = {}
    table = stored.records.get("scores")
    if table is not None:
        for v, m, s in zip(
            table.column("validator").to_pylist(),
            table.column("miner").to_pylist(),
            table.column("score").to_pylist(),
            strict=True,
        ):
            scores.setdefault(int(v), {})[int(m)] = float(s)
    evaluation = stored.payload.get("evaluation") or {}
    errors = {int(uid): str(why) for uid, why in (evaluation.get("errors") or {}).items()}
    return _Evaluation(scores, errors, int(evaluation.get("sample_size", 0)))


def artifact_mismatches(ctx: EpochContext, *, artifacts_root: Path) -> dict[int, str]:
    """uid → the digest its stored artifact's bytes hash to, for each artifact in the store
    that does not hash to the digest the epoch committed (a missing artifact is not listed:
    the evaluation reports it)."""
    from taoflow.tasks.artifact_store import locate
    from taoflow.tasks.models.artifacts import artifact_digest

    out: dict[int, str] = {}
    for neuron in ctx.neurons:
        if neuron.artifact_digest is None:
            continue
        where = locate(artifacts_root, neuron.artifact_digest)
        if not (where.model_path.is_file() and where.config_path.is_file()):
            continue
        sizes = (where.model_path.stat().st_size, where.config_path.stat().st_size)
        if max(sizes) > ARTIFACT_BYTES_MAX:
            out[neuron.uid] = f"larger than {ARTIFACT_BYTES_MAX} bytes"
            continue
        found = artifact_digest(
            model_bytes=where.model_path.read_bytes(), config_bytes=where.config_path.read_bytes()
        )
        if found != neuron.artifact_digest:
            out[neuron.uid] = found
    return out


def _evaluate(
    ctx: EpochContext,
    *,
    client: Any,
    artifacts_root: Path,
    fetch_policy: Any,
) -> tuple[_Evaluation, dict[int, str], str]:
    """Re-score every artifact (tampered ones score 0 with the reason); the device used."""
    from taoflow.tasks.evaluate.fanout import cluster_route
    from taoflow.tasks.evaluate.stage import evaluate_epoch

    device = cluster_route(client).device
    outcome = evaluate_epoch(
        ctx, client=client, artifacts_root=artifacts_root, fetch_policy=fetch_policy
    )
    tampered = artifact_mismatches(ctx, artifacts_root=artifacts_root)
    errors = dict(outcome.errors)
    scores = {v: dict(row) for v, row in outcome.scores.items()}
    for uid in tampered:
        errors[uid] = f"artifact of uid {uid} does not hash to its committed digest"
        for row in scores.values():
            row[uid] = 0.0
    replayed = _Evaluation(scores, errors, outcome.sample_size, outcome.correctness)
    return replayed, tampered, device.split(":")[0]


def _evaluate_stage(
    stored: StoredEpoch,
    ctx: EpochContext,
    evaluation: _Evaluation,
    *,
    tampered: Mapping[int, str],
    tolerance_rows: int,
) -> _StageResult:
    from taoflow.tasks.records import mean_scores, scores_table

    stage = "evaluate"
    diffs = [
        Difference(
            stage,
            "artifact",
            "digest",
            uid=uid,
            stored=ctx.neurons[uid].artifact_digest,
            replayed=found,
        )
        for uid, found in sorted(tampered.items())
    ]
    scored = scores_table(evaluation.scores)
    rows = max(evaluation.sample_size, 1)
    tolerance = {"score": tolerance_rows / rows * (1 + 1e-9)} if tolerance_rows else None
    diffs += compare_tables(
        stage=stage,
        name="scores",
        stored=stored.records.get("scores"),
        replayed=scored,
        keys=PAIR_KEYS,
        columns=("score",),
        tolerance=tolerance,
    )
    uids = pa.table(
        {
            "uid": pa.array(np.arange(ctx.n, dtype=np.int32)),
            "error": pa.array([evaluation.errors.get(u, "") for u in range(ctx.n)], pa.string()),
            "artifact_digest": pa.array(
                [n.artifact_digest or "" for n in ctx.neurons], pa.string()
            ),
            "score": pa.array(mean_scores(scored, uids=ctx.n)),
        }
    )
    diffs += compare_tables(
        stage=stage,
        name="uids",
        stored=stored.records.get("uids"),
        replayed=uids,
        keys=UID_KEYS,
        columns=EVALUATE_UID_COLUMNS,
        tolerance=tolerance,
    )
    ledger_view = stored_evaluation(stored)
    uids_seen = sorted(ledger_view.errors.keys() | evaluation.errors.keys())
    diffs += _compare_values(
        stage,
        "evaluation",
        [
            ("sample_size", None, ledger_view.sample_size, evaluation.sample_size),
            *(("error", u, ledger_view.errors.get(u), evaluation.errors.get(u)) for u in uids_seen),
        ],
    )
    hashes = (_hash_of(stored, "scores", scored),)
    return _StageResult(diffs, frozenset({"scores", "uids"}), hashes)


def _hash_of(stored: StoredEpoch, name: str, replayed: pa.Table | None) -> HashComparison:
    from taoflow.ledger.epoch_records import conform

    digest = None if replayed is None else table_sha256(conform(name, replayed))
    return HashComparison(name, stored.record_hashes.get(name, ""), digest)


# ---- consensus ----------------------------------------------------------------------------------


def _consensus(ctx: EpochContext, evaluation: _Evaluation) -> Any:
    """The consensus task's own computation (``tasks.shells.consensus_of``) on ``evaluation``."""
    from taoflow.tasks.evaluate.stage import EvaluationOutcome
    from taoflow.tasks.shells import consensus_of
    from taoflow.tasks.weights import InvalidValidatorPolicy

    outcome = EvaluationOutcome(
        scores=evaluation.scores,
        errors=evaluation.errors,
        sample_size=evaluation.sample_size,
        correctness=evaluation.correctness,
    )
    try:
        return consensus_of(ctx, outcome)
    except InvalidValidatorPolicy as exc:
        if evaluation.correctness is not None:
            raise
        raise ReplayError(
            f"{exc}; the ledger keeps each validator's scores, not each row's correctness: "
            "replay this epoch from --stage evaluate"
        ) from None


def _consensus_stage(
    stored: StoredEpoch, ctx: EpochContext, evaluation: _Evaluation
) -> tuple[_StageResult, Any, Any, bool]:
    """Weights → consensus, compared; the outcome, the epoch's records (before payment) and
    whether the float64 consensus vectors equal the stored ones bit for bit."""
    from taoflow.tasks.records import epoch_records

    stage = "consensus"
    outcome = _consensus(ctx, evaluation)
    records = epoch_records(
        ctx,
        outcome,
        scores=evaluation.scores,
        errors=evaluation.errors,
        sample_size=evaluation.sample_size,
    )
    diffs = compare_tables(
        stage=stage,
        name="weights",
        stored=stored.records.get("weights"),
        replayed=records.weights,
        keys=PAIR_KEYS,
        columns=("weight_u16",),
    )
    uids_args: dict[str, Any] = dict(
        stage=stage,
        name="uids",
        stored=stored.records.get("uids"),
        replayed=records.uids,
        keys=UID_KEYS,
        columns=CONSENSUS_UID_COLUMNS,
    )
    uid_diffs = compare_tables(**uids_args)
    diffs += uid_diffs
    exact = not uid_diffs
    diffs += compare_tables(
        stage=stage,
        name="bonds",
        stored=stored.records.get("bonds"),
        replayed=records.bonds,
        keys=PAIR_KEYS,
        columns=("bond_u16",),
    )
    hashes = (
        _hash_of(stored, "weights", records.weights),
        _hash_of(stored, "bonds", records.bonds),
    )
    result = _StageResult(diffs, frozenset({"weights", "uids", "bonds"}), hashes)
    return result, outcome, records, exact


def shares_of_consensus(ctx: EpochContext, outputs: Any, *, rejected: Iterable[int]) -> EpochShares:
    """The integer shares the emit stage records for consensus ``outputs``."""
    return EpochShares.from_consensus(
        hotkeys=[n.hotkey for n in ctx.neurons],
        incentive=outputs.incentive.tolist(),
        dividends=outputs.dividends.tolist(),
        validator_share=outputs.validator_emission_share.tolist(),
        rejected_uids=frozenset(rejected),
    )


def stored_shares(stored: StoredEpoch, ctx: EpochContext) -> EpochShares:
    """The shares quantised from the STORED ``uids`` record (where ``--stage emit`` starts)."""
    uids = stored.records.get("uids")
    if uids is None:
        raise ReplayError(
            f"epoch {stored.epoch} of {stored.subnet!r} has no readable uids record: "
            "replay it from --stage consensus"
        )
    rejected = stored_evaluation(stored).errors
    return EpochShares.from_consensus(
        hotkeys=[n.hotkey for n in ctx.neurons],
        incentive=uids.column("incentive").to_pylist(),
        dividends=uids.column("dividends").to_pylist(),
        validator_share=uids.column("validator_emission_share").to_pylist(),
        rejected_uids=frozenset(rejected),
    )


# ---- emit ---------------------------------------------------------------------------------------


def payout_table(entries: Iterable[Any]) -> pa.Table:
    """Payout rows (kind, uid, coldkey, hotkey, amount_rao) of plan entries, in batch order."""
    rows = list(entries)
    return pa.table(
        {
            "kind": pa.array([str(Kind(e.kind).value) for e in rows], pa.string()),
            "uid": pa.array([e.uid for e in rows], pa.int64()),
            "coldkey": pa.array([e.coldkey for e in rows], pa.string()),
            "hotkey": pa.array([e.hotkey for e in rows], pa.string()),
            "amount_rao": pa.array([e.amount_rao for e in rows], pa.int64()),
        }
    )


def stored_payouts(stored: StoredEpoch) -> pa.Table:
    """The epoch's payout rows as its batch holds them, in batch order."""
    rows = stored.rows.filter(pc.not_equal(stored.rows.column("kind"), Kind.EPOCH.value))
    return rows.select(list(PAYOUT_COLUMNS))


def _plan(
    stored: StoredEpoch, ctx: EpochContext, shares: EpochShares, *, ledger: Ledger | None
) -> EpochPlan:
    from taoflow.tasks.emit import plan_from_context

    if not stored.replanned:
        return plan_from_context(ctx, shares)
    if ledger is None:
        raise ReplayError(
            f"epoch {stored.epoch} of {stored.subnet!r} was re-planned at commit: "
            "its replay needs the ledger"
        )
    return ledger.state_as_of(stored.batch_no - 1).epoch_plan(stored.subnet, shares)


def _emit_stage(
    stored: StoredEpoch, shares: EpochShares, plan: EpochPlan, uids: pa.Table | None
) -> _StageResult:
    """Shares, amounts and payout rows against the payload and the batch; ``uids`` (the
    replayed ``uids`` record with its emission) against the stored record."""
    stage = "emit"
    payload_shares = stored.payload.get("shares") or {}
    pairs: list[tuple[str, int | None, Value, Value]] = [
        ("scheduled_rao", None, stored.payload.get("scheduled_rao"), plan.scheduled_rao),
        ("unissued_rao", None, stored.payload.get("unissued_rao"), plan.payouts.unissued_rao),
    ]
    diffs = _compare_values(stage, "epoch", pairs)
    share_pairs: list[tuple[str, int | None, Value, Value]] = []
    for name, field_name in (("hotkeys", "hotkeys"), *SHARE_LISTS):
        ledger_list = list(payload_shares.get(name) or [])
        ours = list(getattr(shares, field_name))
        for uid in range(max(len(ledger_list), len(ours))):
            share_pairs.append((name, uid, _at(ledger_list, uid), _at(ours, uid)))
    diffs += _compare_values(stage, "shares", share_pairs)
    replayed_rows = payout_table(plan.entries)
    stored_rows = stored_payouts(stored)
    diffs += compare_tables(
        stage=stage,
        name="payouts",
        stored=stored_rows,
        replayed=replayed_rows,
        keys=PAYOUT_KEYS,
        columns=("amount_rao", "hotkey"),
    )
    compared = {"payouts"}
    if uids is not None:
        diffs += compare_tables(
            stage=stage,
            name="uids",
            stored=stored.records.get("uids"),
            replayed=uids,
            keys=UID_KEYS,
            columns=("emission_rao",),
        )
        compared.add("uids")
    hashes = (
        _hash_of(stored, "uids", uids) if uids is not None else None,
        HashComparison(PAYOUT_ROWS, table_sha256(stored_rows), table_sha256(replayed_rows)),
    )
    return _StageResult(diffs, frozenset(compared), tuple(h for h in hashes if h is not None))


def _at(values: Sequence[Value], index: int) -> Value:
    return values[index] if index < len(values) else None


# ---- the replay ---------------------------------------------------------------------------------


def _hash_problems(stored: StoredEpoch, stage: str, names: Iterable[str]) -> list[Difference]:
    """A difference per record of ``names`` that fails its hash: ``stored`` is the sha256 of
    the table in its file (or why it cannot be read), ``replayed`` the one the epoch commits."""
    out = []
    for name in sorted(names):
        if name not in stored.record_problems:
            continue
        table = stored.records.get(name)
        found = stored.record_problems[name] if table is None else _file_sha256(name, table)
        out.append(
            Difference(stage, name, "sha256", stored=found, replayed=stored.record_hashes.get(name))
        )
    return out


def _file_sha256(name: str, table: pa.Table) -> str:
    from taoflow.ledger.epoch_records import conform

    return table_sha256(conform(name, table))


STAGE_RECORDS: Final[Mapping[str, frozenset[str]]] = {
    "evaluate": frozenset({"scores", "uids"}),
    "consensus": frozenset({"weights", "uids", "bonds"}),
    "emit": frozenset({"uids"}),
}
"""Records each stage compares row by row."""
HASH_ORDER: Final = ("scores", "weights", "bonds", "uids", PAYOUT_ROWS)


def replay_stages(from_stage: str) -> tuple[Stage, ...]:
    """The stages a replay from ``from_stage`` runs (a one-line ``ReplayError`` if unknown)."""
    if from_stage not in STAGES:
        raise ReplayError(f"stage must be one of {', '.join(STAGES)}, got {from_stage!r}")
    return STAGES[STAGES.index(from_stage) :]  # type: ignore[arg-type]


def _check_request(
    stored: StoredEpoch, ctx: EpochContext, *, stages: Sequence[str], ready: bool
) -> None:
    if stages[0] != "evaluate":
        return
    if any((n.artifact_uri or "").startswith(SIMULATED_URI_PREFIX) for n in ctx.neurons):
        raise ReplayError(
            f"epoch {stored.epoch} of {stored.subnet!r} has synthetic scores (a simulated "
            "network: no artifacts to evaluate); replay it with --stage consensus"
        )
    if not ready:
        raise ReplayError("replaying the evaluation needs a Dask client and the artifact store")


class _Problems:
    """Records that fail their hash, each reported once (see the module's invariants)."""

    def __init__(self, stored: StoredEpoch, stages: Sequence[str]) -> None:
        compared = frozenset().union(*(STAGE_RECORDS[s] for s in stages))
        self.stored = stored
        self.pending = set(stored.record_problems)
        self.inputs = {n for n in self.pending if n not in compared or n not in stored.records}
        self.first, self.last = stages[0], stages[-1]

    def settle(self, stage: str, result: _StageResult) -> list[Difference]:
        """The stage's differences, each failing record it must report listed first."""
        mine = self.pending & {d.record for d in result.differences}
        if stage == self.first:
            mine |= self.inputs
        if stage == self.last:
            mine |= self.pending
        self.pending -= mine
        return _hash_problems(self.stored, stage, mine) + result.differences


def _tolerance_text(device: str, rows: int) -> str:
    if not device or rows == 0:
        return EXACT
    return (
        f"{device}: each score to {rows} row(s) of the validator's sample (a GPU's last-bit "
        "logit differences can flip an argmax tie) and consensus started from the stored scores; "
        "artifacts, errors, weights, consensus vectors, bonds, shares and payouts bit for bit"
    )


def replay_epoch(
    stored: StoredEpoch,
    *,
    from_stage: str = "evaluate",
    client: Any = None,
    artifacts_root: Path | None = None,
    fetch_policy: Any = None,
    ledger: Ledger | None = None,
    tolerance_rows: int | None = None,
    adjust_context: Callable[[EpochContext], EpochContext] | None = None,
) -> ReplayReport:
    """Re-run ``stored`` from ``from_stage`` and compare with what the ledger holds.

    ``client`` (a ``distributed.Client``) and ``artifacts_root`` are needed to replay the
    evaluation; ``fetch_policy`` allows a missing artifact to be fetched from its committed uri;
    ``ledger`` is needed only for an epoch re-planned at commit (``StoredEpoch.replanned``).
    ``tolerance_rows``: sample rows a score may differ by (default: 0 on CPU,
    ``CUDA_TOLERANCE_ROWS`` on CUDA). ``adjust_context``: fault injection for tests.
    """
    started_s = time.perf_counter()
    stages = replay_stages(from_stage)
    ctx = adjust_context(stored.ctx) if adjust_context is not None else stored.ctx
    _check_request(
        stored, ctx, stages=stages, ready=client is not None and artifacts_root is not None
    )
    problems = _Problems(stored, stages)
    run = _Run(stored=stored, ctx=ctx, problems=problems)
    evaluation = stored_evaluation(stored)
    device, rows = "", 0
    if "evaluate" in stages:
        assert artifacts_root is not None  # _check_request
        replayed, tampered, device = _evaluate(
            ctx, client=client, artifacts_root=artifacts_root, fetch_policy=fetch_policy
        )
        chosen = tolerance_rows
        rows = chosen if chosen is not None else (CUDA_TOLERANCE_ROWS if device == "cuda" else 0)
        result = _evaluate_stage(stored, ctx, replayed, tampered=tampered, tolerance_rows=rows)
        if run.add("evaluate", result):
            return run.report(from_stage, device=device, rows=rows, started_s=started_s)
        evaluation = replayed if rows == 0 else evaluation
    uids: pa.Table | None = None
    if "consensus" in stages:
        result, outcome, records, exact = _consensus_stage(stored, ctx, evaluation)
        if run.add("consensus", result):
            return run.report(from_stage, device=device, rows=rows, started_s=started_s)
    if "consensus" in stages and exact:
        shares = shares_of_consensus(ctx, outcome.outputs, rejected=evaluation.errors)
        plan = _plan(stored, ctx, shares, ledger=ledger)
        uids = records.tables(plan)["uids"]
    else:  # --stage emit
        shares = stored_shares(stored, ctx)
        plan = _plan(stored, ctx, shares, ledger=ledger)
        uids = _with_emission(stored.records.get("uids"), plan)
    run.add("emit", _emit_stage(stored, shares, plan, uids))
    return run.report(from_stage, device=device, rows=rows, started_s=started_s)


def _with_emission(uids: pa.Table | None, plan: EpochPlan) -> pa.Table | None:
    """The stored ``uids`` record with the emission ``plan`` pays (``--stage emit``)."""
    from taoflow.tasks.records import EMISSION_COLUMN, emission_by_uid

    if uids is None:
        return None
    index = uids.schema.get_field_index(EMISSION_COLUMN)
    emission = pa.array(emission_by_uid(plan, uids=uids.num_rows), type=pa.int64())
    return uids.set_column(index, uids.schema.field(index), emission)


class _Run:
    """The stages replayed so far, their differences and hashes."""

    def __init__(self, *, stored: StoredEpoch, ctx: EpochContext, problems: _Problems) -> None:
        self.stored, self.ctx, self.problems = stored, ctx, problems
        self.stages: list[str] = []
        self.differences: list[Difference] = []
        self.hashes: dict[str, HashComparison] = {}

    def add(self, stage: str, result: _StageResult) -> bool:
        """Record ``stage``'s result; whether it differs (the replay then stops)."""
        self.stages.append(stage)
        self.differences = self.problems.settle(stage, result)
        self.hashes.update((h.name, h) for h in result.hashes)
        return bool(self.differences)

    def report(self, from_stage: str, *, device: str, rows: int, started_s: float) -> ReplayReport:
        stored = self.stored
        hashes = [
            self.hashes.get(name) or HashComparison(name, stored.record_hashes.get(name, ""), None)
            for name in HASH_ORDER
            if name in self.hashes or name in stored.record_hashes
        ]
        return ReplayReport(
            subnet=stored.subnet,
            epoch=stored.epoch,
            batch_no=stored.batch_no,
            batch_hash=stored.batch_hash,
            from_stage=from_stage,
            stages=tuple(self.stages),
            first_difference=self.stages[-1] if self.differences else None,
            differences=tuple(self.differences[:DIFFERENCES_SHOWN_MAX]),
            differences_total=len(self.differences),
            hashes=tuple(hashes),
            device=device,
            tolerance=_tolerance_text(device, rows),
            seconds=time.perf_counter() - started_s,
        )
