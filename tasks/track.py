"""Stage 5 — track: one MLflow run per epoch, written after the ledger commit.

Invariants: one experiment per subnet (``subnet-<name>``); one run per (subnet, epoch), found
again by its tags, so a retried epoch does not log a second run; metrics use ``step = epoch`` so
per-uid curves form across runs; nothing here can change the ledger. MLflow is used through
``MlflowClient`` with an explicit tracking URI, and pickle deserialisation is off
(``taoflow.settings``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

METRICS_PER_CALL_MAX = 1000
PARAM_VALUE_CHARS_MAX = 6000
PER_UID_METRICS = (
    "stake_tao",
    "score",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "emission_tao",
)


def experiment_name(subnet: str) -> str:
    return f"subnet-{subnet}"


def _experiment_id(client: MlflowClient, *, subnet: str, artifacts_dir: Path) -> str:
    name = experiment_name(subnet)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = (artifacts_dir / subnet).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def find_epoch_run(client: MlflowClient, *, experiment_id: str, epoch: int) -> str | None:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`taoflow.epoch` = '{epoch}'", max_results=1
    )
    return runs[0].info.run_id if runs else None


def log_epoch(
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    subnet: str,
    epoch: int,
    params: Mapping[str, Any],
    metagraph: pa.Table,
    aggregates: Mapping[str, float],
    tags: Mapping[str, str],
) -> str:
    """Log (or find) the run of ``epoch``; return its run id."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = _experiment_id(client, subnet=subnet, artifacts_dir=artifacts_dir)
    existing = find_epoch_run(client, experiment_id=experiment_id, epoch=epoch)
    if existing is not None:
        return existing
    run_tags = {"taoflow.subnet": subnet, "taoflow.epoch": str(epoch), **tags}
    run = client.create_run(
        experiment_id,
        run_name=f"{subnet}-epoch-{epoch}",
        tags=run_tags,
    )
    run_id = run.info.run_id
    now_ms = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now_ms, epoch) for k, v in aggregates.items()]
    columns = metagraph.to_pydict()
    for row, uid in enumerate(columns["uid"]):
        for name in PER_UID_METRICS:
            if name in columns and columns[name][row] is not None:
                metrics.append(
                    Metric(f"{name}/uid_{uid:04d}", float(columns[name][row]), now_ms, epoch)
                )
    param_list = [Param(k, str(v)[:PARAM_VALUE_CHARS_MAX]) for k, v in sorted(params.items())]
    client.log_batch(run_id, params=param_list, tags=[RunTag("taoflow.status", "logging")])
    for start in range(0, len(metrics), METRICS_PER_CALL_MAX):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_CALL_MAX])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metagraph.parquet"
        pq.write_table(metagraph, path)
        client.log_artifact(run_id, str(path))
        json_path = Path(tmp) / "metagraph.json"
        json_path.write_text(_rows_json(metagraph.to_pylist()))
        client.log_artifact(run_id, str(json_path))
    client.set_tag(run_id, "taoflow.status", "complete")
    client.set_terminated(run_id, status="FINISHED")
    return str(run_id)


def _rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    import json

    return json.dumps(list(rows), indent=1, sort_keys=True, default=str)
