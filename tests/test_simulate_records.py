"""Columnar epoch records written by the real pipeline path (the simulator's epochs).

Each test builds a small simulated network under ``tmp_path`` and checks what the epoch's
record tables hold against what consensus computed, that damage to a record file is found, that
the next epoch reads its previous bonds and permits from the records, and what the read side
(metagraph, submissions, MLflow backfill, ``network simulate``) makes of them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.ledger.errors import LedgerCorrupted
from taoflow.ledger.schema import Kind, table_to_txs
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.records import RECORDS_DIR
from taoflow.queries import metagraph, submission_states
from taoflow.tasks.consensus.stage import previous_state, run_consensus
from taoflow.tasks.emit import plan_from_context
from taoflow.tasks.gather import gather_context
from taoflow.tasks.records import EpochRecords
from taoflow.tasks.simulate import (
    SimulationSpec,
    commit_simulated_epoch,
    prepare,
    propose_epoch,
    scores_weights,
    simulate,
    synthetic_scores,
)
from taoflow.tasks.track_reconcile import BACKFILL_RECORDS, backfill_job

SUBNET = "sim"
MINERS = 6
VALIDATORS = 3
SEED = 4
UIDS = MINERS + VALIDATORS
runner = CliRunner()


def spec(epochs: int) -> SimulationSpec:
    return SimulationSpec(
        subnet=SUBNET, epochs=epochs, miners=MINERS, validators=VALIDATORS, seed=SEED
    )


def simulated(root: Path, epochs: int) -> Ledger:
    simulate(root, spec(epochs))
    return Ledger.open(root)


def epoch_txs(ledger: Ledger, epoch: int) -> list:
    record = next(r for r in ledger.records() if f"{SUBNET}/{epoch}" in r.epochs)
    return table_to_txs(ledger.read_table(record))


def record_file(root: Path, epoch: int, name: str) -> Path:
    [path] = sorted((root / RECORDS_DIR / SUBNET).glob(f"{epoch:010d}.{name}.*.arrow"))
    return path


def test_records_hold_what_consensus_computed(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "ledger")
    prepare(ledger, spec(1))
    for epoch in range(3):
        ctx = gather_context(ledger, subnet=SUBNET)
        scores = synthetic_scores(ctx, seed=SEED)
        outcome = run_consensus(ctx, scores_weights(ctx, scores))
        plan = plan_from_context(ctx, propose_epoch(ctx, seed=SEED).shares)
        commit_simulated_epoch(ledger, seed=SEED, subnet=SUBNET)

        tables = Ledger.open(tmp_path / "ledger").epoch_records(SUBNET, epoch)
        bonds, uids = tables["bonds"], tables["uids"]
        assert bonds.schema.field("bond_u16").type == pa.uint16()
        assert bonds.cast(outcome.state.bonds.schema).equals(outcome.state.bonds)
        assert bonds.num_rows == (0 if epoch == 0 else VALIDATORS * MINERS)
        assert uids.column("permit").to_pylist() == outcome.state.validator_permit.tolist()
        for name in ("incentive", "dividends", "consensus", "validator_trust", "stake_weight"):
            assert uids.column(name).to_numpy().tolist() == getattr(outcome.outputs, name).tolist()
        assert uids.column("active").to_pylist() == outcome.outputs.active.tolist()
        paid = [plan.payouts.incentive_rao[u] + plan.payouts.dividends_rao[u] for u in range(UIDS)]
        assert uids.column("emission_rao").to_pylist() == paid
        [entry] = [tx for tx in epoch_txs(ledger, epoch) if tx.kind == Kind.EPOCH]
        assert sum(paid) + plan.payouts.owner_rao == entry.amount_rao
        assert uids.column("hotkey").to_pylist() == [n.hotkey for n in ctx.neurons]
        assert tables["weights"].cast(outcome.weights.schema).equals(outcome.weights)
        flat = sorted((v, m, s) for v, row in scores.items() for m, s in row.items())
        scores_rows = zip(
            *(tables["scores"].column(c).to_pylist() for c in tables["scores"].schema.names),
            strict=True,
        )
        assert list(scores_rows) == flat
        means = [np.mean([scores[v][u] for v in sorted(scores)]) for u in range(VALIDATORS, UIDS)]
        assert uids.column("score").to_numpy()[VALIDATORS:] == pytest.approx(means, abs=1e-12)
        assert np.isnan(uids.column("score").to_numpy()[:VALIDATORS]).all()


def test_the_next_epoch_reads_its_previous_bonds_and_permits_from_the_records(
    tmp_path: Path,
) -> None:
    ledger = simulated(tmp_path / "ledger", 2)
    tables = ledger.epoch_records(SUBNET, 1)
    ctx = gather_context(ledger, subnet=SUBNET)
    assert ctx.epoch == 2
    assert ctx.previous.bonds.equals(tables["bonds"])
    assert ctx.previous.permits.equals(tables["uids"].column("permit").combine_chunks())
    assert ctx.previous.block == ledger.epoch_payload(SUBNET, 1)["block"]  # type: ignore[index]
    state = previous_state(ctx)
    assert state.bonds.num_rows == VALIDATORS * MINERS
    assert state.validator_permit.tolist() == tables["uids"].column("permit").to_pylist()

    path = record_file(tmp_path / "ledger", 1, "bonds")
    path.unlink()
    with pytest.raises(LedgerCorrupted, match=r"epoch 1 of 'sim'.*bonds.*missing"):
        gather_context(Ledger.open(tmp_path / "ledger"), subnet=SUBNET)


def test_a_flipped_byte_in_a_record_file_is_found(tmp_path: Path) -> None:
    root = tmp_path / "ledger"
    simulated(root, 2)
    assert Ledger.open(root).verify().ok
    path = record_file(root, 1, "uids")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    ledger = Ledger.open(root)
    with pytest.raises(LedgerCorrupted, match=r"epoch 1 of 'sim': epoch record uids"):
        ledger.epoch_records(SUBNET, 1)
    assert sorted(ledger.epoch_records(SUBNET, 0)) == ["bonds", "scores", "uids", "weights"]
    report = ledger.verify()
    assert not report.ok
    assert "epoch 1 of 'sim'" in (report.problem or "")


def test_the_uids_emission_follows_the_plan_committed(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "ledger")
    prepare(ledger, spec(1))
    ctx = gather_context(ledger, subnet=SUBNET)
    proposal = propose_epoch(ctx, seed=SEED)
    records: EpochRecords = proposal.records
    plan = plan_from_context(ctx, proposal.shares)
    dropped = 0  # the first validator's uid went to another hotkey before the commit
    neurons = tuple(
        dataclasses.replace(n, hotkey="0" * 64) if n.uid == dropped else n for n in ctx.neurons
    )
    replanned = plan_from_context(dataclasses.replace(ctx, neurons=neurons), proposal.shares)
    first = records.tables(plan)["uids"].column("emission_rao").to_pylist()
    second = records.tables(replanned)["uids"].column("emission_rao").to_pylist()
    assert first[dropped] > 0 and second[dropped] == 0
    for paid, chosen in ((first, plan), (second, replanned)):
        owed = [
            chosen.payouts.incentive_rao[u] + chosen.payouts.dividends_rao[u] for u in range(UIDS)
        ]
        assert paid == owed
        assert sum(paid) + chosen.payouts.owner_rao == chosen.total_rao
    assert records.uids.column("emission_rao").to_pylist() == [0] * UIDS


def test_metagraph_and_submissions_read_the_last_epochs_uids_record(tmp_path: Path) -> None:
    ledger = simulated(tmp_path / "ledger", 2)
    uids = ledger.epoch_records(SUBNET, 1)["uids"]
    rows = metagraph(ledger, subnet=SUBNET)
    assert [r["uid"] for r in rows] == list(range(UIDS))
    for name in ("validator_trust", "consensus", "incentive", "dividends", "emission_rao"):
        assert [r[name] for r in rows] == uids.column(name).to_pylist()
    paid = [0] * UIDS
    for tx in epoch_txs(ledger, 1):
        if tx.kind in (Kind.EMISSION_INCENTIVE, Kind.EMISSION_DIVIDEND, Kind.EMISSION_DELEGATOR):
            paid[tx.uid] += tx.amount_rao
    assert [r["emission_rao"] for r in rows] == paid
    assert {r["epoch"] for r in rows} == {1}

    states = submission_states(ledger, subnet=SUBNET)
    assert [s["uid"] for s in states] == list(range(VALIDATORS, UIDS))
    assert {s["state"] for s in states} == {"evaluated"}
    scores = uids.column("score").to_pylist()
    assert [s["score"] for s in states] == scores[VALIDATORS:]
    digests = uids.column("artifact_digest").to_pylist()
    assert [s["digest"] for s in states] == digests[VALIDATORS:]


def test_backfill_rebuilds_the_metagraph_and_weights_from_the_records(tmp_path: Path) -> None:
    ledger = simulated(tmp_path / "ledger", 2)
    record = next(r for r in ledger.records() if f"{SUBNET}/1" in r.epochs)
    tables = ledger.epoch_records(SUBNET, 1, names=BACKFILL_RECORDS)
    job = backfill_job(
        table_to_txs(ledger.read_table(record)),
        subnet=SUBNET,
        epoch=1,
        batch_hash=record.batch_hash,
        records=tables,
    )
    graph, uids = job["metagraph"], tables["uids"]
    assert graph.column("uid").to_pylist() == list(range(UIDS))
    assert graph.column("epoch").to_pylist() == [1] * UIDS
    assert graph.column("incentive").to_pylist() == uids.column("incentive").to_pylist()
    assert graph.column("emission_rao").to_pylist() == uids.column("emission_rao").to_pylist()
    assert graph.column("validator_permit").to_pylist() == uids.column("permit").to_pylist()
    scores = graph.column("score").to_pylist()
    assert scores[:VALIDATORS] == [None] * VALIDATORS
    assert scores[VALIDATORS:] == uids.column("score").to_pylist()[VALIDATORS:]
    assert graph.column("error").to_pylist() == [None] * UIDS
    txs = table_to_txs(ledger.read_table(record))
    entry = next(t for t in txs if t.kind == Kind.EPOCH and t.epoch == 1)
    assert job["emission_rao"] == entry.amount_rao
    assert job["weights"].num_rows == tables["weights"].num_rows == VALIDATORS * MINERS
    assert job["params"]["sample_size"] == 0


def test_simulate_prints_the_bytes_on_disk_per_epoch(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["network", "simulate", "--home", str(home), "--subnet", SUBNET, "--epochs", "2"]
    args += ["--miners", str(MINERS), "--validators", str(VALIDATORS), "--seed", str(SEED)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    root = home / "ledger"
    batches = sorted((root / "batches").glob("*.arrow"))[1:]  # the two epochs, not genesis
    records = sorted((root / RECORDS_DIR / SUBNET).glob("*.arrow"))
    assert len(batches) == 2 and len(records) == 8
    batch_bytes = sum(p.stat().st_size for p in batches)
    record_bytes = sum(p.stat().st_size for p in records)
    assert summary["bytes_per_epoch"] == (batch_bytes + record_bytes) // 2
    assert summary["batch_bytes_per_epoch"] == batch_bytes // 2
    assert summary["record_bytes_per_epoch"] == record_bytes // 2

    text = runner.invoke(app, [*args[:-2], "--epochs", "1"])
    assert text.exit_code == 0, text.stderr
    assert "bytes on disk per epoch" in text.stdout
