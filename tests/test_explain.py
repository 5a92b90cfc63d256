"""``taoflow explain``: one reward explained from artifact to ledger rows, and its numbers add up.

One simulated network (12 miners, 5 validators, 3 epochs: seconds) is shared by every test; a
test that damages a record works on its own copy.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest
from cli_helpers import cli, wallet_network

from taoflow.ledger.payouts import EpochShares, tao_text
from taoflow.ledger.schema import Kind
from taoflow.ledger.store import Ledger
from taoflow.ledger.store.records import record_path
from taoflow.tasks.audit.explain import (
    ExplainError,
    Explanation,
    choose_hotkey,
    explain,
    hotkeys_named,
)
from taoflow.tasks.audit.history import StoredEpoch, stored_epoch
from taoflow.tasks.consensus.stage import run_consensus
from taoflow.tasks.emit import commit_epoch
from taoflow.tasks.gather import gather_context
from taoflow.tasks.records import epoch_records
from taoflow.tasks.simulate import (
    SimulationSpec,
    cosigners_of,
    scores_weights,
    simulate,
    synthetic_scores,
)

SUBNET = "sim"
EPOCHS = 3
MINERS = 12
VALIDATORS = 5
REJECTED_EPOCH = EPOCHS
REJECTED_UID = VALIDATORS + 5
REJECTION = "artifact does not load: config.json names an unknown model family"
UID_EMISSION_KINDS = [
    Kind.EMISSION_INCENTIVE.value,
    Kind.EMISSION_DIVIDEND.value,
    Kind.EMISSION_DELEGATOR.value,
]


@dataclass(frozen=True)
class Network:
    home: Path
    ledger: Ledger
    epochs: tuple[StoredEpoch, ...]

    def hotkey(self, uid: int, *, epoch: int = EPOCHS - 1) -> str:
        return self.epochs[epoch].ctx.neurons[uid].hotkey

    def explain(self, uid: int, *, epoch: int = EPOCHS - 1) -> Explanation:
        return explain(
            self.ledger, subnet=SUBNET, hotkey=self.hotkey(uid, epoch=epoch), epoch=epoch
        )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    home = tmp_path_factory.mktemp("explain")
    spec = SimulationSpec(
        subnet=SUBNET, epochs=EPOCHS, miners=MINERS, validators=VALIDATORS, seed=3
    )
    simulate(home / "ledger", spec)
    commit_with_a_rejected_miner(home / "ledger", seed=spec.seed)
    ledger = Ledger.open(home / "ledger")
    epochs = tuple(stored_epoch(ledger, subnet=SUBNET, epoch=e) for e in range(EPOCHS + 1))
    return Network(home=home, ledger=ledger, epochs=epochs)


def commit_with_a_rejected_miner(ledger_dir: Path, *, seed: int) -> None:
    """Epoch ``REJECTED_EPOCH``: as the epoch flow commits one whose evaluation rejected
    ``REJECTED_UID`` (no scores for it, its uid listed with the reason)."""
    ctx = gather_context(Ledger.open(ledger_dir), subnet=SUBNET)
    scores = {
        v: {m: s for m, s in row.items() if m != REJECTED_UID}
        for v, row in synthetic_scores(ctx, seed=seed).items()
    }
    outcome = run_consensus(ctx, scores_weights(ctx, scores))
    shares = EpochShares.from_consensus(
        hotkeys=[n.hotkey for n in ctx.neurons],
        incentive=outcome.outputs.incentive.tolist(),
        dividends=outcome.outputs.dividends.tolist(),
        validator_share=outcome.outputs.validator_emission_share.tolist(),
        rejected_uids=frozenset({REJECTED_UID}),
    )
    errors = {REJECTED_UID: REJECTION}
    records = epoch_records(ctx, outcome, scores=scores, errors=errors, sample_size=0)
    validators = cosigners_of(ctx, seed=seed, validators=VALIDATORS)
    commit_epoch(ledger_dir, ctx, shares, records=records, cosigners=validators)


def ledger_rows_rao(ledger: Ledger, *, epoch: int, uid: int) -> int:
    """Σ of the ledger's incentive, dividend and delegator rows for ``uid`` (read independently)."""
    table = ledger.table()
    mask = pc.and_(
        pc.and_(pc.equal(table["subnet"], SUBNET), pc.equal(table["epoch"], epoch)),
        pc.and_(pc.equal(table["uid"], uid), pc.is_in(table["kind"], pa.array(UID_EMISSION_KINDS))),
    )
    return int(pc.sum(table.filter(mask)["amount_rao"]).as_py() or 0)


def uids_column(stored: StoredEpoch, name: str) -> list[Any]:
    return list(stored.records["uids"].column(name).to_pylist())


# ---- the numbers add up ---------------------------------------------------------------------


@pytest.mark.parametrize("epoch", [0, EPOCHS - 1])
def test_every_uids_emission_equals_its_ledger_rows_and_the_record(
    net: Network, epoch: int
) -> None:
    recorded = uids_column(net.epochs[epoch], "emission_rao")
    total = 0
    for uid in range(MINERS + VALIDATORS):
        x = net.explain(uid, epoch=epoch)
        assert x.ok, [c for c in x.checks if not c.holds]
        assert x.emission_rao == ledger_rows_rao(net.ledger, epoch=epoch, uid=uid)
        assert x.emission_rao == recorded[uid] == x.recorded_emission_rao
        assert x.emission_rao == sum(p.amount_rao for p in x.payouts)
        total += x.emission_rao
    split = net.explain(0, epoch=epoch).split
    assert total + split.owner_rao + split.unissued_rao == split.scheduled_rao


def test_clipped_weights_are_min_of_the_normalised_weight_and_consensus(net: Network) -> None:
    stored = net.epochs[EPOCHS - 1]
    weights = stored.records["weights"].to_pylist()
    row_sum: dict[int, int] = {}
    for w in weights:
        row_sum[w["validator"]] = row_sum.get(w["validator"], 0) + w["weight_u16"]
    consensus = uids_column(stored, "consensus")
    clipped_somewhere = False
    for miner in range(VALIDATORS, VALIDATORS + MINERS):
        x = net.explain(miner)
        mine = {w["validator"]: w["weight_u16"] for w in weights if w["miner"] == miner}
        assert sorted(j.validator for j in x.miner.judgements) == sorted(mine)
        for j in x.miner.judgements:
            weight = mine[j.validator] / row_sum[j.validator]
            assert j.masked == "" and j.permitted
            assert j.weight_u16 == mine[j.validator]
            assert j.weight == weight
            assert j.consensus == consensus[miner]
            assert j.clipped_weight == min(weight, consensus[miner])
            assert j.clipped_by == weight - min(weight, consensus[miner])
            clipped_somewhere |= j.clipped_by > 0
    assert clipped_somewhere, "the scenario must clip at least one weight"


def test_incentive_is_the_record_and_the_rank_share(net: Network) -> None:
    stored = net.epochs[EPOCHS - 1]
    incentive = uids_column(stored, "incentive")
    for miner in range(VALIDATORS, VALIDATORS + MINERS):
        m = net.explain(miner).miner
        assert m.incentive == incentive[miner]
        assert m.rank_total > 0
        assert m.incentive_recomputed == pytest.approx(incentive[miner], rel=1e-9, abs=1e-12)
        assert m.rank == pytest.approx(sum(j.rank_contribution for j in m.judgements), rel=1e-12)
    assert sum(incentive[VALIDATORS:]) == pytest.approx(1.0)


def test_epoch_zero_counts_no_weight_and_pays_validators_the_miners_pool(net: Network) -> None:
    miner = net.explain(VALIDATORS, epoch=0)
    assert {j.masked for j in miner.miner.judgements} == {"validator held no permit this epoch"}
    assert miner.miner.incentive == 0.0 and miner.emission_rao == 0 and miner.payouts == ()
    validator = net.explain(0, epoch=0)
    assert validator.split.fallback
    assert validator.split.dividend_rao == validator.emission_rao > 0


def test_a_validators_rows_are_its_take_and_its_stakers_parts(net: Network) -> None:
    stored = net.epochs[EPOCHS - 1]
    neuron = stored.ctx.neurons[1]
    x = net.explain(1)
    assert x.validator is not None and x.role == "validator"
    take = [p for p in x.payouts if p.kind == Kind.EMISSION_DIVIDEND.value]
    parts = [p for p in x.payouts if p.kind == Kind.EMISSION_DELEGATOR.value]
    assert [p.amount_rao for p in take] == [x.split.dividend_rao * neuron.take_ppm // 1_000_000]
    assert sum(p.amount_rao for p in x.payouts) == x.split.dividend_rao
    assert {p.coldkey.id for p in parts} == {c for c, _ in neuron.stakers}
    assert {(p.moves, p.hotkey.id) for p in x.payouts} == {("stake", neuron.hotkey)}
    bonds = [
        (b["miner"], b["bond_u16"])
        for b in stored.records["bonds"].to_pylist()
        if b["validator"] == 1
    ]
    assert list(x.validator.bonds) == bonds
    assert x.validator.dividends == uids_column(stored, "dividends")[1]
    assert x.validator.validator_trust == pytest.approx(
        sum(j.clipped_weight for j in x.validator.weights), rel=1e-12
    )


def test_a_miner_is_paid_incentive_as_stake_on_its_own_hotkey(net: Network) -> None:
    uid = VALIDATORS + 2
    neuron = net.epochs[EPOCHS - 1].ctx.neurons[uid]
    x = net.explain(uid)
    [row] = x.payouts
    assert (row.kind, row.moves, row.coldkey.id, row.hotkey.id) == (
        Kind.EMISSION_INCENTIVE.value,
        "stake",
        neuron.coldkey,
        neuron.hotkey,
    )
    assert row.tx_id == f"epoch/{SUBNET}/{EPOCHS - 1}/emission_incentive/{uid}"
    assert row.amount_rao == x.split.incentive_rao == x.emission_rao


def test_the_submission_is_the_commit_in_the_ledger(net: Network) -> None:
    uid = VALIDATORS + 4
    neuron = net.epochs[EPOCHS - 1].ctx.neurons[uid]
    table = net.ledger.table()
    commits = table.filter(
        pc.and_(
            pc.equal(table["kind"], Kind.SUBMISSION_COMMIT.value),
            pc.equal(table["hotkey"], neuron.hotkey),
        )
    ).to_pylist()
    [commit] = commits
    s = net.explain(uid).submission
    assert (s.commit_tx_id, s.commit_block) == (commit["tx_id"], neuron.artifact_block)
    assert s.digest == json.loads(commit["payload"])["digest"] == neuron.artifact_digest
    assert s.eligible and s.rejection == "" and s.eligible_from_block == neuron.artifact_block
    validator = net.explain(0).submission
    assert (validator.commit_tx_id, validator.digest, validator.eligible) == (None, "", False)


def test_a_rejected_miner_shows_the_reason_and_earns_no_incentive(net: Network) -> None:
    x = net.explain(REJECTED_UID, epoch=REJECTED_EPOCH)
    assert x.ok, [c for c in x.checks if not c.holds]
    assert x.submission.rejection == REJECTION and x.submission.eligible
    assert x.submission.commit_tx_id is not None
    assert x.miner.judgements == () and x.miner.incentive == 0.0
    assert (x.payouts, x.emission_rao, x.split.incentive_rao) == ((), 0, 0)
    assert f"- rejection: {REJECTION}" in x.to_markdown()
    others = net.explain(REJECTED_UID - 1, epoch=REJECTED_EPOCH)
    assert others.ok and others.emission_rao > 0 and others.submission.rejection == ""


# ---- output ---------------------------------------------------------------------------------


def test_json_holds_every_part_and_round_trips(net: Network) -> None:
    x = net.explain(VALIDATORS + 1)
    data = json.loads(json.dumps(x.to_dict()))
    assert data["ok"] is True and data["uid"] == VALIDATORS + 1
    assert data["emission_rao"] == x.emission_rao and data["emission_tao"] == tao_text(
        x.emission_rao
    )
    assert set(data) >= {"submission", "miner", "validator", "split", "payouts", "checks"}
    assert data["validator"] is None
    assert len(data["miner"]["judgements"]) == VALIDATORS
    assert {c["name"] for c in data["checks"]} >= {
        "emission rows = uids.emission_rao",
        "emission rows = the ledger's plan",
        "incentive = recomputed from weights",
    }
    assert data["payouts"][0]["coldkey"]["id"] == x.payouts[0].coldkey.id


def test_markdown_carries_the_key_figures(net: Network) -> None:
    x = net.explain(VALIDATORS + 3)
    text = x.to_markdown()
    assert f"uid {x.uid}" in text and f"epoch {EPOCHS - 1}" in text
    assert str(x.submission.commit_tx_id) in text and x.submission.digest in text
    assert f"**{tao_text(x.emission_rao)} τ**" in text
    assert x.payouts[0].tx_id in text
    assert f"{x.miner.incentive:.6f}" in text and f"{x.miner.consensus:.6f}" in text
    assert "**FAILS**" not in text and text.count("**holds**") == len(x.checks)


def test_names_come_from_the_labels_given(net: Network) -> None:
    neuron = net.epochs[EPOCHS - 1].ctx.neurons[VALIDATORS]
    labels = {neuron.hotkey: "alice/default", neuron.coldkey: "alice"}
    x = explain(net.ledger, subnet=SUBNET, hotkey=neuron.hotkey, epoch=2, labels=labels)
    assert (x.hotkey.name, x.coldkey.name) == ("alice/default", "alice")
    assert {p.coldkey.name for p in x.payouts} == {"alice"}
    assert "alice/default (uid" in x.to_markdown()


def test_hotkeys_are_named_by_id_wallet_hotkey_or_wallet(net: Network) -> None:
    one, two = net.hotkey(VALIDATORS), net.hotkey(VALIDATORS + 1)
    labels = {one: "alice/default", two: "alice/spare", "c" * 64: "alice"}
    assert hotkeys_named(one, labels) == (one,)
    assert hotkeys_named("alice/spare", labels) == (two,)
    assert set(hotkeys_named("alice", labels)) == {one, two}
    with pytest.raises(ExplainError, match="neither a hotkey id nor a local wallet"):
        hotkeys_named("bob", labels)
    state = net.ledger.state()
    assert choose_hotkey(state, [one], subnet=None, given="x") == (SUBNET, one)
    with pytest.raises(ExplainError, match="2 hotkeys on 'sim'"):
        choose_hotkey(state, [one, two], subnet=None, given="alice")
    with pytest.raises(ExplainError, match="registered on no subnet now: pass --subnet"):
        choose_hotkey(state, ["d" * 64], subnet=None, given="d" * 64)


# ---- a record that does not add up ----------------------------------------------------------


def test_a_changed_emission_in_the_uids_record_is_named(
    net: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    shutil.copytree(net.home, home)
    uid = VALIDATORS + 2
    ledger = Ledger.open(home / "ledger")
    ref = ledger.epoch_record_refs(SUBNET, EPOCHS - 1)["uids"]
    path = record_path(ledger.root, subnet=SUBNET, epoch=EPOCHS - 1, ref=ref)
    uids = net.epochs[EPOCHS - 1].records["uids"]
    emission = np.asarray(uids.column("emission_rao").to_numpy()).copy()
    emission[uid] += 1
    index = uids.schema.get_field_index("emission_rao")
    changed = uids.set_column(index, uids.schema.field(index), pa.array(emission))
    path.chmod(0o644)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, changed.schema) as writer:
        writer.write_table(changed)
    x = explain(ledger, subnet=SUBNET, hotkey=net.hotkey(uid), epoch=EPOCHS - 1)
    failed = {c.name for c in x.checks if not c.holds}
    assert failed == {"emission rows = uids.emission_rao", "records as committed"}
    assert x.recorded_emission_rao == x.emission_rao + 1 and not x.ok
    ran = cli(capsys, home, "explain", "--hotkey", net.hotkey(uid), "--epoch", str(EPOCHS - 1))
    assert ran.code == 1
    assert ran.err_lines == [
        f"error: epoch {EPOCHS - 1} of 'sim' does not add up for uid {uid}: "
        "emission rows = uids.emission_rao, records as committed"
    ]
    assert "✗ emission rows = uids.emission_rao" in ran.out


# ---- the command ----------------------------------------------------------------------------


def test_the_command_prints_the_explanation_and_json(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = VALIDATORS + 2
    x = net.explain(uid)
    ran = cli(capsys, net.home, "explain", "--hotkey", net.hotkey(uid), "--epoch", "2")
    assert ran.code == 0 and ran.err == ""
    assert f"uid {uid} · sim · epoch 2" in ran.out
    assert f"paid to uid {uid}: {tao_text(x.emission_rao)} τ" in ran.out
    assert str(x.submission.commit_tx_id) in ran.out
    ran = cli(capsys, net.home, "explain", "--hotkey", net.hotkey(uid), "--epoch", "2", "--json")
    assert ran.code == 0 and json.loads(ran.out) == json.loads(json.dumps(x.to_dict()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epoch", "7"], "error: subnet 'sim' has no committed epoch 7 (epochs 0..3)"),
        (["--epoch", "1", "--subnet", "nope"], "error: no subnet 'nope' in this ledger"),
    ],
)
def test_an_epoch_or_subnet_the_ledger_lacks_is_one_line_exit_2(
    net: Network, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    ran = cli(capsys, net.home, "explain", "--hotkey", net.hotkey(0), *args)
    assert ran.code == 2 and ran.out == ""
    [line] = ran.err_lines
    assert line.startswith(message)


def test_an_unknown_hotkey_is_one_line_exit_2(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(capsys, net.home, "explain", "--hotkey", "nobody", "--epoch", "1")
    assert (ran.code, ran.out) == (2, "")
    [line] = ran.err_lines
    assert line.startswith("error: 'nobody' is neither a hotkey id nor a local wallet")
    stranger = "e" * 64
    ran = cli(capsys, net.home, "explain", "--hotkey", stranger, "--epoch", "1")
    assert (ran.code, ran.err_lines) == (
        2,
        [f"error: '{stranger}' is registered on no subnet now: pass --subnet"],
    )
    ran = cli(capsys, net.home, "explain", "--hotkey", stranger, "--epoch", "1", "-s", SUBNET)
    assert (ran.code, ran.err_lines) == (
        2,
        [f"error: hotkey {stranger[:16]}… held no uid on 'sim' in epoch 1"],
    )


# ---- the flow -------------------------------------------------------------------------------


def test_the_flow_publishes_the_markdown_under_the_neurons_key(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.artifacts

    from taoflow.flows.explain import explain_flow

    published: list[dict[str, str]] = []
    monkeypatch.setattr(
        prefect.artifacts, "create_markdown_artifact", lambda **kw: published.append(kw)
    )
    monkeypatch.setenv("TAOFLOW_HOME", str(net.home))
    uid = VALIDATORS + 1
    result = explain_flow.fn(hotkey=net.hotkey(uid), epoch=2)
    x = net.explain(uid)
    assert result == x.to_dict()
    [artifact] = published
    assert artifact["key"] == f"explain-sim-{uid}"
    assert artifact["markdown"] == x.to_markdown()


def test_a_wallet_name_picks_its_hotkey_on_the_subnet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wallet_network(tmp_path, monkeypatch)  # bob/default is registered on 'sn', bob/owner is not
    ran = cli(capsys, tmp_path, "explain", "--hotkey", "bob", "--epoch", "0")
    assert (ran.code, ran.err_lines) == (2, ["error: subnet 'sn' has no committed epoch yet"])
    ran = cli(capsys, tmp_path, "explain", "--hotkey", "alice", "--epoch", "0")
    assert (ran.code, ran.err_lines) == (
        2,
        ["error: 'alice' is registered on no subnet now: pass --subnet"],
    )
