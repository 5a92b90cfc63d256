"""Validator audit (tasks/audit/validators.py, ``taoflow audit``) on a seeded simulated network.

The network: 4 hosted validators (synthetic scores, as ``taoflow network simulate``) and 3
external ones that commit and reveal their weights before every epoch: an honest one (its own
noisy observation of the miners, weighted with the subnet's policy), a copier (last epoch's
consensus, max-upscaled to u16) and a laggard (one reveal before epoch 1, never again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import cli

from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.signing import sign
from taoflow.ledger.store import Ledger
from taoflow.settings import Settings
from taoflow.tasks.audit.copier import max_upscaled_u16
from taoflow.tasks.audit.history import StoredEpoch
from taoflow.tasks.audit.stats import average_ranks, spearman
from taoflow.tasks.audit.validators import (
    ValidatorAudit,
    audit_validators,
    reference_sample,
    sign_test_p_value,
)
from taoflow.tasks.gather import EpochContext, gather_context
from taoflow.tasks.simulate import (
    NOISE_STREAM,
    SimulationSpec,
    commit_simulated_epoch,
    miner_qualities,
    prepare,
    scores_weights,
    simulation_keypair,
)

SUBNET = "sim"
SEED = 7
EPOCHS = 12
SPEC = SimulationSpec(
    subnet=SUBNET, epochs=EPOCHS, miners=16, validators=7, seed=SEED, external_validators=3
)
HONEST, COPIER, LAGGARD = 4, 5, 6
"""Validator indices of the external validators (their uids: the owner holds no uid)."""
NOISE_SD = 0.02


@dataclass(frozen=True)
class Network:
    home: Path
    ledger: Ledger
    hotkeys: Mapping[int, str]
    """Validator index → hotkey."""


def _reveal(ledger: Ledger, *, index: int, row: Mapping[int, int], salt: str) -> None:
    """Commit then reveal ``row`` as validator ``index`` (signed with its derived hotkey)."""
    import hashlib

    key = simulation_keypair(SEED, f"validator-{index}/hot")
    state = ledger.state()
    uids = sorted(row)
    body: dict[str, Any] = {"uids": uids, "weights": [row[u] for u in uids], "salt": salt}
    digest = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    network_id = state.network.network_id  # type: ignore[union-attr]
    txs = []
    steps: list[tuple[Kind, dict[str, Any]]] = [
        (Kind.WEIGHTS_COMMIT, {"commit_hash": digest}),
        (Kind.WEIGHTS_REVEAL, body),
    ]
    for number, (kind, payload) in enumerate(steps):
        tx = Tx(
            f"weights/{salt}/{kind.value}",
            kind,
            subnet=SUBNET,
            hotkey=key.public_hex,
            nonce=state.next_nonce(key.public_hex) + number,
            payload=canonical_json(payload),
        )
        txs.append(sign(tx, key, network_id=network_id))
    result = ledger.commit(txs)
    assert result.batch_no is not None, result


def _honest_row(ctx: EpochContext, uid: int) -> dict[int, int]:
    """The honest external validator's weights: its own noisy look at the miners this epoch."""
    miners = [n.uid for n in ctx.neurons if n.artifact_digest is not None]
    rng = np.random.default_rng([NOISE_STREAM, SEED, ctx.epoch, uid])
    observed = miner_qualities(SEED, uids=ctx.n)[miners] + rng.normal(0, NOISE_SD, len(miners))
    scores = {uid: {m: round(float(s), 6) for m, s in zip(miners, observed, strict=True)}}
    return {m: w for m, w in scores_weights(ctx, scores)[uid].items() if w > 0}


def _copied_row(ledger: Ledger, epoch: int) -> dict[int, int]:
    """Last epoch's consensus, max-upscaled to u16 (what a weight copier reveals)."""
    consensus = ledger.epoch_records(SUBNET, epoch, names=("uids",))["uids"].column("consensus")
    values = consensus.to_pylist()
    return {uid: w for uid, w in enumerate(max_upscaled_u16(values)) if w > 0}


def _build(home: Path) -> Network:
    ledger = Ledger.open(Settings.load(home).ledger_dir)
    prepare(ledger, SPEC)
    for epoch in range(EPOCHS):
        ctx = gather_context(ledger, subnet=SUBNET)
        uid_of = {n.hotkey: n.uid for n in ctx.neurons}
        hot = {i: simulation_keypair(SEED, f"validator-{i}/hot").public_hex for i in range(7)}
        if epoch >= 1:
            _reveal(
                ledger, index=HONEST, row=_honest_row(ctx, uid_of[hot[HONEST]]), salt=f"h{epoch}"
            )
        if epoch == 1:
            _reveal(ledger, index=LAGGARD, row=_honest_row(ctx, uid_of[hot[LAGGARD]]), salt="l1")
        if epoch >= 2:
            _reveal(ledger, index=COPIER, row=_copied_row(ledger, epoch - 1), salt=f"c{epoch}")
        commit_simulated_epoch(ledger, seed=SEED, subnet=SUBNET)
    return Network(home=home, ledger=ledger, hotkeys=hot)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return _build(tmp_path_factory.mktemp("audit") / "home")


def _by_index(
    report_validators: list[ValidatorAudit], network: Network
) -> dict[int, ValidatorAudit]:
    by_hotkey = {v.hotkey: v for v in report_validators}
    return {i: by_hotkey[h] for i, h in network.hotkeys.items() if h in by_hotkey}


def test_the_copier_is_flagged_and_the_honest_validator_is_not(network: Network) -> None:
    report = audit_validators(network.ledger, subnet=SUBNET, first=0, last=EPOCHS - 1)
    audited = _by_index(list(report.validators), network)
    # Only external validators are audited by default.
    assert sorted(audited) == [HONEST, COPIER, LAGGARD]
    assert all(not v.hosted for v in report.validators)
    assert audited[COPIER].flags == ("copier",)
    assert audited[HONEST].flags == ()
    assert audited[LAGGARD].flags == ("laggard",)
    copier = audited[COPIER]
    # The copier revealed before epochs 2..11; epoch 2 compares with epoch 1's consensus.
    assert copier.epochs == EPOCHS and copier.epochs_with_weights == EPOCHS - 2
    assert copier.copy_epochs == EPOCHS - 2
    # Closer to last epoch's consensus in all 9 epochs where the two correlations differ (in
    # the tenth they are equal, which the sign test leaves out).
    assert copier.copy_p_value == pytest.approx(1 / 2**9)
    assert copier.copy_score is not None and copier.copy_score > 0.005
    honest = audited[HONEST]
    assert honest.copy_p_value is not None and honest.copy_p_value > 0.05
    # Fresh reveals are one tempo old; the laggard's one reveal ages by a tempo every epoch.
    tempo = network.ledger.state().subnets[SUBNET].config.tempo_blocks
    assert honest.max_lag_blocks == tempo and honest.stale_epochs == 1
    assert audited[LAGGARD].stale_epochs == EPOCHS - 1
    assert audited[LAGGARD].max_lag_blocks == (EPOCHS - 1) * tempo
    assert report.max_lag_blocks == 2 * tempo


def test_dividends_are_the_rao_the_ledger_paid(network: Network) -> None:
    report = audit_validators(network.ledger, subnet=SUBNET, first=3, last=5)
    for validator in report.validators:
        paid = 0
        for epoch in range(3, 6):
            uids = network.ledger.epoch_records(SUBNET, epoch, names=("uids",))["uids"]
            paid += uids.column("emission_rao")[validator.uid].as_py()
        assert validator.dividends_rao == paid
        assert validator.epochs == 3
    assert report.to_dict()["epochs"] == [3, 5]


def test_hosted_validators_are_audited_on_request(network: Network) -> None:
    report = audit_validators(
        network.ledger, subnet=SUBNET, first=0, last=EPOCHS - 1, include_hosted=True
    )
    audited = _by_index(list(report.validators), network)
    assert sorted(audited) == list(range(7))
    for index in range(4):
        hosted = audited[index]
        assert hosted.hosted and hosted.flags == () and hosted.max_lag_blocks == 0
        assert hosted.mean_rank_corr is not None and hosted.mean_rank_corr > 0.9


def test_the_reference_evaluation_is_rechecked_on_a_sample(network: Network) -> None:
    seen: list[int] = []

    def check(stored: StoredEpoch) -> str | None:
        seen.append(stored.epoch)
        return "scores differ for uid 9" if stored.epoch == seen[0] else None

    report = audit_validators(
        network.ledger, subnet=SUBNET, first=0, last=EPOCHS - 1, reference_check=check
    )
    assert seen == reference_sample(0, EPOCHS - 1) and len(seen) == 3
    assert report.reference_checked == tuple(seen)
    assert report.reference_problems == {seen[0]: "scores differ for uid 9"}
    assert "DIFFERENCES" in report.reference


def test_audit_cli_json_and_errors(network: Network, capsys: pytest.CaptureFixture[str]) -> None:
    ran = cli(
        capsys, network.home, "audit", "--subnet", SUBNET, "--epochs", f"0..{EPOCHS - 1}", "--json"
    )
    assert ran.code == 0, ran.err
    document = json.loads(ran.out)
    flags = {v["hotkey"]: v["flags"] for v in document["validators"]}
    assert flags[network.hotkeys[COPIER]] == ["copier"]
    assert flags[network.hotkeys[HONEST]] == []
    table = cli(capsys, network.home, "audit", "--subnet", SUBNET, "--epochs", "2..6", "--all")
    assert table.code == 0, table.err
    assert "copier" in table.out and "laggard" in table.out
    for args, message in (
        (("--subnet", SUBNET, "--epochs", "5..2"), "ends before it starts"),
        (("--subnet", SUBNET, "--epochs", f"0..{EPOCHS}"), f"no committed epoch {EPOCHS}"),
        (("--subnet", "nope", "--epochs", "0..3"), "no subnet 'nope'"),
        (("--subnet", SUBNET, "--epochs", "0..3", "--verify-reference"), "synthetic scores"),
        (("--subnet", SUBNET, "--epochs", "0..3", "--max-lag-blocks", "-1"), "must be >= 0"),
    ):
        bad = cli(capsys, network.home, "audit", *args)
        assert bad.code == 2 and len(bad.err_lines) == 1 and message in bad.err, bad.err
        assert bad.out == ""


def test_rank_statistics() -> None:
    assert average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)
    assert spearman([1, 1], [1, 2]) is None and spearman([1], [1]) is None
    with pytest.raises(ValueError, match="pairs"):
        spearman([1, 2], [1, 2, 3])
    assert sign_test_p_value([0.1, 0.2, 0.3]) == pytest.approx(1 / 8)
    assert sign_test_p_value([0.1, -0.2, 0.0]) == pytest.approx(3 / 4)
    assert sign_test_p_value([0.0]) is None


def test_audit_flow_logs_an_mlflow_run_and_prefect_artifacts(
    network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.artifacts
    from mlflow.tracking import MlflowClient

    from taoflow.flows.audit import audit_flow
    from taoflow.settings import HOME_ENV
    from taoflow.tasks.track import experiment_name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv(HOME_ENV, str(network.home))
    monkeypatch.setenv("TAOFLOW_MLFLOW_URI", uri)
    published: dict[str, dict[str, Any]] = {}
    for name in ("create_markdown_artifact", "create_table_artifact"):
        monkeypatch.setattr(
            prefect.artifacts, name, lambda name=name, **kw: published.update({name: kw})
        )
    artifacts_dir = tmp_path / "mlflow-artifacts"
    monkeypatch.setattr(Settings, "mlflow_artifacts_dir", property(lambda _: artifacts_dir))
    result = audit_flow.fn(subnet=SUBNET, first=0, last=EPOCHS - 1)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(SUBNET))
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == result["mlflow_run_id"]
    assert run.info.run_name == f"audit · epochs 0..{EPOCHS - 1}"
    assert run.data.tags["taoflow.kind"] == "audit"
    copier = next(v for v in result["validators"] if v["hotkey"] == network.hotkeys[COPIER])
    assert run.data.metrics[f"validator/{copier['uid']}/copy_p_value"] == copier["copy_p_value"]
    assert run.data.metrics["flagged/copier"] == 1.0
    assert run.data.metrics["flagged/laggard"] == 1.0
    names = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert names == ["audit.md", "audit_validators.csv"]
    markdown = published["create_markdown_artifact"]
    assert markdown["key"] == f"audit-{SUBNET}-summary" and "| copier |" in markdown["markdown"]
    table = published["create_table_artifact"]
    assert [r["uid"] for r in table["table"]] == [v["uid"] for v in result["validators"]]
    assert {r["flags"] for r in table["table"]} == {"copier", "laggard", ""}
