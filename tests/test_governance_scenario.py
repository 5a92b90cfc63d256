"""A seeded governance scenario on a simulated network, end to end.

A κ change is backtested over the stored epochs, proposed with the report's hash, voted on
(a delegator overriding its validator), tallied at the first epoch boundary after its period,
and activated one boundary later: the consensus uses the new κ from that epoch on and not
before, and replaying the epochs before and after the change reproduces them exactly. A second
proposal that misses quorum changes nothing and burns its deposit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from taoflow.ledger.governance import CHOICE_AGAINST, CHOICE_FOR
from taoflow.ledger.proposals import ProposalStatus
from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx, canonical_json
from taoflow.ledger.signing import sign
from taoflow.ledger.store import Ledger
from taoflow.tasks.audit.history import stored_epochs
from taoflow.tasks.audit.replay import replay_epoch
from taoflow.tasks.audit.whatif import WhatIfParams, whatif
from taoflow.tasks.governance.backtest import load_backtest, run_backtest, store_backtest
from taoflow.tasks.governance.boundary import commit_governance
from taoflow.tasks.simulate import SimulationSpec, simulate, simulation_keypair

SUBNET = "digits"
SEED = 11
MINERS = 10
VALIDATORS = 4
EPOCHS_BEFORE = 3
NEW_KAPPA_U16 = 58_982  # 0.9: the consensus now needs 90 % of the stake at or above a weight
VOTING_BLOCKS = 100  # one tempo of the simulated subnet


class Actors:
    """Signs user transactions of the simulated participants with their next nonce."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def account(self, name: str) -> str:
        return simulation_keypair(SEED, f"{name}/cold").public_hex

    def commit(self, name: str, tx: Tx) -> None:
        state = self.ledger.state()
        keypair = simulation_keypair(SEED, f"{name}/cold")
        tx = dataclasses.replace(tx, coldkey=keypair.public_hex)
        tx = dataclasses.replace(tx, nonce=state.next_nonce(keypair.public_hex))
        self.ledger.commit([sign(tx, keypair, network_id=state.network_id)], allow_system=False)


def boundary_then_epoch(ledger_dir: Path) -> None:
    """One epoch boundary as the epoch flow runs it: governance first, then the epoch."""
    commit_governance(ledger_dir)
    simulate(
        ledger_dir,
        SimulationSpec(SUBNET, epochs=1, miners=MINERS, validators=VALIDATORS, seed=SEED),
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("governance") / "home"
    ledger_dir = home / "ledger"
    spec = SimulationSpec(
        SUBNET, epochs=EPOCHS_BEFORE, miners=MINERS, validators=VALIDATORS, seed=SEED
    )
    simulate(ledger_dir, spec)
    ledger = Ledger.open(ledger_dir)
    actors = Actors(ledger)
    yuma_before = ledger.state().subnets[SUBNET].config.yuma
    old_kappa = yuma_before.get("kappa_u16", 32_767)
    # miner-0 delegates to validator-3 (the largest stake) before the proposal opens
    validator_hotkey = simulation_keypair(SEED, "validator-3/hot").public_hex
    actors.commit(
        "miner-0",
        Tx("stake/miner-0", Kind.ADD_STAKE, hotkey=validator_hotkey, amount_rao=RAO_PER_TAO),
    )
    change = {"yuma": {"kappa_u16": NEW_KAPPA_U16}}
    backtest = run_backtest(ledger, subnet=SUBNET, values=change, epochs=EPOCHS_BEFORE)
    store_backtest(home / "backtests", backtest)
    proposal = {
        "kind": "subnet_params",
        "title": "Raise kappa to 0.9",
        "deposit_rao": RAO_PER_TAO,
        "voting_blocks": VOTING_BLOCKS,
        "subnet": SUBNET,
        "changes": change,
        "backtest_sha256": backtest.sha256,
    }
    actors.commit(
        "owner",
        Tx(
            "proposal/kappa",
            Kind.PROPOSAL,
            amount_rao=RAO_PER_TAO,
            payload=canonical_json(proposal),
        ),
    )
    doomed = {
        "kind": "subnet_params",
        "title": "Halve the bonds moving average",
        "deposit_rao": RAO_PER_TAO,
        "voting_blocks": VOTING_BLOCKS,
        "subnet": SUBNET,
        "changes": {"yuma": {"bonds_moving_average_ppm": 450_000}},
    }
    actors.commit(
        "miner-1",
        Tx(
            "proposal/doomed", Kind.PROPOSAL, amount_rao=RAO_PER_TAO, payload=canonical_json(doomed)
        ),
    )
    for name, choice in (
        ("validator-3", CHOICE_FOR),
        ("validator-2", CHOICE_FOR),
        ("validator-1", CHOICE_FOR),
        ("miner-0", CHOICE_AGAINST),  # overrides validator-3 for its 1 τ of stake
    ):
        body = {"proposal_id": "proposal/kappa", "choice": choice}
        actors.commit(name, Tx(f"vote/{name}", Kind.VOTE, payload=canonical_json(body)))
    state = ledger.state()
    burned_before = state.burned_rao
    miner_1_before = state.balance(actors.account("miner-1"))
    for _ in range(4):
        boundary_then_epoch(ledger_dir)
    commit_governance(ledger_dir)  # nothing due any more
    return {
        "home": home,
        "ledger_dir": ledger_dir,
        "old_kappa": old_kappa,
        "old_bonds_ma_ppm": yuma_before["bonds_moving_average_ppm"],
        "backtest": backtest,
        "burned_before": burned_before,
        "miner_1_before": miner_1_before,
        "miner_1": actors.account("miner-1"),
        "miner_0": actors.account("miner-0"),
    }


def test_the_change_is_tallied_then_activated_at_the_next_boundary(scenario: dict) -> None:
    ledger = Ledger.open(scenario["ledger_dir"])
    state = ledger.state()
    record = state.proposals["proposal/kappa"]
    assert record.status is ProposalStatus.ACTIVATED
    assert record.tally is not None and record.tally.passed
    # the delegator's 1 τ stake on validator-3 was cast against, its own balance too
    assert record.tally.against_rao == record.power.power_rao(scenario["miner_0"])
    first_under_change = dict(record.effective_from_epoch)[SUBNET]
    rows = ledger.table().select(["tx_id", "kind", "payload"]).to_pylist()
    payloads = {row["tx_id"]: row["payload"] for row in rows}
    boundary_kinds = {Kind.EPOCH, Kind.PROPOSAL_TALLY, Kind.PROPOSAL_ACTIVATION}
    kinds = [(Kind(r["kind"]), r["tx_id"]) for r in rows if r["kind"] in boundary_kinds]
    tally_at = kinds.index((Kind.PROPOSAL_TALLY, "governance/proposal/kappa/tally"))
    activation_at = kinds.index((Kind.PROPOSAL_ACTIVATION, "governance/proposal/kappa/activation"))
    epochs_before_tally = [tx_id for kind, tx_id in kinds[:tally_at] if kind == Kind.EPOCH]
    epochs_between = [tx_id for kind, tx_id in kinds[tally_at:activation_at] if kind == Kind.EPOCH]
    assert len(epochs_between) == 1  # activation: the boundary after the tally's
    assert first_under_change == len(epochs_before_tally) + 1
    closing_epoch = json.loads(payloads[epochs_before_tally[-1]])
    assert closing_epoch["block"] >= record.closes_block  # tallied once the period closed
    previous_epoch = json.loads(payloads[epochs_before_tally[-2]])
    assert previous_epoch["block"] < record.closes_block  # and not one boundary earlier


def test_consensus_uses_the_new_kappa_from_that_epoch_on_and_replays_identically(
    scenario: dict,
) -> None:
    ledger = Ledger.open(scenario["ledger_dir"])
    state = ledger.state()
    first = dict(state.proposals["proposal/kappa"].effective_from_epoch)[SUBNET]
    last = state.last_epoch[SUBNET]
    assert first < last
    for stored in stored_epochs(ledger, subnet=SUBNET, first=0, last=last):
        kappa = stored.ctx.config.yuma.get("kappa_u16", 32_767)
        assert kappa == (NEW_KAPPA_U16 if stored.epoch >= first else scenario["old_kappa"])
        report = replay_epoch(stored, from_stage="consensus", ledger=ledger)
        assert report.identical, (stored.epoch, report.differences[:3])
    # the new κ mattered: the first epoch under it, recomputed with the old κ, pays otherwise
    old = WhatIfParams(yuma=(("kappa_u16", scenario["old_kappa"]),))
    report = whatif(ledger, subnet=SUBNET, first=first, last=first, overrides=old)
    assert any(delta.delta_rao != 0 for delta in report.hotkeys)


def test_failing_proposal_changes_nothing_and_burns_its_deposit(scenario: dict) -> None:
    state = Ledger.open(scenario["ledger_dir"]).state()
    record = state.proposals["proposal/doomed"]
    assert record.status is ProposalStatus.NO_QUORUM
    assert state.burned_rao - scenario["burned_before"] == RAO_PER_TAO
    bonds_ma_ppm = state.subnets[SUBNET].config.yuma["bonds_moving_average_ppm"]
    assert bonds_ma_ppm == scenario["old_bonds_ma_ppm"] != 450_000
    assert (
        state.balance(scenario["miner_1"]) == scenario["miner_1_before"]
    )  # no refund, no emission
    assert not any(key.startswith("proposal/") for key in state.locked)
    state.check_supply()


def test_the_attached_backtest_matches_its_stored_report(scenario: dict) -> None:
    state = Ledger.open(scenario["ledger_dir"]).state()
    sha = state.proposals["proposal/kappa"].backtest_sha256
    assert sha == scenario["backtest"].sha256
    assert (
        load_backtest(scenario["home"] / "backtests", sha).summary == scenario["backtest"].summary
    )
