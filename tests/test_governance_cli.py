"""The governance CLI: ``taoflow propose …``, ``vote``, ``proposals``, ``proposal show`` and
``subnet params --as-of-epoch``, run in-process through the real entry point.

One small simulated subnet (``EPOCHS`` stored epochs) is built per module, with three local
wallets: ``alice`` (``ALICE_RAO``, enough to reach quorum alone), ``bob`` (``BOB_RAO``) and
``carol`` (nothing). Two backtest reports are stored in its home: the κ change ``KAPPA`` and
another change. Each test works on a copy. Every refusal must be exactly one line on stderr and
leave the ledger's files byte-identical.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Ran, cli, ledger_files

from taoflow.ledger.schema import RAO_PER_TAO, Kind, Tx
from taoflow.ledger.signing import sign
from taoflow.ledger.store import Ledger
from taoflow.settings import Settings
from taoflow.tasks.governance.backtest import run_backtest, store_backtest
from taoflow.tasks.governance.boundary import commit_governance
from taoflow.tasks.simulate import SimulationSpec, simulate, simulation_keypair
from taoflow.wallet import PASSPHRASE_ENV, SCRYPT_N_MIN, create_wallet, unlock_coldkey

SUBNET = "gv"
SEED = 5
MINERS = 4
VALIDATORS = 2
EPOCHS = 3
BACKTESTED = 2
PASSPHRASE = "correct horse battery staple"
ALICE_RAO = 400 * RAO_PER_TAO
BOB_RAO = 5 * RAO_PER_TAO
KAPPA_U16 = 39_321
KAPPA = {"yuma": {"kappa_u16": KAPPA_U16}}
OTHER = {"yuma": {"kappa_u16": 40_000}}
FLOW_TIMEOUT_S = 300
ID_RE = re.compile(r"proposal/[0-9a-f]{8}/\d+")


def _spec(epochs: int) -> SimulationSpec:
    return SimulationSpec(SUBNET, epochs=epochs, miners=MINERS, validators=VALIDATORS, seed=SEED)


def _fund(ledger: Ledger, *, dest: str, amount_rao: int) -> None:
    owner = simulation_keypair(SEED, "owner/cold")
    state = ledger.state()
    tx = Tx(
        f"transfer/fund/{dest[:16]}",
        Kind.TRANSFER,
        coldkey=owner.public_hex,
        dest=dest,
        amount_rao=amount_rao,
        nonce=state.next_nonce(owner.public_hex),
    )
    ledger.commit([sign(tx, owner, network_id=state.network_id)], allow_system=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("governance-cli") / "home"
    settings = Settings.load(home)
    simulate(settings.ledger_dir, _spec(EPOCHS))
    accounts = {}
    for name in ("alice", "bob", "carol"):
        create_wallet(settings.wallets_dir, name=name, passphrase=PASSPHRASE, scrypt_n=SCRYPT_N_MIN)
        key = unlock_coldkey(settings.wallets_dir, name=name, passphrase=PASSPHRASE)
        accounts[name] = key.public_hex
    ledger = Ledger.open(settings.ledger_dir)
    _fund(ledger, dest=accounts["alice"], amount_rao=ALICE_RAO)
    _fund(ledger, dest=accounts["bob"], amount_rao=BOB_RAO)
    shas = {}
    for label, values in (("kappa", KAPPA), ("other", OTHER)):
        report = run_backtest(ledger, subnet=SUBNET, values=values, epochs=BACKTESTED)
        store_backtest(settings.governance_backtests_dir, report)
        shas[label] = report.sha256
    return {"home": home, "accounts": accounts, "shas": shas}


@pytest.fixture
def home(base: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(base["home"], copy)
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    return copy


def _one_line(ran: Ran, fragment: str, *, code: int = 1) -> None:
    assert ran.code == code, (ran.out, ran.err)
    assert len(ran.err_lines) == 1, ran.err
    assert ran.err_lines[0].startswith("error: ")
    assert fragment in ran.err_lines[0], ran.err_lines[0]


def _propose_signal(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> str:
    ran = cli(capsys, home, "propose", "signal", "--title", "Hello", "--wallet", "alice", *args)
    assert ran.code == 0, ran.err
    found = ID_RE.search(ran.out)
    assert found is not None, ran.out
    return found.group(0)


def _json(ran: Ran) -> Any:
    assert ran.code == 0, ran.err
    return json.loads(ran.out)


def test_help_lists_the_governance_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from taoflow.cli.app import run

    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("propose", "vote", "proposals", "proposal"):
        assert re.search(rf"│ {command}\s", out), command


def test_signal_vote_change_vote_and_read_it_back(
    capsys: pytest.CaptureFixture[str], home: Path, base: dict[str, Any]
) -> None:
    pid = _propose_signal(capsys, home, "--text", "Say hello")
    alice, bob = base["accounts"]["alice"], base["accounts"]["bob"]
    assert pid.startswith(f"proposal/{alice[:8]}/")
    state = Ledger.open(home / "ledger").state()
    record = state.proposals[pid]
    assert (record.deposit_rao, record.closes_block) == (RAO_PER_TAO, state.block + 200)
    voted = cli(capsys, home, "vote", "--proposal", pid, "--choice", "for", "--wallet", "bob")
    assert voted.code == 0, voted.err
    bob_power = record.power.power_rao(bob)
    assert bob_power == BOB_RAO
    assert f"voted for on {pid} with 5.000000000 τ of power" in voted.out
    assert "tally so far: for 5.000000000 τ, against 0.000000000 τ" in voted.out
    again = cli(capsys, home, "vote", "--proposal", pid, "--choice", "against", "--wallet", "bob")
    assert again.code == 0, again.err
    rows = _json(cli(capsys, home, "proposals", "--json"))
    assert [r["proposal_id"] for r in rows] == [pid]
    row = rows[0]
    assert (row["kind"], row["status"], row["title"]) == ("signal", "open", "Hello")
    assert (row["for_rao"], row["against_rao"], row["abstain_rao"]) == (0, BOB_RAO, 0)
    assert row["turnout_ppm"] == BOB_RAO * 1_000_000 // record.power.total_rao
    assert (row["quorum_met"], row["passing"], row["deposit_rao"]) == (False, False, RAO_PER_TAO)
    assert _json(cli(capsys, home, "proposals", "--status", "passed", "--json")) == []
    table = cli(capsys, home, "proposals")
    assert pid in table.out and "Hello" in table.out
    doc = _json(cli(capsys, home, "proposal", "show", pid, "--json"))
    assert doc["votes"] == [
        {"coldkey": bob, "name": "bob", "choice": "against", "power_rao": BOB_RAO}
    ]
    assert (doc["deposit"], doc["text"], doc["backtest"]) == ("locked", "Say hello", None)
    assert doc["tally"]["against_rao"] == BOB_RAO
    shown = cli(capsys, home, "proposal", "show", pid)
    assert "bob: against with 5.000000000 τ" in shown.out
    assert "deposit 1.000000000 τ: locked" in shown.out


def test_a_delegators_vote_carries_its_stake_and_the_validator_s_share_of_it(
    capsys: pytest.CaptureFixture[str], home: Path, base: dict[str, Any]
) -> None:
    validator_hot = simulation_keypair(SEED, "validator-0/hot").public_hex
    staked = cli(
        capsys, home, "stake", "add", "--wallet", "bob", "--hotkey", validator_hot, "--amount", "2"
    )
    assert staked.code == 0, staked.err
    pid = _propose_signal(capsys, home)
    state = Ledger.open(home / "ledger").state()
    bob = base["accounts"]["bob"]
    bob_rao = state.balance(bob) + state.stake(coldkey=bob, hotkey=validator_hot)
    voted = _json(
        cli(capsys, home, "vote", "--proposal", pid, "--choice", "for", "--wallet", "bob", "--json")
    )
    assert (voted["power_rao"], voted["delegated_in_rao"]) == (bob_rao, 0)
    assert voted["tally"]["for_rao"] == bob_rao == BOB_RAO - state.tx_fee_rao  # the stake's fee
    assert state.proposals[pid].power.delegated_rao[bob] == {
        simulation_keypair(SEED, "validator-0/cold").public_hex: 2 * RAO_PER_TAO
    }


def test_subnet_params_with_a_stored_backtest(
    capsys: pytest.CaptureFixture[str], home: Path, base: dict[str, Any]
) -> None:
    sha = base["shas"]["kappa"]
    ran = cli(
        capsys,
        home,
        *("propose", "subnet-params", "--subnet", SUBNET, "--set", f"yuma.kappa_u16={KAPPA_U16}"),
        *("--title", "Raise kappa", "--backtest", sha, "--wallet", "alice", "--json"),
    )
    doc = _json(ran)
    pid = doc["proposal_id"]
    assert ID_RE.fullmatch(pid)
    assert doc["backtest_sha256"] == sha
    assert doc["backtest_summary"][0].startswith(f"backtest {sha[:12]}: {SUBNET} epochs 1..2")
    record = Ledger.open(home / "ledger").state().proposals[pid]
    assert record.changes == ((SUBNET, (("yuma", {"kappa_u16": KAPPA_U16}),)),)
    shown = _json(cli(capsys, home, "proposal", "show", pid, "--json"))
    kappa_now = Ledger.open(home / "ledger").state().subnets[SUBNET].config.yuma["kappa_u16"]
    assert kappa_now != KAPPA_U16
    assert shown["changes"] == [
        {"subnet": SUBNET, "setting": "yuma.kappa_u16", "before": kappa_now, "proposed": KAPPA_U16}
    ]
    assert shown["backtest"]["matches"] is True
    assert shown["backtest"]["summary"] == doc["backtest_summary"]
    report = home / "governance" / "backtests" / f"{sha}.parquet"
    report.write_bytes(report.read_bytes() + b"x")  # tampered after the proposal
    text = cli(capsys, home, "proposal", "show", pid)
    assert "MISMATCH: the stored report was changed" in text.out
    assert (
        _json(cli(capsys, home, "proposal", "show", pid, "--json"))["backtest"]["matches"] is False
    )


def test_the_proposal_runs_the_backtest_flow(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    base: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prefect.artifacts

    import taoflow.cli.governance as governance
    from taoflow.flows.governance_backtest import backtest_flow

    monkeypatch.setenv("TAOFLOW_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    published: list[dict[str, Any]] = []
    for name in ("create_markdown_artifact", "create_table_artifact"):
        monkeypatch.setattr(prefect.artifacts, name, lambda **kw: published.append(kw))
    calls: list[dict[str, Any]] = []

    def flow_body(settings: Settings, **kw: Any) -> tuple[str, str]:
        calls.append(kw)
        result = backtest_flow.fn(
            home=str(settings.home),
            subnet=kw["subnet"],
            values_json=kw["values_json"],
            epochs=kw["epochs"],
            proposal_title=kw["title"],
        )
        return result.sha256, result.mlflow_run_id

    monkeypatch.setattr(governance, "run_backtest_flow", flow_body)
    (home / "governance").rename(tmp_path / "old-governance")  # nothing stored yet
    ran = cli(
        capsys,
        home,
        *("propose", "subnet-params", "--subnet", SUBNET, "--set", f"yuma.kappa_u16={KAPPA_U16}"),
        *("--title", "Raise kappa", "--backtest-epochs", str(BACKTESTED), "--wallet", "alice"),
    )
    assert ran.code == 0, ran.err
    sha = base["shas"]["kappa"]  # the same change over the same epochs: the same report
    assert calls == [
        {"subnet": SUBNET, "values_json": json.dumps(KAPPA), "epochs": 2, "title": "Raise kappa"}
    ]
    assert (home / "governance" / "backtests" / f"{sha}.parquet").is_file()
    assert f"backtest {sha[:12]}: {SUBNET} epochs 1..2 (2 epochs)" in ran.out
    assert re.search(r"MLflow run [0-9a-f]{32}", ran.out)
    assert [p["key"] for p in published] == [f"backtest-{sha[:12]}", f"backtest-{sha[:12]}-deltas"]
    (record,) = Ledger.open(home / "ledger").state().proposals.values()
    assert record.backtest_sha256 == sha


@pytest.mark.integration
def test_the_cli_runs_the_real_flow_on_a_temporary_prefect_server(
    home: Path, base: dict[str, Any]
) -> None:
    """As a user runs it: its own process, a temporary Prefect server, the home's MLflow."""
    import subprocess
    import sys

    from demo_helpers import demo_env

    shutil.rmtree(home / "governance")
    env = {**demo_env(home), PASSPHRASE_ENV: PASSPHRASE}
    command = [sys.executable, "-m", "taoflow.cli", "propose", "subnet-params"]
    command += ["--subnet", SUBNET, "--set", f"yuma.kappa_u16={KAPPA_U16}", "--title", "K"]
    command += ["--backtest-epochs", str(BACKTESTED), "--wallet", "alice", "--json"]
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=FLOW_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["backtest_sha256"] == base["shas"]["kappa"]
    assert re.fullmatch(r"[0-9a-f]{32}", doc["mlflow_run_id"])
    assert (home / "governance" / "backtests" / f"{doc['backtest_sha256']}.parquet").is_file()


def test_network_params_proposal(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    ran = cli(
        capsys,
        home,
        *("propose", "network-params", "--emission-share", f"{SUBNET}=2"),
        *("--set", "tempo_blocks=50", "--subnets", SUBNET),
        *("--title", "Faster", "--voting-blocks", "150", "--wallet", "alice", "--json"),
    )
    doc = _json(ran)
    record = Ledger.open(home / "ledger").state().proposals[doc["proposal_id"]]
    assert record.changes == ((SUBNET, (("emission_share", 2), ("tempo_blocks", 50))),)
    assert record.closes_block - record.opens_block == 150
    shown = _json(cli(capsys, home, "proposal", "show", doc["proposal_id"], "--json"))
    assert {(c["setting"], c["before"], c["proposed"]) for c in shown["changes"]} == {
        ("emission_share", 1, 2),
        ("tempo_blocks", 100, 50),
    }


BAD_PROPOSALS = [
    (
        ["subnet-params", "--subnet", "nope", "--set", "yuma.kappa_u16=39321", "--title", "T"],
        "unknown subnet 'nope'",
    ),
    (
        ["subnet-params", "--subnet", SUBNET, "--set", "yuma.kappa_u16=70000", "--title", "T"],
        "subnet 'gv': ",
    ),
    (
        ["subnet-params", "--subnet", SUBNET, "--set", "tempo_blocks=0", "--title", "T"],
        "subnet 'gv': ",
    ),
    (["signal", "--title", "T", "--deposit", "0.5"], "is below the minimum 1,000,000,000"),
    (["signal", "--title", "T", "--voting-blocks", "10"], "voting_blocks must be an integer in"),
    (["signal", "--title", ""], "proposal title must be text"),
    (
        ["subnet-params", "--subnet", SUBNET, "--set", "nonsense=1", "--title", "T"],
        "unknown subnet setting(s) ['nonsense']",
    ),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_PROPOSALS)
def test_a_bad_proposal_is_one_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], home: Path, args: list[str], fragment: str
) -> None:
    before = ledger_files(home)
    _one_line(cli(capsys, home, "propose", *args, "--wallet", "alice"), fragment)
    assert ledger_files(home) == before


USAGE_ERRORS = [
    (
        ["propose", "subnet-params", "--subnet", SUBNET, "--set", "kappa", "--title", "T"],
        "name=value",
    ),
    (
        ["propose", "subnet-params", "--subnet", SUBNET, "--set", "tempo.x=1", "--title", "T"],
        "dotted",
    ),
    (["propose", "subnet-params", "--subnet", SUBNET, "--title", "T"], "at least one --set"),
    (["propose", "signal", "--title", "T", "--deposit", "-1"], "amount"),
    (["vote", "--proposal", "p", "--choice", "yes"], "--choice must be one of for, against"),
]


@pytest.mark.parametrize(("args", "fragment"), USAGE_ERRORS)
def test_usage_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], home: Path, args: list[str], fragment: str
) -> None:
    before = ledger_files(home)
    _one_line(cli(capsys, home, *args, "--wallet", "alice"), fragment, code=2)
    _one_line(
        cli(capsys, home, "proposals", "--status", "weird"), "--status must be one of", code=2
    )
    assert ledger_files(home) == before


def test_without_balance_for_the_deposit(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    before = ledger_files(home)
    ran = cli(capsys, home, "propose", "signal", "--title", "T", "--wallet", "carol")
    _one_line(ran, "balance")
    assert ledger_files(home) == before


def test_backtest_that_does_not_match_is_refused(
    capsys: pytest.CaptureFixture[str], home: Path, base: dict[str, Any]
) -> None:
    args = ["propose", "subnet-params", "--subnet", SUBNET, "--set", f"yuma.kappa_u16={KAPPA_U16}"]
    args += ["--title", "Raise kappa", "--wallet", "alice", "--backtest"]
    before = ledger_files(home)
    other = base["shas"]["other"]
    _one_line(cli(capsys, home, *args, other), f"backtest report {other[:12]} describes the change")
    _one_line(cli(capsys, home, *args, "0" * 64), f"no backtest report {'0' * 12}")
    _one_line(cli(capsys, home, *args, "XYZ"), "64 lowercase hex digits")
    sha = base["shas"]["kappa"]
    report = home / "governance" / "backtests" / f"{sha}.parquet"
    report.write_bytes(report.read_bytes()[:-1] + b"\x00")
    _one_line(cli(capsys, home, *args, sha), "does not match its hash: the file was changed")
    assert ledger_files(home) == before


def test_vote_refusals_are_the_ledgers_own_reasons(
    capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    pid = _propose_signal(capsys, home, "--voting-blocks", "100")
    ok = cli(capsys, home, "vote", "--proposal", pid, "--choice", "abstain", "--wallet", "bob")
    assert ok.code == 0, ok.err
    before = ledger_files(home)
    vote = ["vote", "--proposal", pid, "--choice"]
    _one_line(cli(capsys, home, *vote, "abstain", "--wallet", "bob"), "already voted 'abstain'")
    _one_line(cli(capsys, home, *vote, "for", "--wallet", "carol"), "had no voting power")
    _one_line(
        cli(
            capsys, home, "vote", "--proposal", "proposal/x/1", "--choice", "for", "--wallet", "bob"
        ),
        "unknown proposal 'proposal/x/1'",
    )
    assert ledger_files(home) == before
    simulate(home / "ledger", _spec(1))  # one tempo later: the period has closed
    before = ledger_files(home)
    _one_line(cli(capsys, home, *vote, "for", "--wallet", "alice"), f"voting on '{pid}' closed")
    assert ledger_files(home) == before


def test_a_passed_change_is_in_effect_as_of_its_epoch(
    capsys: pytest.CaptureFixture[str], home: Path, base: dict[str, Any]
) -> None:
    sha = base["shas"]["kappa"]
    ran = cli(
        capsys,
        home,
        *("propose", "subnet-params", "--subnet", SUBNET, "--set", f"yuma.kappa_u16={KAPPA_U16}"),
        *("--title", "Raise kappa", "--backtest", sha, "--voting-blocks", "100"),
        *("--wallet", "alice", "--json"),
    )
    pid = _json(ran)["proposal_id"]
    voted = cli(capsys, home, "vote", "--proposal", pid, "--choice", "for", "--wallet", "alice")
    assert voted.code == 0, voted.err
    assert "quorum 10%: met" in voted.out
    ledger_dir = home / "ledger"
    for _ in range(3):  # closes; tally; activation (each governance step, then an epoch)
        commit_governance(ledger_dir)
        simulate(ledger_dir, _spec(1))
    state = Ledger.open(ledger_dir).state()
    record = state.proposals[pid]
    assert record.status.value == "activated"
    (effective,) = record.effective_from_epoch
    assert effective == (SUBNET, EPOCHS + 2)
    before = _json(
        cli(capsys, home, "subnet", "params", SUBNET, "--as-of-epoch", str(EPOCHS + 1), "--json")
    )
    after = _json(
        cli(capsys, home, "subnet", "params", SUBNET, "--as-of-epoch", str(EPOCHS + 2), "--json")
    )
    assert before["params"]["yuma"].get("kappa_u16") != KAPPA_U16
    assert before["set_by"] == {}
    assert after["params"]["yuma"]["kappa_u16"] == KAPPA_U16
    assert after["set_by"] == {"yuma.kappa_u16": pid}
    table = cli(capsys, home, "subnet", "params", SUBNET, "--as-of-epoch", str(EPOCHS + 2))
    assert re.search(rf"yuma\.kappa_u16\s+│\s+{KAPPA_U16}\s+│\s+{re.escape(pid)}", table.out)
    shown = _json(cli(capsys, home, "proposal", "show", pid, "--json"))
    assert (shown["status"], shown["deposit"]) == ("activated", "returned")
    assert shown["activation"] == f"{SUBNET} from epoch {EPOCHS + 2}"
    assert shown["tally_committed"] is True
    assert [(c["setting"], c["proposed"]) for c in shown["changes"]] == [
        ("yuma.kappa_u16", KAPPA_U16)
    ]
    assert shown["changes"][0]["before"] == before["params"]["yuma"]["kappa_u16"] != KAPPA_U16
    _one_line(
        cli(capsys, home, "subnet", "params", SUBNET, "--as-of-epoch", "999"),
        f"epoch 999 of subnet '{SUBNET}' is not in the ledger",
    )


def test_a_backtestable_change_without_stored_epochs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_helpers import SUBNET as EMPTY_SUBNET
    from cli_helpers import wallet_network

    home = tmp_path / "fresh"
    wallet_network(home, monkeypatch)
    before = ledger_files(home)
    ran = cli(
        capsys,
        home,
        *("propose", "subnet-params", "--subnet", EMPTY_SUBNET, "--set", "yuma.kappa_u16=39321"),
        *("--title", "T", "--wallet", "alice"),
    )
    _one_line(ran, f"no stored epochs of {EMPTY_SUBNET} to backtest: run an epoch first")
    assert ledger_files(home) == before
    # a change nothing recomputes needs no backtest
    ok = cli(
        capsys,
        home,
        *(
            "propose",
            "subnet-params",
            "--subnet",
            EMPTY_SUBNET,
            "--set",
            "immunity_period_blocks=100",
        ),
        *("--title", "T", "--wallet", "alice", "--json"),
    )
    assert _json(ok)["backtest_sha256"] is None
