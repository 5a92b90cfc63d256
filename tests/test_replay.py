"""``taoflow replay``: stored epochs re-run and compared row by row.

Cheap tests use one small simulated network (synthetic scores: replayed from ``consensus`` and
``emit``); the integration tests replay the shared real demo network from its artifacts, and
tamper with copies of its files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest
from cli_helpers import cli, ledger_files
from demo_helpers import demo_env

from taoflow.ledger.store import Ledger
from taoflow.ledger.store.records import RECORDS_DIR
from taoflow.tasks.audit.history import stored_epoch, stored_epochs
from taoflow.tasks.audit.replay import (
    DIFFERENCES_SHOWN_MAX,
    EXACT,
    PAYOUT_ROWS,
    ReplayError,
    replay_epoch,
)
from taoflow.tasks.gather import EpochContext
from taoflow.tasks.simulate import SimulationSpec, simulate

SUBNET = "sim"
EPOCHS = 3
MINERS = 12
VALIDATORS = 4


@pytest.fixture(scope="module")
def sim_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("replay") / "home"
    spec = SimulationSpec(
        subnet=SUBNET, epochs=EPOCHS, miners=MINERS, validators=VALIDATORS, seed=3
    )
    simulate(home / "ledger", spec)
    return home


def _copy(home: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(home, target)
    return target


def record_file(ledger_dir: Path, *, subnet: str, epoch: int, name: str) -> Path:
    [path] = sorted((ledger_dir / RECORDS_DIR / subnet).glob(f"{epoch:010d}.{name}.*.arrow"))
    return path


def rewrite_record(path: Path, change: Any) -> None:
    """Rewrite an epoch record file with ``change(table)`` (a well-formed, tampered file)."""
    with pa.memory_map(str(path), "r") as source:
        table = ipc.open_file(source).read_all()
    table = change(table)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def set_value(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    field = table.schema.field(index)
    return table.set_column(index, field, pa.array(values, type=field.type))


def bump_weight(table: pa.Table) -> tuple[pa.Table, tuple[int, int, int, int]]:
    """One non-zero weight row changed: the table and (validator, miner, old, new)."""
    row = next(i for i, w in enumerate(table.column("weight_u16").to_pylist()) if 0 < w < 60000)
    old = table.column("weight_u16")[row].as_py()
    v, m = table.column("validator")[row].as_py(), table.column("miner")[row].as_py()
    return set_value(table, "weight_u16", row, old + 7), (v, m, old, old + 7)


def with_kappa(kappa_u16: int) -> Any:
    def adjust(ctx: EpochContext) -> EpochContext:
        yuma = {**dict(ctx.config.yuma), "kappa_u16": kappa_u16}
        return dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, yuma=yuma))

    return adjust


# ---- simulated network: consensus and emit ----------------------------------------------------


@pytest.mark.parametrize("stage", ["consensus", "emit"])
def test_every_simulated_epoch_replays_identical(sim_home: Path, stage: str) -> None:
    ledger = Ledger.open(sim_home / "ledger")
    reports = [
        replay_epoch(s, from_stage=stage, ledger=ledger)
        for s in stored_epochs(ledger, subnet=SUBNET, first=0, last=EPOCHS - 1)
    ]
    assert [r.epoch for r in reports] == list(range(EPOCHS))
    for report in reports:
        assert report.identical, report.differences
        assert report.differences_total == 0
        assert report.tolerance == EXACT and report.device == ""
        hashes = {h.name: h for h in report.hashes}
        assert list(hashes) == ["scores", "weights", "bonds", "uids", PAYOUT_ROWS]
        replayed = {"uids", PAYOUT_ROWS} | ({"weights", "bonds"} if stage == "consensus" else set())
        assert {n for n, h in hashes.items() if h.replayed_sha256 is not None} == replayed
        assert all(hashes[n].identical for n in replayed)
        stage_list = ["consensus", "emit"] if stage == "consensus" else ["emit"]
        assert list(report.stages) == stage_list


def test_a_tampered_weight_row_is_reported_at_consensus(sim_home: Path, tmp_path: Path) -> None:
    home = _copy(sim_home, tmp_path)
    path = record_file(home / "ledger", subnet=SUBNET, epoch=1, name="weights")
    changed: list[tuple[int, int, int, int]] = []

    def tamper(table: pa.Table) -> pa.Table:
        out, what = bump_weight(table)
        changed.append(what)
        return out

    rewrite_record(path, tamper)
    [(validator, miner, old, new)] = changed
    stored = stored_epoch(Ledger.open(home / "ledger"), subnet=SUBNET, epoch=1)
    assert set(stored.record_problems) == {"weights"}
    report = replay_epoch(stored, from_stage="consensus")
    assert report.first_difference == "consensus"
    assert list(report.stages) == ["consensus"]
    by_record = {(d.record, d.column): d for d in report.differences}
    assert by_record[("weights", "sha256")].replayed == stored.record_hashes["weights"]
    [row] = [d for d in report.differences if (d.record, d.column) == ("weights", "weight_u16")]
    assert (row.validator, row.uid, row.stored, row.replayed, row.delta) == (
        validator,
        miner,
        new,
        old,
        old - new,
    )
    assert report.differences_total == 2


def test_a_changed_parameter_is_reported_at_consensus_with_the_uids(sim_home: Path) -> None:
    ledger = Ledger.open(sim_home / "ledger")
    stored = stored_epoch(ledger, subnet=SUBNET, epoch=2)
    report = replay_epoch(stored, from_stage="consensus", adjust_context=with_kappa(65_535))
    assert report.first_difference == "consensus"
    assert report.differences_total > 0
    assert {d.record for d in report.differences} <= {"uids", "bonds"}
    uids = {d.uid for d in report.differences if d.record == "uids"}
    columns = {d.column for d in report.differences if d.record == "uids"}
    assert "consensus" in columns and uids <= set(range(VALIDATORS + MINERS + 1))
    assert len(report.differences) == min(report.differences_total, DIFFERENCES_SHOWN_MAX)


def test_a_bootstrap_subnet_cannot_replay_from_stored_scores_and_says_why(sim_home: Path) -> None:
    def bootstrap(ctx: EpochContext) -> EpochContext:
        policy = {**dict(ctx.config.validator_policy), "win_policy": "bootstrap"}
        return dataclasses.replace(
            ctx, config=dataclasses.replace(ctx.config, validator_policy=policy)
        )

    stored = stored_epoch(Ledger.open(sim_home / "ledger"), subnet=SUBNET, epoch=1)
    with pytest.raises(ReplayError, match=r"replay this epoch from --stage evaluate$"):
        replay_epoch(stored, from_stage="consensus", adjust_context=bootstrap)


def test_stage_emit_starts_from_the_stored_uids_shares(sim_home: Path, tmp_path: Path) -> None:
    home = _copy(sim_home, tmp_path)
    path = record_file(home / "ledger", subnet=SUBNET, epoch=2, name="uids")
    ledger = Ledger.open(home / "ledger")
    uids = stored_epoch(ledger, subnet=SUBNET, epoch=2).records["uids"]
    top = int(pc.index(uids.column("incentive"), pc.max(uids.column("incentive"))).as_py())
    rewrite_record(path, lambda t: set_value(t, "incentive", top, 0.0))
    report = replay_epoch(
        stored_epoch(Ledger.open(home / "ledger"), subnet=SUBNET, epoch=2), from_stage="emit"
    )
    assert report.first_difference == "emit"
    shares = [d for d in report.differences if d.record == "shares"]
    assert next((d.column, d.uid, d.replayed) for d in shares if d.column == "incentive") == (
        "incentive",
        top,
        0,
    )
    paid = [d for d in report.differences if d.record == "payouts" and d.uid == top]
    assert [d.column for d in paid] == ["emission_incentive.amount_rao"] * len(paid) and paid
    assert paid[0].replayed is None and isinstance(paid[0].stored, int)
    assert ("uids", "sha256") in {(d.record, d.column) for d in report.differences}


def test_evaluate_on_a_simulated_network_is_refused(sim_home: Path) -> None:
    stored = stored_epoch(Ledger.open(sim_home / "ledger"), subnet=SUBNET, epoch=0)
    with pytest.raises(ReplayError, match=r"synthetic scores.*--stage consensus"):
        replay_epoch(stored, client=object(), artifacts_root=sim_home / "artifacts")
    with pytest.raises(ReplayError, match="stage must be one of evaluate, consensus, emit"):
        replay_epoch(stored, from_stage="track")


# ---- the CLI ------------------------------------------------------------------------------------


def test_cli_identical_prints_the_hashes(
    sim_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(
        capsys, sim_home, "replay", "--subnet", SUBNET, "--epoch", "1", "--stage", "consensus"
    )
    assert ran.code == 0, ran.err
    assert ran.out.startswith("epoch 1 of sim: identical (replayed consensus, emit;")
    stored = stored_epoch(Ledger.open(sim_home / "ledger"), subnet=SUBNET, epoch=1)
    for name, digest in stored.record_hashes.items():
        assert name in ran.out and digest[:16] in ran.out
    assert PAYOUT_ROWS in ran.out


def test_cli_json_shape(sim_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran = cli(capsys, sim_home, "replay", "-s", SUBNET, "--epoch", "2", "--stage", "emit", "--json")
    assert ran.code == 0, ran.err
    out = json.loads(ran.out)
    assert set(out) == {
        "subnet",
        "epoch",
        "batch_no",
        "batch_hash",
        "from_stage",
        "stages",
        "identical",
        "first_difference",
        "differences",
        "differences_total",
        "hashes",
        "device",
        "tolerance",
        "seconds",
    }
    assert (out["subnet"], out["epoch"], out["identical"], out["stages"]) == (
        SUBNET,
        2,
        True,
        ["emit"],
    )
    assert [h["name"] for h in out["hashes"]] == ["scores", "weights", "bonds", "uids", PAYOUT_ROWS]
    assert set(out["hashes"][0]) == {"name", "stored_sha256", "replayed_sha256", "identical"}


def test_cli_difference_table_and_exit_1(
    sim_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _copy(sim_home, tmp_path)
    path = record_file(home / "ledger", subnet=SUBNET, epoch=0, name="weights")
    rewrite_record(path, lambda t: bump_weight(t)[0])
    before = ledger_files(home)
    ran = cli(capsys, home, "replay", "--subnet", SUBNET, "--epoch", "0", "--stage", "consensus")
    assert ran.code == 1
    assert ran.out.startswith("epoch 0 of sim: differs at consensus (2 difference(s);")
    assert "weight_u16" in ran.out and "sha256" in ran.out
    as_json = cli(
        capsys, home, "replay", "--subnet", SUBNET, "--epoch", "0", "--stage", "consensus", "--json"
    )
    assert as_json.code == 1
    out = json.loads(as_json.out)
    assert (out["first_difference"], out["differences_total"]) == ("consensus", 2)
    assert {d["record"] for d in out["differences"]} == {"weights"}
    assert ledger_files(home) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subnet", "nope", "--epoch", "0"], "error: no subnet 'nope' in this ledger"),
        (["--subnet", SUBNET, "--epoch", "9"], "error: subnet 'sim' has no committed epoch 9"),
        (["--subnet", SUBNET, "--epochs", "2..x"], "error: epochs must be N or A..B"),
        (["--subnet", SUBNET, "--epochs", "2..1"], "error: epoch range '2..1' ends before"),
        (["--subnet", SUBNET, "--epochs", "0..5"], "error: subnet 'sim' has no committed epoch 5"),
        (["--subnet", SUBNET], "error: give either --epoch N or --epochs A..B"),
        (["--subnet", SUBNET, "--epoch", "0", "--epochs", "0..1"], "error: give either"),
        (["--subnet", SUBNET, "--epoch", "0", "--stage", "track"], "error: --stage must be one"),
        (["--subnet", SUBNET, "--epoch", "0"], "error: epoch 0 of 'sim' has synthetic scores"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    sim_home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = ledger_files(sim_home)
    ran = cli(capsys, sim_home, "replay", *args)
    assert ran.code == 2
    assert len(ran.err_lines) == 1 and ran.err_lines[0].startswith(message), ran.err
    assert ran.out == ""
    assert ledger_files(sim_home) == before


def test_a_cuda_replay_accepts_each_score_to_one_sample_row_and_no_more() -> None:
    from taoflow.tasks.audit.replay import CUDA_TOLERANCE_ROWS, _tolerance_text, compare_tables

    rows = 200
    stored = pa.table({"validator": [0, 0], "miner": [1, 2], "score": [0.5, 0.5]})
    one_row = pa.table({"validator": [0, 0], "miner": [1, 2], "score": [0.5 + 1 / rows, 0.5]})
    two_rows = pa.table({"validator": [0, 0], "miner": [1, 2], "score": [0.5, 0.5 - 2 / rows]})
    allowed = {"score": CUDA_TOLERANCE_ROWS / rows * (1 + 1e-9)}
    args: dict[str, Any] = dict(stage="evaluate", name="scores", keys=("validator", "miner"))
    assert compare_tables(stored=stored, replayed=one_row, columns=("score",), **args) != []
    assert (
        compare_tables(
            stored=stored, replayed=one_row, columns=("score",), tolerance=allowed, **args
        )
        == []
    )
    (difference,) = compare_tables(
        stored=stored, replayed=two_rows, columns=("score",), tolerance=allowed, **args
    )
    assert (difference.validator, difference.uid) == (0, 2)
    assert _tolerance_text("", 0) == EXACT
    assert "cuda: each score to 1 row(s)" in _tolerance_text("cuda", 1)


# ---- the real demo network (integration) --------------------------------------------------------

DEMO_SUBNET = "digits"
RANGE_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    from taoflow.tasks.evaluate.fanout import local_cluster_client

    with local_cluster_client(n_workers=1, threads_per_worker=1) as client:
        yield client


def _demo_epoch(ledger_dir: Path, epoch: int) -> Any:
    return stored_epoch(Ledger.open(ledger_dir), subnet=DEMO_SUBNET, epoch=epoch)


@pytest.mark.integration
def test_every_demo_epoch_replays_identical_from_its_artifacts(
    demo_home: Path, dask_client: Any
) -> None:
    ledger = Ledger.open(demo_home / "ledger")
    committed = ledger.state().last_epoch[DEMO_SUBNET] + 1
    assert committed >= 2
    for stored in stored_epochs(ledger, subnet=DEMO_SUBNET, first=0, last=committed - 1):
        report = replay_epoch(
            stored, client=dask_client, artifacts_root=demo_home / "artifacts", ledger=ledger
        )
        assert report.identical, (stored.epoch, report.differences)
        assert list(report.stages) == ["evaluate", "consensus", "emit"]
        assert (report.device, report.tolerance) == ("cpu", EXACT)
        assert [h.name for h in report.hashes] == [
            "scores",
            "weights",
            "bonds",
            "uids",
            PAYOUT_ROWS,
        ]
        assert all(h.identical for h in report.hashes)


@pytest.mark.integration
def test_a_tampered_artifact_is_reported_at_evaluate_with_its_uid(
    demo_home: Path, dask_client: Any, tmp_path: Path
) -> None:
    from taoflow.tasks.artifact_store import locate

    stored = _demo_epoch(demo_home / "ledger", 1)
    miner = next(n for n in stored.ctx.neurons if n.artifact_digest is not None)
    artifacts = tmp_path / "artifacts"
    shutil.copytree(demo_home / "artifacts", artifacts)
    model = locate(artifacts, str(miner.artifact_digest)).model_path
    data = bytearray(model.read_bytes())
    data[-3] ^= 0x40  # a byte of the last tensor's values: the file still loads
    model.write_bytes(bytes(data))
    report = replay_epoch(stored, client=dask_client, artifacts_root=artifacts)
    assert report.first_difference == "evaluate"
    [artifact] = [d for d in report.differences if d.record == "artifact"]
    assert (artifact.uid, artifact.stored) == (miner.uid, miner.artifact_digest)
    assert artifact.replayed != miner.artifact_digest
    assert {d.uid for d in report.differences} == {miner.uid}
    errors = [d for d in report.differences if (d.record, d.column) == ("uids", "error")]
    assert [(d.stored, d.replayed) for d in errors] == [
        ("", f"artifact of uid {miner.uid} does not hash to its committed digest")
    ]


@pytest.mark.integration
def test_a_tampered_demo_weight_row_is_reported_at_consensus(
    demo_home: Path, dask_client: Any, tmp_path: Path
) -> None:
    ledger_dir = tmp_path / "ledger"
    shutil.copytree(demo_home / "ledger", ledger_dir)
    changed: list[tuple[int, int, int, int]] = []

    def tamper(table: pa.Table) -> pa.Table:
        out, what = bump_weight(table)
        changed.append(what)
        return out

    rewrite_record(record_file(ledger_dir, subnet=DEMO_SUBNET, epoch=1, name="weights"), tamper)
    [(validator, miner, old, new)] = changed
    report = replay_epoch(
        _demo_epoch(ledger_dir, 1), client=dask_client, artifacts_root=demo_home / "artifacts"
    )
    assert report.first_difference == "consensus"
    assert [(d.record, d.column) for d in report.differences] == [
        ("weights", "sha256"),
        ("weights", "weight_u16"),
    ]
    row = report.differences[1]
    assert (row.validator, row.uid, row.stored, row.replayed) == (validator, miner, new, old)


@pytest.mark.integration
def test_a_changed_demo_parameter_is_reported_at_consensus(
    demo_home: Path, dask_client: Any
) -> None:
    report = replay_epoch(
        _demo_epoch(demo_home / "ledger", 1),
        client=dask_client,
        artifacts_root=demo_home / "artifacts",
        adjust_context=with_kappa(65_535),
    )
    assert report.first_difference == "consensus"
    columns = {(d.record, d.column) for d in report.differences}
    assert ("uids", "consensus") in columns
    assert all(d.uid is not None for d in report.differences)


def _taoflow(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``taoflow ARGS`` as a user runs it (its own process: its own temporary Prefect server)."""
    return subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args],
        env=demo_env(home),
        capture_output=True,
        text=True,
        timeout=RANGE_TIMEOUT_S,
        check=False,
    )


@pytest.mark.integration
def test_a_range_runs_as_the_replay_flow(sim_home: Path) -> None:
    # One flow run (a temporary Prefect server costs ~30 s here): from consensus, each epoch a
    # Dask task; the per-epoch evaluate replay the flow also runs is tested above.
    fanned = _taoflow(sim_home, "replay", "-s", SUBNET, "--epochs", "0..2", "--stage", "consensus")
    assert fanned.returncode == 0, fanned.stderr[-3000:]
    assert fanned.stdout.count(": identical (replayed consensus, emit;") == EPOCHS
    assert fanned.stdout.rstrip().endswith(f"{SUBNET} epochs 0..2: {EPOCHS} of {EPOCHS} identical")
