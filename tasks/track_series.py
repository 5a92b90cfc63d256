"""What an epoch's MLflow runs hold: the epoch figures, the subnet's series run, UI links.

Layout of one subnet's experiment (``subnet-<name>``, tagged as a model-training experiment):

* the **series run** ``<subnet> · network`` (tag ``taoflow.series = <subnet>``), created with
  the experiment's first epoch and logged to by every epoch after it, holds the time series a
  person plots as lines, all at ``step = epoch``: one line per hotkey and figure
  (``incentive/uid_0007-5a4d0c1e``: ``<figure>/uid_<uid, 4 digits>-<hotkey, 8 characters>``)
  and one per epoch figure (``aggregate/score_best``, …: the UI lists the ``aggregate`` section
  first, as it orders sections by name);
* each **epoch run** ``epoch <N>`` is a child of the series run (tag ``mlflow.parentRunId``)
  and holds the :data:`EPOCH_METRICS` of that epoch (a handful of numbers, not one per uid).

Per hotkey: a row with a score (its model was evaluated, or rejected with score 0) is a miner's
and gets :data:`MINER_SERIES`, every other row (validators, miners without a model yet)
:data:`VALIDATOR_SERIES`; a null or NaN value is not logged. The validator permit does not
decide it: permits go by stake, so miners hold them too once their emission is staked.

Invariants:

* the figures are computed from the metagraph alone (plus the epoch's emission in rao), so a
  run logged live, from the outbox or backfilled from the ledger holds the same numbers;
* a series point is written once per (key, epoch): :func:`log_series` is called while the
  epoch's run is unfinished, and with ``dedupe`` (an unfinished run of the epoch was left by an
  earlier try) it first drops every point whose key already has one at that step;
* pure functions apart from :func:`series_run` and :func:`log_series`, which only talk to
  MLflow; nothing here reads or writes the ledger.

The experiment carries ``mlflow.experimentKind = custom_model_development`` (MLflow 3's mark of
a model-training experiment). MLflow 3.17's own UI chooses its view from a switch in the page
instead (``?workflowType=machine_learning``, remembered by the browser): :func:`ui_path` builds
links that open the model-training view, :func:`lines_ui_path` one chart with several lines of a
run (every miner's incentive, say).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

import pyarrow as pa
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from taoflow.ledger.schema import RAO_PER_TAO

__all__ = [
    "EPOCH_METRICS",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "MINER_SERIES",
    "SERIES_TAG",
    "VALIDATOR_SERIES",
    "epoch_metrics",
    "epoch_run_name",
    "experiment_note",
    "lines_ui_path",
    "log_series",
    "series_key",
    "series_metrics",
    "series_run",
    "series_run_name",
    "ui_path",
    "validator_agreement",
]

EXPERIMENT_KIND_TAG: Final = "mlflow.experimentKind"
EXPERIMENT_KIND: Final = "custom_model_development"
NOTE_TAG: Final = "mlflow.note.content"
PARENT_RUN_TAG: Final = "mlflow.parentRunId"
SERIES_TAG: Final = "taoflow.series"
AGGREGATE_PREFIX: Final = "aggregate"
HOTKEY_CHARS: Final = 8
UID_DIGITS: Final = 4
SERIES_RUNS_SEARCH_MAX: Final = 1
METRICS_PER_CALL_MAX: Final = 1000
UI_QUERY: Final = "?workflowType=machine_learning"
LINES_PER_CHART_MAX: Final = 64
EPOCH_METRICS: Final = (
    "neurons",
    "validator_permits",
    "models_evaluated",
    "models_rejected",
    "score_mean",
    "score_best",
    "incentive_top",
    "validator_agreement",
    "emission_tao",
)
"""Every metric an epoch run may hold. ``score_mean``/``score_best`` are left out when no model
was evaluated, ``validator_agreement`` when no validator holds a permit and stake."""
MINER_SERIES: Final = ("score", "incentive", "emission_tao")
VALIDATOR_SERIES: Final = ("dividends", "validator_trust", "stake_tao", "emission_tao")
_UNSAFE_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9]")


def epoch_run_name(epoch: int) -> str:
    return f"epoch {int(epoch)}"


def series_run_name(subnet: str) -> str:
    return f"{subnet} · network"


def experiment_note(subnet: str) -> str:
    """The experiment's description (markdown), shown on its page in the MLflow UI."""
    return (
        f"Subnet **{subnet}**. **{series_run_name(subnet)}** (expand it to list the runs "
        "**epoch N**) plots every figure over epochs, step = epoch: `aggregate/score_best`, "
        "`aggregate/models_evaluated`, … and one line per hotkey, `<figure>/uid_<uid>-<hotkey>` "
        "(`incentive/…`, `score/…`, `dividends/…`). Each **epoch N** run holds that epoch's "
        "figures, parameters, per-uid table (`metagraph.csv`), weights, plots and ledger batch "
        "hash (`taoflow.ledger_batch_hash`)."
    )


def ui_path(*, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI path (after the server's address) of the experiment or one of its runs,
    in the model-training view."""
    run = f"/runs/{run_id}" if run_id else ""
    return f"/#/experiments/{experiment_id}{run}{UI_QUERY}"


def lines_ui_path(*, experiment_id: str, run_id: str, keys: Sequence[str]) -> str:
    """The MLflow UI path of one chart with a line per key of the run (e.g. every
    ``incentive/…`` key of the series run: all miners on one chart)."""
    chosen = sorted(keys)[:LINES_PER_CHART_MAX]
    if not chosen:
        raise ValueError("lines_ui_path needs at least one metric key")
    query = urlencode(
        {
            "runs": json.dumps([run_id]),
            "metric": json.dumps(chosen[0]),
            "experiments": json.dumps([experiment_id]),
            "plot_metric_keys": json.dumps(chosen),
            "x_axis": "step",
            "y_axis_scale": "linear",
            "show_point": "true",
            "workflowType": "machine_learning",
        },
        quote_via=quote,
    )
    return f"/#/metric/{quote(chosen[0], safe='')}?{query}"


def series_key(name: str, *, uid: int, hotkey: str) -> str:
    """``<name>/uid_<uid>-<hotkey prefix>``: one line per hotkey; a recycled uid starts a new
    line, and the names sort by uid."""
    prefix = _UNSAFE_KEY_CHARS.sub("", str(hotkey))[:HOTKEY_CHARS] or "none"
    return f"{name}/uid_{int(uid):0{UID_DIGITS}d}-{prefix}"


def _column(metagraph: pa.Table, name: str) -> list[Any]:
    if name in metagraph.column_names:
        return list(metagraph.column(name).to_pylist())
    return [None] * metagraph.num_rows


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` for null and NaN (a missing value in either path)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def validator_agreement(metagraph: pa.Table) -> float | None:
    """Stake-weighted mean validator trust over validators with a permit (``None`` if none).

    Validator trust is the share of a validator's weight that falls within consensus, so this
    is the fraction of the validating stake's weight that agreed with consensus.
    """
    needed = ("stake_rao", "validator_trust", "validator_permit")
    if any(column not in metagraph.column_names for column in needed):
        return None
    stake_total_rao = 0
    weighted = 0.0
    for stake_rao, trust, permit in zip(*(_column(metagraph, c) for c in needed), strict=True):
        if permit and stake_rao and _number(trust) is not None:
            stake_total_rao += int(stake_rao)
            weighted += int(stake_rao) * float(trust)
    return weighted / stake_total_rao if stake_total_rao > 0 else None


def epoch_metrics(metagraph: pa.Table, *, emission_rao: int) -> dict[str, float]:
    """The epoch run's metrics (:data:`EPOCH_METRICS`), from the metagraph and the epoch's
    emission (owner, miners and validators together, in rao)."""
    errors = _column(metagraph, "error")
    scores = [_number(s) for s in _column(metagraph, "score")]
    evaluated = [s for s, e in zip(scores, errors, strict=True) if s is not None and not e]
    incentives = [i for i in map(_number, _column(metagraph, "incentive")) if i is not None]
    values: dict[str, float] = {
        "neurons": float(metagraph.num_rows),
        "validator_permits": float(sum(1 for p in _column(metagraph, "validator_permit") if p)),
        "models_evaluated": float(len(evaluated)),
        "models_rejected": float(sum(1 for e in errors if e)),
        "incentive_top": max(incentives, default=0.0),
        "emission_tao": emission_rao / RAO_PER_TAO,
    }
    if evaluated:
        values["score_mean"] = math.fsum(evaluated) / len(evaluated)
        values["score_best"] = max(evaluated)
    agreement = validator_agreement(metagraph)
    if agreement is not None:
        values["validator_agreement"] = agreement
    return {name: values[name] for name in EPOCH_METRICS if name in values}


def series_metrics(
    metagraph: pa.Table, *, figures: Mapping[str, float], epoch: int, now_ms: int
) -> list[Metric]:
    """The series run's points of one epoch: per hotkey, then ``aggregate/<figure>`` last."""
    points: list[Metric] = []
    rows = zip(
        _column(metagraph, "uid"),
        _column(metagraph, "hotkey"),
        _column(metagraph, "score"),
        strict=True,
    )
    columns = {name: _column(metagraph, name) for name in {*MINER_SERIES, *VALIDATOR_SERIES}}
    for row, (uid, hotkey, score) in enumerate(rows):
        for name in VALIDATOR_SERIES if _number(score) is None else MINER_SERIES:
            value = _number(columns[name][row])
            if value is not None:
                key = series_key(name, uid=int(uid), hotkey=str(hotkey))
                points.append(Metric(key, value, now_ms, epoch))
    for name, value in figures.items():
        points.append(Metric(f"{AGGREGATE_PREFIX}/{name}", float(value), now_ms, epoch))
    return points


def series_run(client: MlflowClient, *, experiment_id: str, subnet: str) -> str:
    """The id of the subnet's series run, created if there is none (the caller marks it
    finished after each epoch, so the UI shows no run in progress)."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{SERIES_TAG}` = '{subnet}'",
        max_results=SERIES_RUNS_SEARCH_MAX,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        return str(found[0].info.run_id)
    tags = {SERIES_TAG: subnet, "taoflow.subnet": subnet, NOTE_TAG: experiment_note(subnet)}
    run = client.create_run(experiment_id, run_name=series_run_name(subnet), tags=tags)
    return str(run.info.run_id)


def _not_yet_logged(client: MlflowClient, run_id: str, points: Sequence[Metric]) -> list[Metric]:
    """``points`` minus those whose key already has a point at their step (one read per key)."""
    kept: list[Metric] = []
    steps_of: dict[str, set[int]] = {}
    for point in points:
        if point.key not in steps_of:
            history = client.get_metric_history(run_id, point.key)
            steps_of[point.key] = {int(m.step) for m in history}
        if int(point.step) not in steps_of[point.key]:
            kept.append(point)
    return kept


def log_series(client: MlflowClient, *, run_id: str, points: Sequence[Metric], dedupe: bool) -> int:
    """Write the epoch's series points (``dedupe``: skip those already there); return how many
    were written."""
    todo = _not_yet_logged(client, run_id, points) if dedupe else list(points)
    for start in range(0, len(todo), METRICS_PER_CALL_MAX):
        client.log_batch(run_id, metrics=todo[start : start + METRICS_PER_CALL_MAX])
    return len(todo)
