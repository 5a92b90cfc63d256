"""Governance at epoch boundaries: the simulator and the epoch flow run it before each epoch.

On a small simulated network a proposal closes between two epochs: its tally batch is committed
at the first boundary whose block reached the closing block, its activation exactly one boundary
later, and nothing twice. The epoch flow (on a copy of the demo network) commits the tally batch
before the epoch's batch and publishes the markdown artifact of what it committed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from demo_helpers import demo_env
from explorer_helpers import copy_home, propose, vote

from taoflow.ledger.governance import CHOICE_FOR
from taoflow.ledger.payouts import tao_text
from taoflow.ledger.proposals import ProposalStatus
from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json
from taoflow.ledger.signing import sign
from taoflow.ledger.store import Ledger
from taoflow.tasks.governance.boundary import (
    GovernanceCommit,
    commit_governance,
    commit_governance_on,
    markdown,
)
from taoflow.tasks.simulate import (
    EpochReport,
    SimulationSpec,
    commit_simulated_epoch,
    simulate,
    simulation_keypair,
)

SUBNET = "digits"
SEED = 5
MINERS = 4
VALIDATORS = 3
TEMPO_BLOCKS = 100
"""The simulated subnet's tempo: each epoch entry moves the block by this much."""
VOTING_BLOCKS = 150
"""Closes between the second and the third boundary after the proposal."""
NEW_KAPPA_U16 = 39_321
PROPOSAL_ID = "proposal/kappa"
EPOCHS_AFTER = 5
RUN_TIMEOUT_S = 600
READ_ARTIFACT = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId)
from prefect.client.schemas.sorting import LogSort

async def main(key):
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        out = []
        for artifact in found:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[artifact.flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC)
            out.append({"type": artifact.type, "data": artifact.data,
                        "logs": [log.message for log in logs]})
        print(json.dumps(out))
asyncio.run(main(sys.argv[1]))
"""
"""Prints the artifacts with the given key and their flow runs' log lines, as JSON."""


def spec(epochs: int) -> SimulationSpec:
    return SimulationSpec(SUBNET, epochs=epochs, miners=MINERS, validators=VALIDATORS, seed=SEED)


def commit_as(ledger: Ledger, name: str, tx: Tx) -> None:
    """Sign ``tx`` as the simulated participant ``name``'s coldkey and commit it."""
    state = ledger.state()
    keypair = simulation_keypair(SEED, f"{name}/cold")
    tx = dataclasses.replace(
        tx, coldkey=keypair.public_hex, nonce=state.next_nonce(keypair.public_hex)
    )
    ledger.commit([sign(tx, keypair, network_id=state.network_id)], allow_system=False)


def batch_kinds(ledger: Ledger) -> list[tuple[int, list[Kind]]]:
    """Each batch's number and its entries' kinds, in commit order."""
    rows = ledger.table().select(["batch_no", "kind"]).to_pylist()
    batches: dict[int, list[Kind]] = {}
    for row in rows:
        batches.setdefault(int(row["batch_no"]), []).append(Kind(row["kind"]))
    return sorted(batches.items())


@pytest.fixture(scope="module")
def voted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A simulated network where a κ change was proposed and voted, then 5 epochs ran."""
    ledger_dir = tmp_path_factory.mktemp("governance-flow") / "ledger"
    simulate(ledger_dir, spec(2))
    ledger = Ledger.open(ledger_dir)
    opened_block = ledger.state().block
    proposal = {
        "kind": "subnet_params",
        "title": "Lower kappa",
        "deposit_rao": RAO_PER_TAO,
        "voting_blocks": VOTING_BLOCKS,
        "subnet": SUBNET,
        "changes": {"yuma": {"kappa_u16": NEW_KAPPA_U16}},
    }
    commit_as(
        ledger,
        "owner",
        Tx(PROPOSAL_ID, Kind.PROPOSAL, amount_rao=RAO_PER_TAO, payload=canonical_json(proposal)),
    )
    for i in range(VALIDATORS):
        vote = {"proposal_id": PROPOSAL_ID, "choice": CHOICE_FOR}
        commit_as(
            ledger, f"validator-{i}", Tx(f"vote/{i}", Kind.VOTE, payload=canonical_json(vote))
        )
    reports: list[EpochReport] = []
    simulate(ledger_dir, spec(EPOCHS_AFTER), on_epoch=reports.append)
    return {"ledger_dir": ledger_dir, "opened_block": opened_block, "reports": reports}


def test_tally_then_activation_at_consecutive_boundaries(voted: dict[str, Any]) -> None:
    reports: list[EpochReport] = voted["reports"]
    committed = [(r.epoch, r.governance) for r in reports]
    first = reports[0].epoch
    # proposal at block b closes at b + 150: epoch `first` ends at b + 100 (still open), epoch
    # first + 1 at b + 200 (closed) → tallied before first + 2, activated before first + 3
    assert [epoch for epoch, gov in committed if gov is not None] == [first + 2, first + 3]
    tally, activation = reports[2].governance, reports[3].governance
    assert tally is not None and activation is not None
    assert [(e.proposal_id, e.kind) for e in tally.entries] == [(PROPOSAL_ID, "tally")]
    assert [(e.proposal_id, e.kind) for e in activation.entries] == [(PROPOSAL_ID, "activation")]
    assert activation.entries[0].effective_from_epoch == ((SUBNET, first + 3),)
    ledger = Ledger.open(voted["ledger_dir"])
    record = ledger.state().proposals[PROPOSAL_ID]
    assert record.closes_block == voted["opened_block"] + VOTING_BLOCKS
    assert record.status is ProposalStatus.ACTIVATED
    assert dict(record.effective_from_epoch) == {SUBNET: first + 3}
    # each governance batch holds only its entry and comes right before its epoch's batch
    batches = dict(batch_kinds(ledger))
    assert tally.batch_no is not None and activation.batch_no is not None
    assert batches[tally.batch_no] == [Kind.PROPOSAL_TALLY]
    assert batches[activation.batch_no] == [Kind.PROPOSAL_ACTIVATION]
    assert reports[2].batch_no == tally.batch_no + 1
    assert reports[3].batch_no == activation.batch_no + 1
    assert reports[1].batch_no + 1 == tally.batch_no  # no governance batch before epoch first+1


def test_the_tally_batch_follows_the_first_epoch_that_reached_the_closing_block(
    voted: dict[str, Any],
) -> None:
    ledger = Ledger.open(voted["ledger_dir"])
    record = ledger.state().proposals[PROPOSAL_ID]
    rows = ledger.table().select(["batch_no", "kind", "payload"]).to_pylist()
    tally_batch = next(r["batch_no"] for r in rows if r["kind"] == Kind.PROPOSAL_TALLY)
    blocks_before = [
        json.loads(r["payload"])["block"]
        for r in rows
        if r["kind"] == Kind.EPOCH and r["batch_no"] < tally_batch
    ]
    assert blocks_before[-1] >= record.closes_block > blocks_before[-2]


def test_nothing_is_committed_twice(voted: dict[str, Any]) -> None:
    ledger = Ledger.open(voted["ledger_dir"])
    before = len(ledger.records())
    assert commit_governance_on(ledger) == GovernanceCommit(None, None, ())
    assert commit_governance(voted["ledger_dir"]) == GovernanceCommit(None, None, ())
    assert len(ledger.records()) == before
    kinds = [kind for _, batch in batch_kinds(ledger) for kind in batch]
    assert kinds.count(Kind.PROPOSAL_TALLY) == kinds.count(Kind.PROPOSAL_ACTIVATION) == 1


def test_nothing_due_commits_no_batch(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    simulate(ledger_dir, spec(1))
    ledger = Ledger.open(ledger_dir)
    signal = {"kind": "signal", "title": "Open", "deposit_rao": RAO_PER_TAO, "voting_blocks": 100}
    commit_as(
        ledger,
        "owner",
        Tx("proposal/open", Kind.PROPOSAL, amount_rao=RAO_PER_TAO, payload=canonical_json(signal)),
    )
    before = [(r.batch_no, r.batch_hash) for r in ledger.records()]
    assert commit_governance(ledger_dir) == GovernanceCommit(None, None, ())  # still open
    assert commit_governance_on(Ledger.open(ledger_dir)) == GovernanceCommit(None, None, ())
    assert [(r.batch_no, r.batch_hash) for r in Ledger.open(ledger_dir).records()] == before


def test_markdown_lists_the_tally_and_the_activation(voted: dict[str, Any]) -> None:
    reports: list[EpochReport] = voted["reports"]
    tally, activation = reports[2].governance, reports[3].governance
    assert tally is not None and activation is not None
    numbers = Ledger.open(voted["ledger_dir"]).state().proposal_tally(PROPOSAL_ID)
    assert tally.entries[0].tally == numbers
    text = markdown(tally, title="Governance before digits epoch 4")
    (row,) = [line for line in text.splitlines() if line.startswith("| proposal/kappa")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    percent = f"{100 * numbers.turnout_rao / numbers.total_rao:.2f} %"
    assert cells == [
        PROPOSAL_ID,
        tao_text(numbers.for_rao),
        tao_text(numbers.against_rao),
        tao_text(numbers.abstain_rao),
        percent,
        "10 % met",
        "50 %",
        "yes",
        f"{tao_text(RAO_PER_TAO)} τ returned",
    ]
    assert (
        f"- {PROPOSAL_ID}: {tao_text(numbers.turnout_rao)} τ cast of "
        f"{tao_text(numbers.total_rao)} τ of voting power at its opening block"
    ) in text.splitlines()
    first = reports[0].epoch
    assert markdown(activation, title="t").splitlines()[-1] == (
        f"- proposal/kappa: in effect for digits from epoch {first + 3}"
    )


@pytest.mark.integration
def test_the_epoch_flow_commits_the_tally_before_the_epoch_and_publishes_it(
    demo_home: Path, tmp_path: Path
) -> None:
    home = copy_home(demo_home, tmp_path / "home")
    proposal_id = propose(home, title="Keep the demo running")
    for wallet in ("owner", "validator-0"):  # over the quorum together
        vote(home, wallet=wallet, proposal_id=proposal_id, choice=CHOICE_FOR)
    # one epoch boundary passes the closing block without the flow (synthetic scores, same
    # ledger rules): the tally is then due at the start of the next epoch flow run
    ledger = Ledger.open(home / "ledger")
    commit_simulated_epoch(ledger, seed=0, subnet="digits")
    (due,) = ledger.state().governance_entries_due()
    epoch = ledger.state().last_epoch["digits"] + 1
    env = {**demo_env(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    run = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "epoch", "run", "--subnet", "digits", "--json"],
        env={**env, "TAOFLOW_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = Ledger.open(home / "ledger").table().select(["batch_no", "tx_id", "kind"]).to_pylist()
    (tally,) = [r for r in rows if r["kind"] == Kind.PROPOSAL_TALLY]
    (epoch_row,) = [r for r in rows if r["tx_id"] == f"epoch/digits/{epoch}"]
    assert tally["tx_id"] == due.tx_id == f"governance/{proposal_id}/tally"
    assert epoch_row["batch_no"] == tally["batch_no"] + 1  # governance first, then the epoch
    assert [r["kind"] for r in rows if r["batch_no"] == tally["batch_no"]] == [Kind.PROPOSAL_TALLY]
    read = subprocess.run(
        [sys.executable, "-c", READ_ARTIFACT, f"governance-digits-epoch-{epoch}"],
        env={**env, "PREFECT_HOME": str(home / "prefect")},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    (artifact,) = json.loads(read.stdout.strip().splitlines()[-1])
    numbers = Ledger.open(home / "ledger").state().proposal_tally(proposal_id)
    assert artifact["type"] == "markdown"
    assert artifact["data"].startswith(f"# Governance before digits epoch {epoch}\n")
    assert f"| {proposal_id} | {tao_text(numbers.for_rao)} | " in artifact["data"]
    lines = [line for line in artifact["logs"] if line.startswith(("governance:", "gather:"))]
    assert [line.split(":")[0] for line in lines] == ["governance", "gather"]
    assert numbers.passed
    assert lines[0].startswith(
        f"governance: {proposal_id}: passed (for {tao_text(numbers.for_rao)} τ"
    )
