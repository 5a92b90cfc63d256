"""``taoflow network simulate``: synthetic epochs through the real consensus and ledger commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.ledger.schema import RAO_PER_TAO, Kind, table_to_txs
from taoflow.ledger.store import Ledger
from taoflow.tasks.emit import commit_epoch
from taoflow.tasks.gather import gather_context
from taoflow.tasks.simulate import (
    EPOCHS_MAX,
    MINERS_MAX,
    SEED_MAX,
    VALIDATORS_MAX,
    SimulationError,
    SimulationSpec,
    cosigners_of,
    miner_qualities,
    prepare,
    propose_epoch,
    simulate,
)

SUBNET = "sim"
MINERS = 6
VALIDATORS = 3
TEMPO_EPOCH_RAO = 100 * RAO_PER_TAO
"""One subnet, far from the first halving: 1 τ per block × tempo 100 blocks per epoch."""
runner = CliRunner()


def spec(epochs: int, *, seed: int = 1) -> SimulationSpec:
    return SimulationSpec(
        subnet=SUBNET, epochs=epochs, miners=MINERS, validators=VALIDATORS, seed=seed
    )


def batch_hashes(home: Path) -> list[tuple[str, str]]:
    return [(r.rows_hash, r.batch_hash) for r in Ledger.open(home / "ledger").records()]


def test_four_epochs_verify_pay_the_schedule_and_keep_the_supply_identity(
    tmp_path: Path,
) -> None:
    summary = simulate(tmp_path / "ledger", spec(4))
    ledger = Ledger.open(tmp_path / "ledger")
    report = ledger.verify()
    assert report.ok, report.problem
    records = ledger.records()
    assert [r.epochs for r in records] == [(), *[(f"{SUBNET}/{e}",) for e in range(4)]]
    for record in records[1:]:
        txs = table_to_txs(ledger.read_table(record))
        [epoch_tx] = [tx for tx in txs if tx.kind == Kind.EPOCH]
        payload = epoch_tx.payload_dict()
        assert payload["scheduled_rao"] == TEMPO_EPOCH_RAO
        assert payload["unissued_rao"] == 0
        assert epoch_tx.amount_rao == TEMPO_EPOCH_RAO
        assert sum(tx.amount_rao for tx in txs if tx.kind != Kind.EPOCH) == TEMPO_EPOCH_RAO
        assert payload["evaluation"] == {"errors": {}, "sample_size": 0}
        assert set(payload) == {
            "block",
            "seed",
            "parent_hash",
            "scheduled_rao",
            "unissued_rao",
            "shares",
            "evaluation",
            "records",
        }
        tables = ledger.epoch_records(SUBNET, epoch_tx.epoch)
        assert sorted(tables) == ["bonds", "scores", "uids", "weights"]
        assert tables["scores"].num_rows == MINERS * VALIDATORS
        assert tables["uids"].num_rows == MINERS + VALIDATORS
    state = ledger.state()
    supply = state.supply()
    held_rao = supply["balances_rao"] + supply["stakes_rao"] + supply["locked_rao"]
    assert supply["issued_rao"] - supply["burned_rao"] == held_rao
    assert report.finality[SUBNET].signers == VALIDATORS
    assert (summary.genesis, summary.epochs, summary.first_epoch, summary.last_epoch) == (
        True,
        4,
        0,
        3,
    )
    assert (summary.batches, summary.miners, summary.validators) == (5, MINERS, VALIDATORS)
    assert summary.emitted_rao == 4 * TEMPO_EPOCH_RAO
    assert summary.supply_identity_holds is True


def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        simulate(tmp_path / name / "ledger", spec(2, seed=seed))
    a, b, c = (batch_hashes(tmp_path / name) for name in "abc")
    assert len(a) == 3
    assert a == b
    assert all(x != y for x, y in zip(a, c, strict=True))


def test_continuing_equals_one_longer_run(tmp_path: Path) -> None:
    first = simulate(tmp_path / "parts" / "ledger", spec(2))
    second = simulate(tmp_path / "parts" / "ledger", spec(2))
    simulate(tmp_path / "whole" / "ledger", spec(4))
    assert (first.first_epoch, first.last_epoch, first.genesis) == (0, 1, True)
    assert (second.first_epoch, second.last_epoch, second.genesis) == (2, 3, False)
    assert batch_hashes(tmp_path / "parts") == batch_hashes(tmp_path / "whole")


def test_the_simulated_batch_is_the_one_commit_epoch_writes(tmp_path: Path) -> None:
    simulate(tmp_path / "a" / "ledger", spec(1))
    ledger = Ledger.open(tmp_path / "b" / "ledger")
    assert prepare(ledger, spec(1)) is True
    ctx = gather_context(ledger, subnet=SUBNET)
    proposal = propose_epoch(ctx, seed=1)
    commit_epoch(
        tmp_path / "b" / "ledger",
        ctx,
        proposal.shares,
        records=proposal.records,
        cosigners=cosigners_of(ctx, seed=1, validators=VALIDATORS),
    )
    assert batch_hashes(tmp_path / "a") == batch_hashes(tmp_path / "b")


def test_qualities_are_seeded_and_prefix_stable() -> None:
    assert miner_qualities(5, uids=4).tolist() == miner_qualities(5, uids=9)[:4].tolist()
    assert miner_qualities(5, uids=4).tolist() != miner_qualities(6, uids=4).tolist()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "--epochs must be between 1"),
        ("epochs", EPOCHS_MAX + 1, "--epochs must be between 1"),
        ("miners", MINERS_MAX + 1, "--miners must be between 1"),
        ("validators", 0, "--validators must be between 1"),
        ("validators", VALIDATORS_MAX + 1, "--validators must be between 1"),
        ("seed", -1, "--seed must be between 0"),
        ("seed", SEED_MAX + 1, "--seed must be between 0"),
        ("subnet", "../x", "invalid subnet name"),
    ],
)
def test_spec_bounds(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {"subnet": SUBNET, "epochs": 1, field: value}
    with pytest.raises(SimulationError, match=message):
        SimulationSpec(**fields)  # type: ignore[arg-type]


def test_spec_accepts_the_bounds() -> None:
    spec_max = SimulationSpec(
        subnet=SUBNET,
        epochs=EPOCHS_MAX,
        miners=MINERS_MAX,
        validators=VALIDATORS_MAX,
        seed=SEED_MAX,
    )
    assert (spec_max.epochs, spec_max.miners, spec_max.validators) == (
        EPOCHS_MAX,
        MINERS_MAX,
        VALIDATORS_MAX,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be between 1 and"),
        (["--epochs", "1", "--miners", "100000"], "--miners must be between 1 and"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    result = runner.invoke(
        app, ["network", "simulate", "--subnet", SUBNET, "--home", str(home), *args]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert result.stdout == ""
    assert not home.exists()


def test_cli_json_and_continuing_another_subnet_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = ["network", "simulate", "--home", str(home), "--miners", "4", "--validators", "2"]
    result = runner.invoke(app, [*base, "--subnet", SUBNET, "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["epochs"], summary["batches"], summary["last_epoch"]) == (2, 3, 1)
    assert (summary["miners"], summary["validators"]) == (4, 2)
    assert summary["supply_identity_holds"] is True
    assert summary["bytes_per_epoch"] > 0 and summary["ledger_bytes"] > summary["bytes_per_epoch"]
    before = batch_hashes(home)
    refused = runner.invoke(app, [*base, "--subnet", "other", "--epochs", "1"])
    assert refused.exit_code == 1
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no subnet 'other'" in lines[0]
    assert batch_hashes(home) == before
    assert Ledger.open(home / "ledger").verify().ok
