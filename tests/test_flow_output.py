"""What an epoch shows a person: a quiet terminal, a named flow run, stage lines in the Prefect
Logs tab, and a summary artifact that names the right miner.

The pure parts (names, lines, the markdown summary, the logging routes) are tested directly;
one module-scoped network (``taoflow demo --epochs 1``, then ``taoflow epoch run``, both as
subprocesses) is read back through the Prefect client for the integration checks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ledger_helpers import epoch_batch, network_with_subnet

from taoflow.ledger.payouts import Payouts
from taoflow.ledger.store import CommitResult, Ledger
from taoflow.tasks import run_logs
from taoflow.tasks.consensus.types import BONDS_FLOAT_SCHEMA, EpochOutputs
from taoflow.tasks.evaluate.stage import EvaluationOutcome
from taoflow.tasks.gather import EpochContext, NeuronView, PreviousEpoch
from taoflow.tasks.summary import (
    REJECTED_SHOWN,
    best_miner,
    commit_line,
    consensus_line,
    epoch_run_name,
    evaluation_lines,
    gather_line,
    markdown_summary,
    tao,
    tracking_line,
)

TAO = 1_000_000_000
RUN_TIMEOUT_S = 600
# A loaded machine can take longer than Prefect's default 20 s to start its temporary server.
PREFECT_STARTUP_S = "180"


# ---- names and amounts -----------------------------------------------------------------------


def test_tao_is_exact_and_trims_only_trailing_zeros() -> None:
    assert tao(41 * TAO) == "41.0"
    assert tao(24_600_000_004) == "24.600000004"
    assert tao(1_000 * TAO + TAO // 2) == "1,000.5"
    assert tao(1) == "0.000000001"
    assert tao(-3 * TAO) == "-3.0"


def test_flow_run_name_is_subnet_and_epoch() -> None:
    assert epoch_run_name("digits", 3) == "digits · epoch 3"
    assert epoch_run_name("digits", 0) == "digits · epoch 0"
    assert epoch_run_name("digits", None) == "digits · next epoch"


def test_next_epoch_is_the_one_the_run_will_commit(tmp_path: Path) -> None:
    from taoflow.flows.epoch import next_epoch

    ledger = network_with_subnet(tmp_path, subnet="sn")
    assert next_epoch(subnet="sn", home=str(tmp_path)) == 0
    ledger.commit(epoch_batch(ledger.state(), "sn", block=10), allow_system=True)
    assert next_epoch(subnet="sn", home=str(tmp_path)) == 1
    assert next_epoch(subnet="nosuch", home=str(tmp_path)) is None


def test_next_epoch_of_a_wrong_home_is_unknown_and_creates_nothing(tmp_path: Path) -> None:
    from taoflow.flows.epoch import next_epoch

    missing = tmp_path / "typo"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert next_epoch(subnet="digits", home=str(missing)) is None
    assert next_epoch(subnet="digits", home=str(empty)) is None
    assert not missing.exists()
    assert list(empty.iterdir()) == []


# ---- stage lines -----------------------------------------------------------------------------


def _neuron(uid: int, role: str, *, digest: str | None = None) -> NeuronView:
    return NeuronView(
        uid=uid,
        hotkey=f"hot{uid}",
        coldkey=f"cold{uid}",
        role=role,
        registered_block=0,
        stake_rao=TAO if role == "validator" else 0,
        artifact_digest=digest,
        artifact_uri=None,
    )


def _ctx(*, epoch: int, first: bool) -> EpochContext:
    from taoflow.ledger.config import SubnetConfig

    neurons = (
        _neuron(0, "validator"),
        _neuron(1, "validator"),
        _neuron(2, "miner", digest="aa"),
        _neuron(3, "miner", digest="bb"),
        _neuron(4, "miner"),
    )
    permits = pa.array([], pa.bool_()) if first else pa.array([True, True, False, False, False])
    return EpochContext(
        subnet="digits",
        epoch=epoch,
        block=100 * (epoch + 1),
        tempo_blocks=100,
        emission_rao=100 * TAO,
        parent_hash="00",
        seed_hex="00",
        owner_coldkey="owner",
        owner_hotkey="owner-hot",
        config=SubnetConfig.from_payload({"tempo_blocks": 100}),
        neurons=neurons,
        previous=PreviousEpoch(permits=permits),
        external_weights={1: ({2: 65535}, 90)},
    )


def _outputs(incentive: list[float], dividends: list[float]) -> EpochOutputs:
    n = len(incentive)
    zeros = np.zeros(n)
    return EpochOutputs(
        stake_weight=zeros,
        active_stake=zeros,
        active=np.ones(n, dtype=bool),
        validator_permit=np.array([True, True] + [False] * (n - 2)),
        validator_trust=np.array([0.5, 1.0] + [0.0] * (n - 2)),
        consensus=np.array(incentive),
        incentive=np.array(incentive),
        dividends=np.array(dividends),
        server_emission_share=zeros,
        validator_emission_share=zeros,
        bonds=BONDS_FLOAT_SCHEMA.empty_table(),
    )


def test_gather_line_counts_submissions_and_validators() -> None:
    line = gather_line(_ctx(epoch=3, first=False))
    assert line == (
        "gather: digits epoch 3 at block 400: 2 submissions from 3 miners, 2 validators "
        "(2 hosted, 1 external weight vectors), emission 100.0 τ"
    )


def test_evaluation_lines_say_what_was_rejected_and_why() -> None:
    evaluation = EvaluationOutcome(
        scores={0: {2: 0.5, 3: 0.0}, 1: {2: 0.7, 3: 0.0}},
        errors={3: "unreadable: bad header"},
        sample_size=64,
    )
    assert evaluation_lines(evaluation) == [
        "evaluate: 2 models, 1 scored, 1 rejected; 2 hosted validators × 64 samples each; "
        "best score uid 2 0.6000",
        "evaluate: uid 3 rejected: unreadable: bad header",
    ]


def test_evaluation_lines_are_bounded() -> None:
    errors = {uid: "timeout" for uid in range(REJECTED_SHOWN + 5)}
    lines = evaluation_lines(EvaluationOutcome(scores={}, errors=errors, sample_size=0))
    assert len(lines) == 1 + REJECTED_SHOWN + 1
    assert lines[-1] == "evaluate: … and 5 more rejected"


def test_consensus_line_of_the_first_epoch_names_no_top_miner() -> None:
    line = consensus_line(_ctx(epoch=0, first=True), _outputs([0.0] * 5, [0.0] * 5))
    assert "top incentive" not in line
    assert line.startswith("consensus: no miner earned incentive (no validator held a permit")
    assert line.endswith("2 validator permits, mean validator trust 0.7500")


def test_consensus_line_names_the_top_incentive_and_dividends() -> None:
    line = consensus_line(
        _ctx(epoch=2, first=False), _outputs([0.0, 0.0, 0.25, 0.75, 0.0], [0.4, 0.6, 0, 0, 0])
    )
    assert line == (
        "consensus: top incentive uid 3 (0.7500, consensus 0.7500); top dividends uid 1 "
        "(0.6000); 2 validator permits, mean validator trust 0.7500"
    )


def test_commit_line_has_batch_hash_and_exact_split() -> None:
    payouts = Payouts(
        owner_rao=18 * TAO,
        incentive_rao=(0, 0, 10 * TAO, 31 * TAO, 0),
        dividends_rao=(20 * TAO, 21 * TAO, 0, 0, 0),
        unissued_rao=0,
    )
    commit = CommitResult(batch_no=7, batch_hash="ab" * 32, applied=9, existed=0)
    assert commit_line(subnet="digits", epoch=2, commit=commit, payouts=payouts) == (
        f"commit: digits epoch 2 as ledger batch 7 {'ab' * 32}: emitted 100.0 τ "
        "(owner 18.0 τ, incentive 41.0 τ, dividends 41.0 τ)"
    )
    again = CommitResult(batch_no=None, batch_hash=None, applied=0, existed=9)
    assert commit_line(subnet="digits", epoch=2, commit=again, payouts=payouts) == (
        "commit: digits epoch 2 was already committed; nothing new written"
    )


def test_tracking_line_links_http_runs_without_credentials() -> None:
    assert tracking_line(
        run_id="r1", error=None, tracking_uri="http://user:secret@127.0.0.1:5000/"
    ) == ("track: MLflow run r1: http://127.0.0.1:5000/#/runs/r1")
    assert tracking_line(run_id="r1", error=None, tracking_uri="sqlite:///h/mlflow.db") == (
        "track: MLflow run r1 in sqlite:///h/mlflow.db"
    )
    queued = tracking_line(run_id=None, error="ConnectionError: down", tracking_uri="x")
    assert queued.startswith("track: MLflow run queued") and queued.endswith(
        "(ConnectionError: down)"
    )


# ---- the summary artifact --------------------------------------------------------------------


def _row(uid: int, role: str, **values: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "hotkey": f"hotkey-of-uid-{uid}",
        "role": role,
        "score": values.get("score"),
        "incentive": values.get("incentive", 0.0),
        "dividends": values.get("dividends", 0.0),
        "emission_rao": values.get("emission_rao", 0),
        "error": values.get("error"),
    }


def _summary(epoch: int, metagraph: list[dict[str, Any]]) -> str:
    return markdown_summary(
        subnet="digits",
        epoch=epoch,
        block=100,
        emission_rao=100 * TAO,
        batch_no=2,
        batch_hash="cd" * 32,
        metagraph=metagraph,
    )


def test_first_epoch_summary_names_no_top_miner() -> None:
    # The old summary named the first miner listed (the worst: score 0.19) "top miner".
    metagraph = [
        _row(0, "validator", emission_rao=50 * TAO),
        _row(1, "validator", emission_rao=32 * TAO),
        _row(2, "miner", score=0.19),
        _row(3, "miner", score=0.99),
        _row(4, "miner", score=0.5),
    ]
    text = _summary(0, metagraph)
    assert best_miner(metagraph) is None
    assert "top miner" not in text.lower() and "Best miner" not in text
    assert "## No miner earned incentive this epoch" in text
    assert "No validator held a permit before the subnet's first epoch" in text
    assert "Best score: uid 3 (0.9900)." in text
    assert "owner 18.0 τ, miners 0.0 τ, validators 82.0 τ" in text
    assert f"ledger batch 2 `{'cd' * 32}`" in text


def test_later_summary_names_the_best_miner_by_incentive_not_by_score() -> None:
    metagraph = [
        _row(0, "validator", dividends=1.0, emission_rao=41 * TAO),
        _row(1, "miner", score=0.99, incentive=0.2, emission_rao=8 * TAO),
        _row(2, "miner", score=0.98, incentive=0.8, emission_rao=33 * TAO),
        _row(3, "miner", score=0.10, error="unreadable: bad header"),
    ]
    text = _summary(1, metagraph)
    assert best_miner(metagraph) == metagraph[2]
    assert (
        "## Best miner by incentive\n\n"
        "uid 2 (`hotkey-of-…`): incentive 0.8000, score 0.9800, emission **33.0 τ**"
    ) in text
    table = text.split("## Miners by incentive, then score (3 of 3)")[1]
    assert [int(m) for m in re.findall(r"^\| \d+ \| (\d+) \|", table, re.M)] == [2, 1, 3]
    assert "| 3 | 3 | `hotkey-of-…` | 0.0000 | rejected | 0.0 |" in table
    assert "## Rejected submissions (1)\n\n* uid 3: unreadable: bad header" in text
    assert "owner 18.0 τ, miners 41.0 τ, validators 41.0 τ" in text


# ---- logging routes --------------------------------------------------------------------------


@pytest.fixture
def saved_logging() -> Iterator[None]:
    names = (run_logs.DASK_LOGGER, *run_logs.RUN_LOGGERS, run_logs.PREFECT_LOGGER)
    levels = {name: logging.getLogger(name).level for name in names}
    filters = {id(h): list(h.filters) for h in logging.getLogger().handlers}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.filters = filters.get(id(handler), handler.filters)


def test_quiet_dask_raises_info_to_warning_and_keeps_error(saved_logging: None) -> None:
    logger = logging.getLogger(run_logs.DASK_LOGGER)
    logger.setLevel(logging.INFO)
    run_logs.quiet_dask()
    assert logger.level == logging.WARNING
    logger.setLevel(logging.ERROR)
    run_logs.quiet_dask()
    assert logger.level == logging.ERROR


def test_quiet_dask_drops_only_the_nannys_kill_at_close(saved_logging: None) -> None:
    nanny = logging.getLogger(run_logs.NANNY_LOGGER)
    saved = list(nanny.filters)
    try:
        run_logs.quiet_dask()
        run_logs.quiet_dask()  # idempotent: one filter
        assert sum(isinstance(f, run_logs._ExpectedAtClose) for f in nanny.filters) == 1

        def record(message: str) -> logging.LogRecord:
            args = (4.0,)
            return logging.LogRecord(run_logs.NANNY_LOGGER, 30, __file__, 1, message, args, None)

        assert not nanny.filter(record("Worker process still alive after %.1f seconds, killing"))
        assert nanny.filter(record("Restarting worker after %s s"))
    finally:
        nanny.filters = saved


def test_run_lines_reach_the_api_logger_but_not_the_console(saved_logging: None) -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    logging.getLogger(run_logs.PREFECT_LOGGER).setLevel(logging.WARNING)
    logging.getLogger("prefect.task_runs").setLevel(logging.NOTSET)
    run_logs.route_run_logs()
    run_logs.route_run_logs()  # idempotent: one filter
    assert logging.getLogger("prefect.task_runs").getEffectiveLevel() == logging.INFO
    consoles = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    assert consoles, "Prefect's console handler is on the root logger"

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "line", None, None)

    for console in consoles:
        ours = [f for f in console.filters if isinstance(f, run_logs._ConsoleRunFilter)]
        assert len(ours) == 1
        assert not console.filter(record("prefect.task_runs", logging.INFO))
        assert console.filter(record("prefect.task_runs", logging.WARNING))
        assert console.filter(record("taoflow.other", logging.INFO))
    logging.getLogger(run_logs.PREFECT_LOGGER).setLevel(logging.INFO)  # the user asked for INFO
    assert all(c.filter(record("prefect.flow_runs", logging.INFO)) for c in consoles)


def test_run_logger_outside_a_run_is_the_plain_logger() -> None:
    logger = run_logs.run_logger()
    assert isinstance(logger, logging.Logger) and logger.name == run_logs.FALLBACK_LOGGER


def test_local_cluster_logs_nothing_below_warning(saved_logging: None) -> None:
    from taoflow.tasks.evaluate.fanout import local_cluster_client

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logging.getLogger(run_logs.DASK_LOGGER).setLevel(logging.INFO)  # as distributed sets it
    handler = Keep(level=logging.NOTSET)
    logging.getLogger(run_logs.DASK_LOGGER).addHandler(handler)
    try:
        with local_cluster_client(n_workers=1) as client:
            assert client.submit(sum, [1, 2]).result(timeout=60) == 3
    finally:
        logging.getLogger(run_logs.DASK_LOGGER).removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []
    assert [r.getMessage() for r in records] == []


# ---- one real network: stderr, flow run names, logs and artifacts ----------------------------

READ_PREFECT = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId)
from prefect.client.schemas.sorting import LogSort

async def main():
    out = []
    async with get_client() as client:
        for run in await client.read_flow_runs():
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])),
                sort=LogSort.TIMESTAMP_ASC)
            arts = await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            out.append({"id": str(run.id), "name": run.name, "created": run.created.isoformat(),
                        "state": run.state_type.value if run.state_type else None,
                        "logs": [log.message for log in logs],
                        "summary": [a.data for a in arts if a.type == "markdown"]})
    print(json.dumps(sorted(out, key=lambda run: run["created"])))
asyncio.run(main())
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["TAOFLOW_HOME"] = str(home)
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = PREFECT_STARTUP_S
    return env


def _taoflow(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args, "--home", str(home)],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("flow-output") / "home"
    demo = _taoflow(home, "demo", "--epochs", "1")  # genesis + epoch 0 on the demo's cluster
    run = _taoflow(home, "epoch", "run", "--subnet", "digits", "--json")  # epoch 1, own cluster
    env = {**_env(home), "PREFECT_HOME": str(home / "prefect")}
    read = subprocess.run(
        [sys.executable, "-c", READ_PREFECT],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    return {
        "home": home,
        "stderr": {"demo": demo.stderr, "epoch run": run.stderr},
        "result": json.loads(run.stdout),
        "runs": json.loads(read.stdout.strip().splitlines()[-1]),
    }


def _epoch_uids(home: Path, epoch: int) -> list[Mapping[str, Any]]:
    ledger = Ledger.open(home / "ledger")
    return list(ledger.epoch_records("digits", epoch, names=("uids",))["uids"].to_pylist())


def _best_incentive_miner(home: Path, epoch: int) -> int:
    rows = [r for r in _epoch_uids(home, epoch) if r["artifact_digest"]]
    return int(max(rows, key=lambda r: (r["incentive"], -r["uid"]))["uid"])


@pytest.mark.integration
@pytest.mark.parametrize("command", ["demo", "epoch run"])
def test_a_successful_epoch_prints_no_dask_info_and_no_traceback(
    network: dict[str, Any], command: str
) -> None:
    stderr = network["stderr"][command]
    assert "Traceback" not in stderr
    assert "CommClosedError" not in stderr
    assert re.search(r"\bINFO\b", stderr) is None, stderr[-3000:]
    assert "distributed." not in stderr, stderr[-3000:]


@pytest.mark.integration
def test_flow_runs_are_named_by_subnet_and_epoch(network: dict[str, Any]) -> None:
    runs = network["runs"]
    assert [(r["name"], r["state"]) for r in runs] == [
        ("digits · epoch 0", "COMPLETED"),
        ("digits · epoch 1", "COMPLETED"),
    ]
    assert runs[1]["id"] == network["result"]["flow_run_id"]


@pytest.mark.integration
def test_flow_run_logs_hold_one_line_per_stage(network: dict[str, Any]) -> None:
    result, logs = network["result"], network["runs"][1]["logs"]
    best = _best_incentive_miner(network["home"], 1)
    ours = [line for line in logs if line.split(":")[0] in ("gather", "evaluate", "consensus")]
    ours += [line for line in logs if line.split(":")[0] in ("commit", "track")]
    assert [line.split(":")[0] for line in ours] == [
        "gather",
        "evaluate",
        "consensus",
        "commit",
        "track",
    ]
    assert ours[0].startswith("gather: digits epoch 1 at block ")
    assert "10 submissions from 10 miners, 4 validators (4 hosted" in ours[0]
    assert ours[1].startswith("evaluate: 10 models, 10 scored, 0 rejected; 4 hosted validators")
    assert ours[2].startswith(f"consensus: top incentive uid {best} (")
    assert ours[3] == (
        f"commit: digits epoch 1 as ledger batch {result['batch_no']} {result['batch_hash']}: "
        f"emitted {tao(result['emission_rao'])} τ (owner 18.0 τ, incentive 41.0 τ, "
        "dividends 41.0 τ)"
    )
    assert ours[4].startswith(f"track: MLflow run {result['mlflow_run_id']} in sqlite:///")
    first = network["runs"][0]["logs"]
    assert any(line.startswith("consensus: no miner earned incentive") for line in first)


@pytest.mark.integration
def test_summary_artifacts_name_no_miner_then_the_best_one(network: dict[str, Any]) -> None:
    (epoch0,), (epoch1,) = (run["summary"] for run in network["runs"])
    assert "## No miner earned incentive this epoch" in epoch0
    assert "Best miner" not in epoch0 and "top miner" not in epoch0.lower()
    best = _best_incentive_miner(network["home"], 1)
    assert f"## Best miner by incentive\n\nuid {best} (" in epoch1
    assert f"ledger batch {network['result']['batch_no']} `{network['result']['batch_hash']}`" in (
        epoch1
    )
